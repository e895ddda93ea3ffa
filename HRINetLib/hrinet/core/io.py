"""Reading and writing CT volumes (NRRD, NHDR, NIfTI, MHA/MHD, DICOM series) with SimpleITK.

Files are checked against their headers first (:mod:`hrinet.core.headers`); DICOM folders are
read by :mod:`hrinet.core.dicom`. Writes are atomic and verified (:mod:`hrinet.core.atomic`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import SimpleITK as sitk

from hrinet.core.atomic import atomic_write
from hrinet.core.dicom import read_dicom_folder
from hrinet.core.dicom_export import read_derived
from hrinet.core.errors import HRINetError
from hrinet.core.geometry import geometry_lines
from hrinet.core.headers import check_file, data_files
from hrinet.core.itk import (
    quiet_native_output,
    read_image_file,
    to_sitk,
    volume_from_image,
)
from hrinet.core.provenance import (
    add_nifti_extension,
    describe_lines,
    provenance_of,
    FILE_PREFIX,
    Record,
    nifti_record,
    stamp_image,
)
from hrinet.core.volume import Volume

PathLike = Union[str, os.PathLike]

READ_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
# Single-file formats only: a detached header and its data cannot be renamed into place atomically.
WRITE_EXTENSIONS = (".nrrd", ".nii", ".nii.gz", ".mha")


def read_volume(path: PathLike, series_uid: Optional[str] = None) -> Volume:
    """Read a 3D scalar volume from a file or a DICOM series folder.

    Raises:
        HRINetError: missing path, unreadable file, empty folder, 2D, 4D or vector image,
            invalid spacing, or an unevenly spaced DICOM series.
    """
    p = Path(path)
    if not p.exists():
        raise HRINetError(f"{p} does not exist; check the path")
    if p.is_dir():
        return read_dicom_folder(p, series_uid)
    if not os.access(p, os.R_OK):
        raise HRINetError(f"{p} is not readable; check its permissions")
    if p.stat().st_size == 0:
        raise HRINetError(f"{p} is empty (0 bytes); the file is incomplete")
    check_file(p)  # cut off, broken spacing, data outside its folder: before ITK reads it
    volume = volume_from_image(read_image_file(p), str(p))
    if series_uid is not None:
        volume.metadata.setdefault("warnings", []).append(
            f"a series ({series_uid}) applies to DICOM folders; {p.name} is a file and was read "
            "as it is")
    return volume


def volume_name(path) -> str:
    """A volume's name for tables, messages and outputs: its file or folder name without the
    volume extension (``chest.nii.gz`` -> ``chest``)."""
    name = Path(str(path).rstrip("/")).name
    for ext in sorted(READ_EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when two paths name the same file (or folder), even through links."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_not_broken_link(path: PathLike) -> None:
    """Refuse an output path that is a symbolic link to nothing (a missing file or a loop):
    writing there would fail only at the end, or replace the link the user made."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise HRINetError(f"output {path} is a symbolic link to nothing (a missing file or a "
                          "loop); remove the link or choose another name")


def check_output_path(out: PathLike, inputs: Iterable[PathLike] = (), overwrite: bool = False) -> Path:
    """Validate an output path before any work starts, so a bad one costs nothing.

    Raises:
        HRINetError: OUT is one of the inputs, exists without ``overwrite``, has an unknown
            extension, or its folder is missing or not writable.
    """
    out = Path(out)
    check_not_broken_link(out)
    for src in inputs:
        if same_file(out, src):
            raise HRINetError(f"output {out} is the input file; choose another output path "
                              "(inputs are never overwritten)")
        if Path(src).is_file():
            for data in data_files(Path(src)):
                if same_file(out, data):
                    raise HRINetError(f"output {out} holds the voxels of the input {src} (its "
                                      "header's data file); choose another output path")
    if _suffix(out) not in WRITE_EXTENSIONS:
        raise HRINetError(f"cannot write {out}: unknown extension; use one of "
                          f"{', '.join(WRITE_EXTENSIONS)}")
    return check_new_file(out, overwrite, "output", "out.nrrd")


def check_new_file(path: Path, overwrite: bool, what: str = "output",
                   example: str = "out.nrrd") -> Path:
    """What every file the tools write is checked for before any work: not a folder, not an
    existing file unless ``overwrite``, in an existing folder it may write to."""
    if path.is_dir():
        raise HRINetError(f"{what} {path} is a folder; give a file name such as "
                          f"{path / example}")
    if path.exists() and not overwrite:
        raise HRINetError(f"{what} {path} exists; allow replacing it (--overwrite) or choose "
                          "another name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise HRINetError(f"cannot write {path}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise HRINetError(f"cannot write {path}: no write permission in {parent}")
    return path


def write_volume(volume: Volume, path: PathLike, overwrite: bool = False,
                 compress: bool = True) -> Path:
    """Write ``volume`` atomically and verified: into a hidden file beside ``path``, read back and
    compared voxel for voxel, then moved into place.

    An interpolation result carries its provenance into the file
    (:mod:`hrinet.core.provenance`): NRRD key/value fields and ``content``, MetaImage header
    keys, NIfTI ``descrip`` and a comment extension.

    A failed write (full disk, no permission, a writer that reports errors only on stderr, as
    the NIfTI writer does) leaves neither a partial file nor a damaged previous file at ``path``.
    Without ``overwrite``, a file that appears at ``path`` meanwhile is never replaced.
    """
    out = check_output_path(path, overwrite=overwrite)

    def verify(tmp: Path) -> None:
        check_file(tmp)  # a cut-off NIfTI file reads back zero-filled: its size is checked first
        try:
            back = sitk.ReadImage(str(tmp))
        except RuntimeError:
            raise HRINetError("the written file cannot be read back (disk full?); free disk "
                              "space and retry") from None
        same = (back.GetSize() == tuple(int(v) for v in volume.shape_xyz) and
                np.array_equal(sitk.GetArrayViewFromImage(back), volume.array))
        if not same:
            raise HRINetError("the written file differs from the volume when read back (disk "
                              "full?); free disk space and retry")

    rec = provenance_of(volume)  # an interpolation result says how it was made
    with atomic_write(out, overwrite=overwrite, verify=verify, suffix=_suffix(out)) as tmp:
        with quiet_native_output():
            image = to_sitk(volume)
            if rec:
                stamp_image(image, rec, _suffix(out))
            sitk.WriteImage(image, str(tmp), useCompression=compress)
            del image  # the copy made for the writer; the read-back needs the room
        if rec and _suffix(out) in (".nii", ".nii.gz"):
            add_nifti_extension(tmp, rec)  # the whole record; descrip holds 80 characters
    return out


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
    lines += describe_lines(read_provenance(volume.metadata.get("source"),
                                            volume.metadata.get("series_uid")))
    return "\n".join(lines)


def read_provenance(path, series_uid: Optional[str] = None) -> Optional[Record]:
    """The record an output file holds (NRRD, MetaImage, NIfTI: its header only), a derived
    DICOM series' in a folder (:func:`hrinet.core.dicom_export.read_derived`; ``series_uid``:
    which series, default any derived one), or None."""
    if not path:
        return None
    p = Path(str(path))
    if p.is_dir():
        return read_derived(p, series_uid)
    if not p.is_file():
        return None
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return nifti_record(p)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        with quiet_native_output():
            reader.ReadImageInformation()
    except RuntimeError:
        return None
    rec = {k[len(FILE_PREFIX):]: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()
           if k.startswith(FILE_PREFIX)}
    return rec or None
