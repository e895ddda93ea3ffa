"""NIfTI-1/2 files and NIfTI-1 / Analyze 7.5 pairs (``.hdr`` + ``.img``): the header's spacing
and orientation are numbers, and every voxel it describes is there (ITK reads a cut-off file
with zero-filled slices and no error)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from hrinet.core.errors import HRINetError

#: NIfTI datatype codes whose bytes per voxel ITK reads (bitpix is read from the header too).
_NIFTI1, _NIFTI2 = 348, 540


def _gzip_length(path: Path) -> int:
    """Bytes a gzip file decompresses to; a cut-off stream raises HRINetError."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    n = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            n += len(d.decompress(chunk))
            while d.unused_data:  # a multi-member gzip file: the next member
                rest = d.unused_data
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                n += len(d.decompress(rest))
    if not d.eof:
        raise HRINetError(f"{path} is cut off (its compressed data ends early); the file is "
                          "incomplete, copy or export it again")
    return n


def _nifti_head(path: Path) -> bytes:
    """The first bytes of a NIfTI (or Analyze) file, enough for either header version."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(_NIFTI2)
    except gzip.BadGzipFile:
        raise HRINetError(f"cannot read {path}: not gzip-compressed data although it is named "
                          ".gz; check the file is a complete NIfTI file") from None
    except (OSError, EOFError):
        raise HRINetError(f"{path} is cut off or damaged (its data cannot be read to the end "
                          "of its header); the file is incomplete, copy or export it again") \
            from None
    if len(head) < _NIFTI1:
        raise HRINetError(f"{path} is cut off inside its header; the file is incomplete")
    return head


#: Where NIfTI-1 and NIfTI-2 keep the fields of the qform (quaternion and offset) and the sform
#: (three affine rows): (code offset, code format, first value offset, value format, names).
_FORMS = {_NIFTI1: {"qform": (252, "h", 256, "6f", ("quatern_b", "quatern_c", "quatern_d",
                                                    "qoffset_x", "qoffset_y", "qoffset_z")),
                    "sform": (254, "h", 280, "12f", tuple(f"srow_{a}[{i}]" for a in "xyz"
                                                          for i in range(4)))},
          _NIFTI2: {"qform": (344, "i", 352, "6d", ("quatern_b", "quatern_c", "quatern_d",
                                                    "qoffset_x", "qoffset_y", "qoffset_z")),
                    "sform": (348, "i", 400, "12d", tuple(f"srow_{a}[{i}]" for a in "xyz"
                                                          for i in range(4)))}}


def _check_forms(path: Path, head: bytes, size: int, endian: str) -> None:
    """A NIfTI qform or sform the reader uses (its code above 0) holds only finite numbers: the
    reader would otherwise turn a NaN quaternion into a flipped direction and a NaN offset into
    an origin of 0, silently."""
    for form, (code_at, code_fmt, at, fmt, names) in _FORMS[size].items():
        code = struct.unpack_from(endian + code_fmt, head, code_at)[0]
        if code <= 0:
            continue
        values = struct.unpack_from(endian + fmt, head, at)
        bad = [(n, v) for n, v in zip(names, values) if not math.isfinite(v)]
        if bad:
            name, value = bad[0]
            raise HRINetError(f"{path} has a {form} (the volume's orientation and origin) holding "
                              f"{value} ({name}, {form}_code {code}); fix the header so the "
                              f"{form} holds numbers, or set its {form}_code to 0")


def _header_kind(head: bytes) -> Optional[tuple]:
    """``(header size, byte order)`` of a NIfTI-1 or NIfTI-2 header (either byte order), or
    None for any other file."""
    for endian in "<>":
        size = struct.unpack(endian + "i", head[:4])[0]
        if size in (_NIFTI1, _NIFTI2):
            return size, endian
    return None


def _nifti_header(path: Path, head: bytes):
    """``(header size, bytes before the voxels as the header says, bytes of voxels)`` of a
    NIfTI-1/2 or Analyze 7.5 header, its spacing and orientation checked; None for a file that
    is neither (the reader says what it is)."""
    found = _header_kind(head)
    if found is None:
        return None
    size, endian = found
    if size == _NIFTI1:
        dims = struct.unpack(endian + "8h", head[40:56])
        bitpix = struct.unpack(endian + "h", head[72:74])[0]
        pixdim = struct.unpack(endian + "8f", head[76:108])
        offset = struct.unpack(endian + "f", head[108:112])[0]
        nifti = head[344:348] in (b"n+1\0", b"ni1\0")  # else Analyze 7.5: no qform, no sform
    else:
        if len(head) < _NIFTI2:
            raise HRINetError(f"{path} is cut off inside its header; the file is incomplete")
        bitpix = struct.unpack(endian + "h", head[14:16])[0]
        dims = struct.unpack(endian + "8q", head[16:80])
        pixdim = struct.unpack(endian + "8d", head[104:168])
        offset = struct.unpack(endian + "q", head[168:176])[0]
        nifti = True
    ndim = max(1, min(7, dims[0]))
    for i in range(1, min(ndim, 3) + 1):
        if pixdim[i] == 0:
            raise HRINetError(f"{path} has a zero voxel spacing in its header (pixdim along "
                              f"axis {i}); fix the header so every spacing is a positive number "
                              "of mm")
        if not math.isfinite(pixdim[i]):
            raise HRINetError(f"{path} has voxel spacing {pixdim[i]} along axis {i} in its header "
                              "(pixdim); fix the header so every spacing is a positive number "
                              "of mm")
    if not math.isfinite(offset):
        raise HRINetError(f"{path} has a data offset that is not a number ({offset}, vox_offset) "
                          "in its header; the header is damaged, export the volume again")
    if nifti:
        _check_forms(path, head, size, endian)
    voxels = 1
    for d in dims[1:ndim + 1]:
        voxels *= max(1, int(d))
    return size, int(offset), voxels * max(1, bitpix) // 8


def check_nifti(path: Path) -> None:
    """A NIfTI file holds all the voxels its header describes, with a usable spacing and, where
    its qform or sform is used, an orientation and origin that are numbers."""
    header = _nifti_header(path, _nifti_head(path))
    if header is None:
        return  # not NIfTI-1/2 (ITK will say what it is)
    size, offset, data = header
    need = max(offset, size) + data
    have = _gzip_length(path) if path.name.lower().endswith(".gz") else path.stat().st_size
    if have < need:
        raise HRINetError(f"{path} is cut off: its header describes {need} bytes, the file holds "
                          f"{have}; the file is incomplete, copy or export it again")


#: The endings of a NIfTI-1 / Analyze 7.5 pair's header and data files, in the order the NIfTI
#: library looks for them beside the name it is given.
_PAIR_HEADERS = (".hdr", ".hdr.gz", ".HDR", ".HDR.GZ")
_PAIR_DATA = (".img", ".img.gz", ".IMG", ".IMG.GZ")


def pair_files(path: Path):
    """``(header, data)`` of the NIfTI/Analyze pair ``path`` names (either file of it); each
    None where no such file exists."""
    lower = path.name.lower()
    ending = next(e for e in (".hdr.gz", ".img.gz", ".hdr", ".img") if lower.endswith(e))
    stem = path.name[: -len(ending)]
    if ending.startswith(".hdr"):
        header: Optional[Path] = path
    else:
        header = next((path.with_name(stem + e) for e in _PAIR_HEADERS
                       if path.with_name(stem + e).is_file()), None)
    data = next((path.with_name(stem + e) for e in _PAIR_DATA
                 if path.with_name(stem + e).is_file()), None)
    return header, data


def check_nifti_pair(path: Path) -> None:
    """A NIfTI-1 or Analyze 7.5 pair (``.hdr`` + ``.img``, either named, also gzip-compressed):
    the header is checked as a NIfTI header is, and the data file holds every voxel it
    describes. The reader fills a cut-off or empty ``.img`` with zeros and says nothing."""
    header, data = pair_files(path)
    if header is None:
        return  # the reader says the header is missing
    described = _nifti_header(header, _nifti_head(header))
    if described is None:
        return  # not a NIfTI/Analyze header (the reader says what it is)
    _, offset, voxel_bytes = described
    if data is None:
        raise HRINetError(f"{header} is the header of a pair whose data file (.img) is missing; "
                          "copy the .img file beside the header and retry")
    need = max(0, offset) + voxel_bytes
    have = _gzip_length(data) if data.name.lower().endswith(".gz") else data.stat().st_size
    if have < need:
        raise HRINetError(f"{data} is cut off: its header {header.name} describes {need} bytes "
                          f"of voxels, the file holds {have}; the pair is incomplete, copy or "
                          "export it again")


def nifti_forms(path: Path) -> Optional[tuple]:
    """``(qform, sform)`` of a NIfTI-1/2 file where both are set (codes above 0): each the 3 x 4
    matrix from voxel indices to RAS mm; None otherwise (one or neither set, Analyze, damaged:
    the checks above speak for a damaged one)."""
    try:
        head = _nifti_head(Path(path))
    except HRINetError:
        return None
    found = _header_kind(head)
    if found is None:
        return None
    size, endian = found
    if size == _NIFTI1 and head[344:348] not in (b"n+1\0", b"ni1\0"):
        return None
    forms = {}
    for form, (code_at, code_fmt, at, fmt, _) in _FORMS[size].items():
        if struct.unpack_from(endian + code_fmt, head, code_at)[0] <= 0:
            return None
        forms[form] = np.asarray(struct.unpack_from(endian + fmt, head, at), dtype=np.float64)
    pixdim = np.asarray(struct.unpack_from(endian + ("8f" if size == _NIFTI1 else "8d"), head,
                                           76 if size == _NIFTI1 else 104), dtype=np.float64)
    b, c, d, *offset = forms["qform"]
    a = math.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
    rotation = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                         [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                         [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - b * b - c * c]])
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    qform = np.column_stack([rotation * np.array([pixdim[1], pixdim[2], qfac * pixdim[3]]),
                             offset])
    return qform, forms["sform"].reshape(3, 4)
