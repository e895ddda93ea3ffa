"""SimpleITK at the boundary: images to and from volumes, with C libraries kept quiet."""

from __future__ import annotations

import io
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

from hrinet.core.constants import MAX_VOXEL_MM
from hrinet.core.errors import HRINetError, first_line
from hrinet.core.volume import Volume


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved = -1


@contextmanager
def quiet_native_output() -> Iterator[None]:
    """Keep what C libraries print to stderr (GDCM, the NIfTI writer) off the user's terminal:
    their failures reach the user as the one-line error of the call they broke.

    Safe across threads (a cohort reads its next case while writing this one): the first block
    to enter mutes descriptor 2 and the last to leave restores it. Python's own writes to
    ``sys.stderr`` in another thread meanwhile would be lost, so long work spanning threads runs
    inside :func:`python_stderr_kept`."""
    global _quiet_depth, _quiet_saved
    with _quiet_lock:
        if _quiet_depth == 0:
            try:
                saved = os.dup(2)
            except OSError:  # no stderr to protect (e.g. a GUI process)
                saved = -1
            if saved >= 0:
                sink = os.open(os.devnull, os.O_WRONLY)
                os.dup2(sink, 2)
                os.close(sink)
            _quiet_saved = saved
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved >= 0:
                os.dup2(_quiet_saved, 2)
                os.close(_quiet_saved)
                _quiet_saved = -1


@contextmanager
def python_stderr_kept() -> Iterator[None]:
    """For the block, Python's ``sys.stderr`` writes through a descriptor of its own, so muting
    descriptor 2 for a C library (:func:`quiet_native_output`, in any thread) never swallows a
    message of the program's. Nothing changes when ``sys.stderr`` is not descriptor 2 (a test's
    capture, a GUI)."""
    stream = sys.stderr
    try:
        is_fd2 = stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        is_fd2 = False
    if not is_fd2:
        yield
        return
    stream.flush()
    own = io.TextIOWrapper(io.FileIO(os.dup(2), "w", closefd=True),
                           encoding=stream.encoding, errors=stream.errors or "backslashreplace",
                           line_buffering=True, write_through=True)
    sys.stderr = own
    try:
        yield
    finally:
        own.flush()
        sys.stderr = stream
        own.close()


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
    if any(not np.isfinite(s) or s <= 0 or s > MAX_VOXEL_MM for s in spacing):
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
