"""What a volume file's header promises, checked before the image reader is trusted with it.

ITK reads a cut-off NIfTI file with zero-filled slices and no error, turns a spacing of 0 or NaN
into 1 mm, and follows a detached header's data file wherever it points (``../../etc/passwd``).
Each of these would give the user a silently wrong volume, or read a file they never named. So
every file is checked here first: the data the header describes is all there, the spacing is a
positive number, and a detached data file lies in the header's own folder.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from pathlib import Path
from typing import List

from hrinet.core.errors import HRINetError
from hrinet.core.memory import available_memory

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


def check_nifti(path: Path) -> None:
    """A NIfTI file holds all the voxels its header describes, with a usable spacing."""
    gz = path.name.lower().endswith(".gz")
    opener = gzip.open if gz else open
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
    for endian in "<>":
        size = struct.unpack(endian + "i", head[:4])[0]
        if size in (_NIFTI1, _NIFTI2):
            break
    else:
        return  # not NIfTI-1/2 (ITK will say what it is)
    if size == _NIFTI1:
        dims = struct.unpack(endian + "8h", head[40:56])
        bitpix = struct.unpack(endian + "h", head[72:74])[0]
        pixdim = struct.unpack(endian + "8f", head[76:108])
        offset = int(struct.unpack(endian + "f", head[108:112])[0])
    else:
        if len(head) < _NIFTI2:
            raise HRINetError(f"{path} is cut off inside its header; the file is incomplete")
        bitpix = struct.unpack(endian + "h", head[14:16])[0]
        dims = struct.unpack(endian + "8q", head[16:80])
        pixdim = struct.unpack(endian + "8d", head[104:168])
        offset = struct.unpack(endian + "q", head[168:176])[0]
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
    voxels = 1
    for d in dims[1:ndim + 1]:
        voxels *= max(1, int(d))
    need = max(offset, size) + voxels * max(1, bitpix) // 8
    have = _gzip_length(path) if gz else path.stat().st_size
    if have < need:
        raise HRINetError(f"{path} is cut off: its header describes {need} bytes, the file holds "
                          f"{have}; the file is incomplete, copy or export it again")


def _header_lines(path: Path, limit: int = 1 << 16) -> List[str]:
    """The text header of an NRRD or MetaImage file (up to the blank line or the data)."""
    with open(path, "rb") as f:
        raw = f.read(limit)
    end = raw.find(b"\n\n")
    text = raw[: end if end >= 0 else len(raw)].decode("latin-1")
    return text.splitlines()


def _inside(header: Path, data: str) -> None:
    target = (header.parent / data).resolve()
    if header.parent.resolve() not in target.parents:
        raise HRINetError(f"{header} points at data outside its own folder ({data}); move the "
                          "data file beside the header and name it without a folder")


def _data_file_names(path: Path, lines: List[str]) -> List[str]:
    """The detached data files a header's lines name, as written (NRRD ``data file:``, also a
    ``LIST`` of them; MetaImage ``ElementDataFile =`` other than ``LOCAL``); file-name patterns
    (``%``) left out."""
    meta = path.name.lower().endswith((".mha", ".mhd"))
    names = []
    for i, line in enumerate(lines):
        key, _, value = line.partition("=" if meta else ":")
        key, value = key.strip(), value.strip()
        if meta:
            if key == "ElementDataFile" and value.upper() != "LOCAL" and value and \
                    not value.upper().startswith("LIST"):
                names.append(value.split()[0])
        elif key.lower() in ("data file", "datafile") and value:
            if value.upper().startswith("LIST"):
                names += [ln.strip() for ln in lines[i + 1:] if ln.strip()]
            else:
                names.append(value.split()[0])
    return [n for n in names if "%" not in n]


#: Bytes a voxel of each NRRD ``type`` / MetaImage ``ElementType`` takes.
_NRRD_BYTES = {**dict.fromkeys(("char", "signed char", "int8", "int8_t", "uchar", "unsigned char",
                                "uint8", "uint8_t"), 1),
               **dict.fromkeys(("short", "short int", "signed short", "signed short int",
                                "int16", "int16_t", "ushort", "unsigned short",
                                "unsigned short int", "uint16", "uint16_t"), 2),
               **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint",
                                "unsigned int", "uint32", "uint32_t", "float"), 4),
               **dict.fromkeys(("longlong", "long long", "long long int", "signed long long",
                                "signed long long int", "int64", "int64_t", "ulonglong",
                                "unsigned long long", "unsigned long long int", "uint64",
                                "uint64_t", "double"), 8)}
_META_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4,
               "MET_UINT": 4, "MET_FLOAT": 4, "MET_LONG": 8, "MET_ULONG": 8,
               "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_DOUBLE": 8}


def _check_sizes(path: Path, count: str, sizes: str, names) -> None:
    """The header's dimension is a whole number and its sizes are that many whole numbers of at
    least 1: what the reader would otherwise fill in from memory it never set."""
    dimension, sizes_name = names
    values = sizes.split()
    if not count.strip().isdigit() or len(values) != int(count) or not all(
            v.isdigit() and int(v) >= 1 for v in values):
        raise HRINetError(f"{path}'s header is damaged: {dimension} {count.strip() or '(none)'} "
                          f"with {sizes_name} {sizes.strip() or '(none)'}; each of the "
                          f"{dimension} axes needs a whole number of voxels")


def _check_described_size(path: Path, sizes: str, bytes_per_voxel: int) -> None:
    """Refuse a header whose sizes describe more voxels than this machine can hold: the reader
    would allocate it before reading a byte (a damaged or crafted header must not take the
    machine's memory)."""
    dims = [float(v) for v in sizes.split()]
    total = float(bytes_per_voxel)
    for d in dims:
        total *= d
    limit = available_memory() or (64 << 30)
    if total > limit:
        raise HRINetError(f"{path}'s header describes {' x '.join(sizes.split())} voxels "
                          f"({total / 2 ** 30:.1f} GiB), more than this machine's "
                          f"{limit / 2 ** 30:.1f} GiB of memory; the header is damaged, or "
                          "the volume must be cropped on a larger machine")


def check_nrrd(path: Path) -> None:
    """An NRRD header: finite positive spacings; a detached data file in the header's folder."""
    lines = _header_lines(path)
    if not lines or not lines[0].startswith("NRRD"):
        return
    for line in lines[1:]:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("spacings", "space directions"):
            numbers = re.findall(r"[-+]?(?:nan|inf|\d*\.?\d+(?:e[-+]?\d+)?)", value.lower())
            if any(not math.isfinite(float(n)) for n in numbers):
                raise HRINetError(f"{path} has a spacing that is not a number ({value.strip()}); "
                                  "fix the header so every spacing is a positive number of mm")
            if key == "spacings" and any(float(n) == 0 for n in numbers):
                raise HRINetError(f"{path} has a zero voxel spacing in its header; fix the "
                                  "header so every spacing is a positive number of mm")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    if "sizes" in fields or "dimension" in fields:
        _check_sizes(path, fields.get("dimension", ""), fields.get("sizes", ""),
                     ("dimension", "sizes"))
    if fields.get("type", "").lower() in _NRRD_BYTES and "sizes" in fields:
        _check_described_size(path, fields["sizes"], _NRRD_BYTES[fields["type"].lower()])
    for name in _data_file_names(path, lines):
        _inside(path, name)


def check_metaimage(path: Path) -> None:
    """A MetaImage header: a size this machine can hold; a detached data file in the header's
    folder."""
    lines = _header_lines(path)
    fields = {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in lines)}
    if "DimSize" in fields or "NDims" in fields:
        _check_sizes(path, fields.get("NDims", ""), fields.get("DimSize", ""),
                     ("NDims", "DimSize"))
    if fields.get("ElementType") in _META_BYTES and "DimSize" in fields:
        channels = fields.get("ElementNumberOfChannels", "1")
        per_voxel = _META_BYTES[fields["ElementType"]] * (int(channels) if channels.isdigit()
                                                         and int(channels) > 0 else 1)
        _check_described_size(path, fields["DimSize"], per_voxel)
        _check_local_data(path, fields, per_voxel)
    for name in _data_file_names(path, lines):
        _inside(path, name)


def _check_local_data(path: Path, fields: dict, per_voxel: int) -> None:
    """A MetaImage file holding its own data (``LOCAL``) holds all of it: the voxels (raw) or
    the ``CompressedDataSize`` bytes (compressed). The reader says "No such file" otherwise."""
    if fields.get("ElementDataFile", "").upper() != "LOCAL" or "HeaderSize" in fields:
        return
    compressed = fields.get("CompressedData", "False").lower() == "true"
    if compressed:
        size = fields.get("CompressedDataSize", "")
        if not size.isdigit():
            return
        expected = int(size)
    else:
        expected = per_voxel
        for d in fields["DimSize"].split():
            expected *= int(d)
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    marker = re.search(rb"ElementDataFile\s*=\s*LOCAL[ \t]*\r?\n", head)
    if marker is None:
        return
    held = path.stat().st_size - marker.end()
    if held < expected:
        raise HRINetError(f"{path} is cut off: its header describes {expected} bytes of "
                          f"{'compressed ' if compressed else ''}voxel data, the file holds "
                          f"{held}; the file is incomplete, copy or export it again")


def data_files(path: Path) -> List[Path]:
    """The detached data files a header names (empty for a file that holds its own data)."""
    if not path.name.lower().endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
        return []
    return [path.parent / name for name in _data_file_names(path, _header_lines(path))]


def check_file(path: Path) -> None:
    """Every check that applies to ``path``'s format (by its suffix)."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        check_nifti(path)
    elif name.endswith((".nrrd", ".nhdr")):
        check_nrrd(path)
    elif name.endswith((".mha", ".mhd")):
        check_metaimage(path)
