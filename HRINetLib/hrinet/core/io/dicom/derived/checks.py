"""``--format dicom`` checked before any work: the input is a DICOM series folder whose slices
name their study, and the output a new folder outside it (or an earlier derived series of
hrinet's, with ``--overwrite``) that may be written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, Union

import pydicom

from hrinet.core.errors import HRINetError
from hrinet.core.geometry import uneven_positions
from hrinet.core.io.dicom.derived.attributes import check_study, is_ours
from hrinet.core.io.dicom.derived.sources import source_files
from hrinet.core.io.paths import PathLike, check_parent_writable


def check_derivable(volume) -> None:
    """Refuse, right after reading and before any work, a series ``--format dicom`` cannot
    follow: a derived series has one output slice per input slice position at a fixed step,
    which slices at uneven gaps do not give, each referencing its input slice's file, which a
    multi-frame file does not have."""
    if volume.metadata.get("rescales_differ") and volume.array.dtype.kind == "f":
        raise HRINetError("--format dicom stores one RescaleSlope/RescaleIntercept for the new "
                          "series, but this series' slices are rescaled differently, with "
                          "fractions its acquired slices would lose; write a volume file (.nrrd) "
                          "instead")
    if volume.metadata.get("multiframe"):
        raise HRINetError("--format dicom writes the new series beside the input's single-frame "
                          "slices, but this series is one multi-frame file; write a volume file "
                          "(.nrrd) instead")
    positions = volume.metadata.get("slice_positions_mm")
    if uneven_positions(positions, volume.array.shape[0]) is not None:
        raise HRINetError("--format dicom writes the new series on the input's even slice grid, "
                          "but this series' slices lie at uneven gaps; write a volume file "
                          "(.nrrd) instead")


def check_dicom_output(out: PathLike, source: Union[PathLike, Sequence[PathLike]],
                       overwrite: bool = False) -> Path:
    """Validate ``--format dicom`` before any work: the input is a DICOM folder (or its files),
    the output a folder outside it that is new, empty, or (with ``overwrite``) an earlier
    derived series of hrinet's, in an existing folder it may write to.

    Raises:
        HRINetError: one line naming the problem and what to do.
    """
    out = Path(out)
    if not isinstance(source, (str, os.PathLike)):  # the series' files (Slicer's database)
        files = [Path(f) for f in source]
        source = files[0].parent if files else Path(".")
    source = Path(source)
    if not source.is_dir():
        raise HRINetError(f"--format dicom needs a DICOM series folder as input (the new series "
                          f"copies its patient and study); {source} is a file: write a volume "
                          "file (.nrrd) instead")
    if out.name.lower().endswith((".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")):
        raise HRINetError(f"with --format dicom the output is a folder; give a folder name "
                          f"without the extension of {out.name}")
    here, there = source.resolve(), out.resolve()
    if there == here or here in there.parents or there in here.parents:
        raise HRINetError(f"output folder {out} is the input folder, inside it or holds it; "
                          "choose a folder outside the input (inputs are never modified)")
    if out.is_symlink() and not out.exists():
        raise HRINetError(f"output {out} is a symbolic link to nothing; remove the link or "
                          "choose another name")
    if out.exists() and not out.is_dir():
        raise HRINetError(f"output {out} is a file; with --format dicom give a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise HRINetError(f"output folder {out} exists and is not empty; allow replacing "
                              "it (--overwrite) or choose another name")
        if not is_derived_folder(out):
            raise HRINetError(f"output folder {out} holds files that are not a derived series "
                              "written by hrinet; it is left as it is: choose another name")
    check_parent_writable(out)
    _check_first_slice(source)
    return out


def _check_first_slice(folder: Path) -> None:
    """Before any work: the folder's first DICOM slice has the study's UIDs (the series read
    is checked again when written)."""
    for path in source_files(folder):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "ImagePositionPatient" in ds:
            check_study(ds, path.name)
            return


def is_derived_folder(folder: Path) -> bool:
    """Whether every file in ``folder`` is a slice of a derived series hrinet wrote (what
    ``--overwrite`` may replace)."""
    files = [p for p in Path(folder).iterdir()]
    if not files:
        return True
    for p in files:
        if not p.is_file() or p.is_symlink():
            return False
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:  # not DICOM at all
            return False
        if not is_ours(ds):
            return False
    return True
