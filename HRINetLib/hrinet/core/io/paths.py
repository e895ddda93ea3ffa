"""The paths the tools read and write: volume extensions and names, and the checks an output
path passes before any work starts (so that a bad one costs nothing)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Union

from hrinet.core.errors import HRINetError
from hrinet.core.io.headers import data_files

PathLike = Union[str, os.PathLike]

READ_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
# Single-file formats only: a detached header and its data cannot be renamed into place atomically.
WRITE_EXTENSIONS = (".nrrd", ".nii", ".nii.gz", ".mha")


def volume_name(path) -> str:
    """A volume's name for tables, messages and outputs: its file or folder name without the
    volume extension (``chest.nii.gz`` -> ``chest``)."""
    name = Path(str(path).rstrip("/")).name
    for ext in sorted(READ_EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def file_suffix(path: Path) -> str:
    """The extension that chooses a file's format, in lower case (``.nii.gz`` whole)."""
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


def check_file_name(name: PathLike, what: str = "output") -> None:
    """Refuse a file name typed with a trailing slash, as a folder's is: ``Path()`` drops the
    slash, so the file would be written under the name without it."""
    if isinstance(name, str) and name.endswith(("/", os.sep)):
        raise HRINetError(f"{what} {name} ends with a slash, as a folder does; name the file")


def check_output_path(out: PathLike, inputs: Iterable[PathLike] = (), overwrite: bool = False) -> Path:
    """Validate an output path before any work starts, so a bad one costs nothing.

    Raises:
        HRINetError: OUT is one of the inputs, exists without ``overwrite``, has an unknown
            extension, or its folder is missing or not writable.
    """
    check_file_name(out)
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
    if file_suffix(out) not in WRITE_EXTENSIONS:
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
    check_parent_writable(path)
    return path


def check_parent_writable(path: Path) -> None:
    """The folder that will hold ``path`` (a file, or a folder such as a derived DICOM series)
    exists and may be written to."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise HRINetError(f"cannot write {path}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise HRINetError(f"cannot write {path}: no write permission in {parent}")


def make_folder(folder: Path, option: str = "--out") -> None:
    """Make the output folder ``folder`` (and its parents) if needed.

    Raises:
        HRINetError: one line naming the folder, the system's reason (a file in the way, a
            read-only file system, no permission) and the option to change.
    """
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        in_way = next((p for p in (Path(folder), *Path(folder).parents)
                       if p.exists() and not p.is_dir()), None)
        if in_way is not None:  # a file of the user's where a folder goes: never replaced
            raise HRINetError(f"cannot make the {option} folder {folder}: {in_way} is a file "
                              "there; move it, or choose another folder") from None
        raise HRINetError(f"cannot make the {option} folder {folder} ({exc.strerror}); give "
                          "a folder that can be made there") from None
