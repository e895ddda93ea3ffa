"""SimpleITK at the boundary: images to and from volumes, with C libraries kept quiet."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

from hrinet.core.errors import HRINetError, first_line
from hrinet.core.volume import Volume


@contextmanager
def quiet_native_output() -> Iterator[None]:
    """Keep what C libraries print to stderr (GDCM, the NIfTI writer) off the user's terminal:
    their failures reach the user as the one-line error of the call they broke. Python's own
    ``sys.stderr`` writes are untouched."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect (e.g. a GUI process)
        yield
        return
    with open(os.devnull, "wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def volume_from_image(image: sitk.Image, source: str) -> Volume:
    dim = image.GetDimension()
    if dim == 2:
        raise HRINetError(f"{source} is a 2D image; give a 3D volume with at least 2 slices")
    if dim != 3:
        raise HRINetError(f"{source} has {dim} dimensions; give a single 3D volume "
                          "(split 4D series into 3D volumes first)")
    comps = image.GetNumberOfComponentsPerPixel()
    if comps != 1:
        raise HRINetError(f"{source} has {comps} components per voxel (vector/RGB image); "
                          "convert it to a single-channel grayscale volume first")
    spacing = image.GetSpacing()
    if any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise HRINetError(f"{source} has invalid voxel spacing {tuple(spacing)}; "
                          "fix the header so every spacing is a positive number of mm")
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(direction)) or abs(np.linalg.det(direction)) < 1e-6:
        raise HRINetError(f"{source} has a degenerate direction matrix (its axes are parallel "
                          "or zero); fix the header's space directions")
    cosines = np.abs(direction.T @ direction - np.eye(3)).max()
    if cosines > 1e-3:
        angle = float(np.degrees(np.arcsin(min(1.0, cosines))))
        raise HRINetError(f"{source} is sheared: its axes are {angle:.1f} degrees from "
                          "perpendicular, so its slices are not stacked straight; resample it onto "
                          "a regular grid first (e.g. Slicer's Resample Scalar Volume) and retry")
    array = sitk.GetArrayFromImage(image)
    return Volume(array=array, spacing=spacing, origin=image.GetOrigin(), direction=direction,
                  metadata={"source": source, "warnings": []})


def read_image_file(path: Path) -> sitk.Image:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with quiet_native_output():
            return reader.Execute()
    except RuntimeError as exc:
        if "Zero-valued spacing" in str(exc):
            raise HRINetError(f"{path} has a zero voxel spacing in its header; fix the header "
                              "so every spacing is a positive number of mm") from None
        raise HRINetError(f"cannot read {path}: not a readable or complete image file "
                          f"({first_line(exc)}); check the file is a complete NRRD, NIfTI, MHA or "
                          "DICOM") from None




def to_sitk(volume: Volume) -> sitk.Image:
    """A SimpleITK image with the volume's voxels and geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(volume.direction.ravel()))
    return image
