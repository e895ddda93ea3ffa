"""Reading CT volumes (NRRD, NHDR, NIfTI, MHA/MHD, DICOM series) with SimpleITK, and the summary
``hrinet info`` prints.

Files are checked against their headers first (:mod:`hrinet.core.io.headers`); DICOM folders
are read by :mod:`hrinet.core.io.dicom.series`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from hrinet.core.errors import HRINetError
from hrinet.core.geometry import geometry_lines
from hrinet.core.io.headers import check_file
from hrinet.core.io.headers.nifti import nifti_forms
from hrinet.core.io.paths import PathLike
from hrinet.core.io.provenance.files import read_provenance
from hrinet.core.io.provenance.record import SOURCE_KEY, describe_lines
from hrinet.core.itk import read_image_file, volume_from_image
from hrinet.core.volume import Volume


def read_volume(path: PathLike, series_uid: Optional[str] = None) -> Volume:
    """Read a 3D scalar volume from a file or a DICOM series folder.

    Raises:
        HRINetError: missing path, unreadable file, empty folder, 2D, 4D or vector image,
            invalid spacing, or an unevenly spaced DICOM series.
    """
    p = Path(path)
    if not p.exists():
        raise HRINetError(f"{p} does not exist; check the path")
    volume = _read(p, series_uid)
    earlier = record_read_from(volume)
    if earlier:  # an hrinet output: which of its slices were synthesised goes along with it
        volume.metadata[SOURCE_KEY] = earlier
    return volume


def record_read_from(volume: Volume):
    """The provenance record held by the file or DICOM series ``volume`` was read from (a
    study's series in its own subfolder included), or None: not an hrinet output."""
    source = volume.metadata.get("source")
    if not source:
        return None
    return read_provenance(Path(str(source)) / volume.metadata.get("series_folder", ""),
                           volume.metadata.get("series_uid"))


def forms_warning(path: Path, volume: Volume) -> list:
    """A NIfTI file whose qform and sform disagree says so, and which of them it was read by
    (ITK, and so Slicer, picks one by rules of its own): a volume placed or turned otherwise
    than the scanner meant goes no further unsaid."""
    forms = nifti_forms(path)
    if forms is None:
        return []
    qform, sform = forms
    scale = max(float(np.abs(qform[:, :3]).max()), 1e-6)
    if np.abs(qform[:, :3] - sform[:, :3]).max() <= 1e-3 * scale and \
            np.abs(qform[:, 3] - sform[:, 3]).max() <= 0.01:
        return []
    flip = np.diag([-1.0, -1.0, 1.0])  # the volume's LPS geometry as a RAS affine
    read = np.column_stack([flip @ volume.direction @ np.diag(volume.spacing),
                            flip @ np.asarray(volume.origin)])
    which = next((name for name, m in (("sform", sform), ("qform", qform))
                  if np.abs(read - m).max() <= 1e-3 * scale + 0.01), "neither")
    apart = float(np.linalg.norm(qform[:, 3] - sform[:, 3]))
    return [f"{path.name}'s qform and sform disagree (origins {apart:.3g} mm apart"
            f"{', orientations differ' if np.abs(qform[:, :3] - sform[:, :3]).max() > 1e-3 * scale else ''}"
            f"); it was read as its {which} says, as ITK and Slicer read it: check the result's "
            "position and orientation against the scan's"]


def dicom_folder_of(path: Path) -> Optional[Path]:
    """The DICOM folder ``path`` names: itself, or for a study's index (a DICOMDIR file) the
    folder it indexes; None for a volume file."""
    path = Path(path)
    if path.is_dir():
        return path
    return path.parent if path.name.upper() == "DICOMDIR" and path.is_file() else None


def _read(p: Path, series_uid: Optional[str]) -> Volume:
    """:func:`read_volume` of an existing path, without the provenance it may hold."""
    if dicom_folder_of(p) is not None:
        from hrinet.core.io import read_dicom_folder  # pydicom only for DICOM

        return read_dicom_folder(dicom_folder_of(p), series_uid)
    if not p.is_file() or p.resolve().parts[1:2] in (("proc",), ("sys",)):
        # a device, a pipe, /proc: no volume, and reading may never end
        raise HRINetError(f"{p} is not a regular file (a device, a pipe or a system file); "
                          "name a volume file or a DICOM folder")
    if not os.access(p, os.R_OK):
        raise HRINetError(f"{p} is not readable; check its permissions")
    if p.stat().st_size == 0:
        raise HRINetError(f"{p} is empty (0 bytes); the file is incomplete")
    check_file(p)  # cut off, broken spacing, data outside its folder: before ITK reads it
    from hrinet.core.io import read_multiframe_file  # pydicom only for DICOM

    volume = (read_multiframe_file(p)  # its frames' geometry from their headers, not GDCM's
              or volume_from_image(read_image_file(p), str(p)))
    if p.name.lower().endswith((".nii", ".nii.gz")):
        volume.metadata["warnings"].extend(forms_warning(p, volume))
    if series_uid is not None:
        volume.metadata.setdefault("warnings", []).append(
            f"a series ({series_uid}) applies to DICOM folders; {p.name} is a file and was read "
            "as it is")
    return volume


def describe(volume: Volume) -> str:
    """A short multi-line summary for ``hrinet info``."""
    a = volume.array
    x, y, z = volume.shape_xyz
    sx, sy, sz = volume.spacing
    lines = [
        f"source:     {volume.metadata.get('source', '?')}",
        f"size:       {x} x {y} x {z} (x, y, z)",
        f"spacing:    {sx:.4g} x {sy:.4g} x {sz:.4g} mm",
        f"origin:     {tuple(round(o, 4) for o in volume.origin)} mm (LPS)",
        f"direction:  {np.round(volume.direction, 4).tolist()}",
        f"pixel type: {a.dtype}",
        f"range:      {a.min()} .. {a.max()}",
        f"isotropic factor (z spacing / in-plane): {sz / min(sx, sy):.2f}",
    ]
    if volume.metadata.get("slice_thickness_mm"):
        t = volume.metadata["slice_thickness_mm"]
        lines.append(f"thickness:  {t:.4g} mm (DICOM Slice Thickness; {t / sz:.2f} x the spacing)")
    lines += geometry_lines(volume)
    lines += [f"warning:    {w}" for w in volume.metadata.get("warnings", [])]
    lines += describe_lines(volume.metadata.get(SOURCE_KEY) or  # read with the volume
                            record_read_from(volume), slices=z)
    return "\n".join(lines)
