"""What a volume file's header promises, checked before the image reader is trusted with it.

ITK reads a cut-off NIfTI file with zero-filled slices and no error, turns a spacing of 0 or NaN
into 1 mm, and follows a detached header's data file wherever it points (``../../etc/passwd``).
Each of these would give the user a silently wrong volume, or read a file they never named. So
every file is checked here first: the data the header describes is all there (a NIfTI/Analyze
pair's ``.img`` too), the spacing is a positive number, a NIfTI orientation in use is made of
numbers, and every detached data file (a single name, a file-name pattern, a ``LIST``) lies in
the header's own folder.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from pathlib import Path
from typing import List, Optional, Tuple

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


def _nifti_header(path: Path, head: bytes):
    """``(header size, bytes before the voxels as the header says, bytes of voxels)`` of a
    NIfTI-1/2 or Analyze 7.5 header, its spacing and orientation checked; None for a file that
    is neither (the reader says what it is)."""
    for endian in "<>":
        size = struct.unpack(endian + "i", head[:4])[0]
        if size in (_NIFTI1, _NIFTI2):
            break
    else:
        return None
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


def _pair_files(path: Path):
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
    header, data = _pair_files(path)
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


def _header_lines(path: Path, limit: int = 1 << 16) -> List[str]:
    """The text header of an NRRD or MetaImage file (up to the blank line or the data)."""
    with open(path, "rb") as f:
        raw = f.read(limit)
    end = raw.find(b"\n\n")
    text = raw[: end if end >= 0 else len(raw)].decode("latin-1")
    return text.splitlines()


def _inside(header: Path, data: str, named: str = "") -> None:
    """Refuse ``data`` (a data file name as ``header`` gives it, relative to its folder) unless it
    resolves inside the header's folder; ``named`` says how the header named it (a pattern)."""
    try:
        target = (header.parent / data).resolve()
    except (ValueError, OSError, RuntimeError):  # a NUL byte, a link loop
        raise HRINetError(f"{header} names a data file that is not a usable file name "
                          f"({data!r}); the header is damaged, fix or export it again") from None
    if header.parent.resolve() not in target.parents:
        how = f", from {named}" if named and named != data else ""
        raise HRINetError(f"{header} points at data outside its own folder ({data}{how}); move "
                          "the data file beside the header and name it without a folder")


#: Most data files one header may name (one per slice at most); more means a damaged header.
_MAX_DATA_FILES = 1 << 16
#: Longest header text read to find a ``LIST`` of data file names (a name a line).
_MAX_LIST_BYTES = 16 << 20

#: One C integer conversion of a file-name pattern: flags, width, precision, length, type.
_INT_CONVERSION = re.compile(r"%([-+ #0]*\d*(?:\.\d+)?)(?:hh|ll|[hljztL])?([diouxX])")


def _pattern_format(pattern: str) -> Optional[str]:
    """The Python ``%`` format that writes what C's ``printf(pattern, i)`` writes for a file-name
    pattern holding exactly one integer conversion (``%d``, ``%03d``, ...; ``%%`` is a ``%``);
    None for any other pattern (no conversion, several, or ``%s``, which C would follow into
    memory it never set)."""
    out, i, found = [], 0, 0
    while i < len(pattern):
        j = pattern.find("%", i)
        if j < 0:
            out.append(pattern[i:])
            break
        out.append(pattern[i:j])
        if pattern.startswith("%%", j):
            out.append("%%")
            i = j + 2
            continue
        m = _INT_CONVERSION.match(pattern, j)
        if m is None:
            return None
        out.append("%" + m.group(1) + ("d" if m.group(2) in "iu" else m.group(2)))
        found += 1
        i = m.end()
    return "".join(out) if found == 1 else None


def _c_int(text: str) -> Optional[int]:
    """``int(atof(text))`` as C computes it (a leading number, truncated); None without one."""
    m = re.match(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", text)
    if m is None:
        return None
    value = float(m.group(1))
    return int(value) if math.isfinite(value) and abs(value) < 2 ** 31 else None


def _whole_numbers(text: str) -> Optional[List[int]]:
    values = text.split()
    return [int(v) for v in values] if values and all(v.isdigit() for v in values) else None


def _expand(path: Path, pattern: str, first: int, last: int, step: int,
            described: Optional[int]) -> List[Tuple[str, str]]:
    """The names ``pattern`` gives for ``first, first + step, ...`` up to ``last`` (inclusive),
    each with the pattern it came from; at most ``described`` names (the header's slices) are
    needed. Refuses a pattern that cannot be followed or names more files than a header can."""
    fmt = _pattern_format(pattern)
    if fmt is None:
        raise HRINetError(f"{path} names its data files with the pattern {pattern}, which is not "
                          "a file name with one number (such as slice%03d.raw); fix the header "
                          "or list the data files by name")
    if step == 0 or (last - first) * step < 0:
        raise HRINetError(f"{path} names its data files with the pattern {pattern} from "
                          f"{first} to {last} in steps of {step}, which names no file or never "
                          "ends; fix the header's numbers")
    count = (last - first) // step + 1
    if described is not None:
        count = min(count, described)
    if count > _MAX_DATA_FILES:
        raise HRINetError(f"{path} names {count} data files with the pattern {pattern}, more "
                          "than any volume has slices; the header is damaged, fix it")
    named = f"its file-name pattern {pattern}"
    return [(fmt % (first + k * step), named) for k in range(count)]


def _metaimage_data_files(path: Path, text: str) -> List[Tuple[str, str]]:
    """What MetaIO reads for ``ElementDataFile``: one file (also tried with ``.gz`` and ``.Z``),
    a ``LIST`` of names on the lines that follow, or a pattern ``name%d.raw [min [max [step]]]``
    (defaults: from 1, one file per slice). Lists or patterns that name fewer files than the
    header has slices are refused: the reader leaves those slices as whatever memory held."""
    lines = text.split("\n")
    fields, at, value = {}, None, ""
    for i, line in enumerate(lines):
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        fields[key] = value
        if key.lower() == "elementdatafile":  # the header's last field: what follows is data
            at = i
            break
    if at is None or not value or value in ("LOCAL", "Local", "local"):
        return []
    dims = _whole_numbers(fields.get("DimSize", ""))
    ndims = len(dims) if dims else None
    if value.startswith("LIST"):
        words = value.split()
        file_dim = _c_int(words[1]) if len(words) > 1 else 0
        file_dim = file_dim or 0
        if file_dim < 0:
            raise HRINetError(f"{path}'s ElementDataFile = {value} gives a negative file "
                              "dimension; the header is damaged, fix it")
        names = [ln.strip() for ln in lines[at + 1:] if ln.strip()]
        if len(names) > _MAX_DATA_FILES:
            raise HRINetError(f"{path} lists {len(names)} data files, more than any volume "
                              "has slices; the header is damaged, fix it")
        if dims:
            if file_dim == 0 or file_dim > ndims:
                file_dim = ndims - 1
            needed = math.prod(dims[file_dim:])
            # MetaIO takes only whole lines: a last name without its line end is never read
            complete = [ln for ln in lines[at + 1:-1]]
            if len(complete) < needed:
                raise HRINetError(f"{path} lists {len(complete)} data file(s) for {needed} "
                                  "slices (each name on its own line, ending with a line "
                                  "break); the rest would be read as whatever memory held: "
                                  "list every data file")
        return [(name, "its LIST of data files") for name in names]
    if "%" in value:
        words = value.split()
        if dims is None:
            return [(value, ""), (words[0], "")]  # the reader refuses it: no slices to count
        slices = dims[-1]
        first, last, step = 1, slices, 1
        if len(words) >= 5:
            if not all(w.isdigit() for w in words[-3:]):
                return [(value, ""), (words[0], "")]  # the reader refuses it
            pattern = " ".join(words[:-3])
            first, last, step = (int(w) for w in words[-3:])
        else:
            pattern = words[0]
            numbers = [_c_int(w) or 0 for w in words[1:4]]
            if len(numbers) >= 1:
                first = numbers[0]
                last = first + slices - 1
            if len(numbers) >= 2:
                last = numbers[1]
                step = int((last - first) / slices) if slices else 0
            if len(numbers) >= 3:
                step = numbers[2]
        if step > 0 and 1 + (last - first) // step > slices:
            last = (slices - 1) * step + first
        if step != 0 and (last - first) * step >= 0 and (last - first) // step + 1 < slices:
            raise HRINetError(f"{path} names {(last - first) // step + 1} data file(s) with the "
                              f"pattern {value} for {slices} slices; the rest would be read as "
                              "whatever memory held: fix the pattern's numbers")
        if step < 0:  # MetaIO counts up to the last number: a step down never ends
            raise HRINetError(f"{path} names its data files with the pattern {value}, whose "
                              "step goes down; the reader counts up: fix the header's numbers")
        return _expand(path, pattern, first, last, step, slices)
    names = [value, value + ".gz", value + ".Z"]
    if value.split()[0] != value:
        names.append(value.split()[0])
    return [(name, "") for name in names]


def _nrrd_data_files(path: Path, text: str) -> List[Tuple[str, str]]:
    """What the NRRD reader reads for ``data file``: one file (the whole rest of the line), a
    ``LIST [subdim]`` of names on every following line, or a pattern ``name%d.raw min max step
    [subdim]`` (the first ``%`` a number's, such as ``%03d``)."""
    lines = text.split("\n")
    header_end = next((i for i, ln in enumerate(lines) if not ln.strip("\r")), len(lines))
    fields, found = {}, []
    for i, line in enumerate(lines[1:header_end], start=1):
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        fields[key] = value
        if key in ("data file", "datafile") and value:
            found.append((i, value))
    names: List[Tuple[str, str]] = []
    sizes = _whole_numbers(fields.get("sizes", ""))
    for i, value in found:
        if value.startswith("LIST"):
            listed = [ln.strip() for ln in lines[i + 1:] if ln.strip()]
            if len(listed) > _MAX_DATA_FILES:
                raise HRINetError(f"{path} lists {len(listed)} data files, more than any volume "
                                  "has slices; the header is damaged, fix it")
            names += [(name, "its LIST of data files") for name in listed]
            continue
        words = value.split()
        numbers = re.match(r"\s*([-+]?\d+)\s+([-+]?\d+)\s+([-+]?\d+)(?:\s+(\d+))?",
                           value[len(words[0]):])
        if re.match(r"(?:[^%]|%%)*%\d*d", words[0]) and numbers:
            first, last, step = (int(numbers.group(k)) for k in (1, 2, 3))
            described = None
            if sizes:
                sub = int(numbers.group(4)) if numbers.group(4) else len(sizes) - 1
                described = math.prod(sizes[sub:]) if 1 <= sub <= len(sizes) else None
            names += _expand(path, words[0], first, last, step, described)
        else:
            names += [(value, "")] + ([(words[0], "")] if words[0] != value else [])
    return names


def _data_file_names(path: Path) -> List[Tuple[str, str]]:
    """Every detached data file the header at ``path`` names, as written (relative to its
    folder unless absolute), each with how it was named (for the message): single names,
    patterns expanded with their numbers as the reader expands them, ``LIST`` lines, in NRRD
    and MetaImage alike."""
    name = path.name.lower()
    meta = name.endswith((".mha", ".mhd"))
    if not meta and not name.endswith((".nrrd", ".nhdr")):
        return []
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
        if re.search(rb"(?:ElementDataFile|data ?file)\s*[=:]\s*LIST", raw, re.IGNORECASE):
            raw += f.read(_MAX_LIST_BYTES)
            if f.read(1):
                raise HRINetError(f"{path} lists its data files in more than "
                                  f"{_MAX_LIST_BYTES >> 20} MiB of names; the header is "
                                  "damaged, fix it")
    text = raw.decode("latin-1")
    if meta:
        return _metaimage_data_files(path, text)
    if not text.startswith("NRRD"):
        return []
    return _nrrd_data_files(path, text)


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
    for name, named in _data_file_names(path):
        _inside(path, name, named)


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
    for name, named in _data_file_names(path):
        _inside(path, name, named)


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
    """The detached data files a header names (empty for a file that holds its own data): for
    NRRD and MetaImage every file its data file field names, for a NIfTI/Analyze pair the other
    file of the pair."""
    if path.name.lower().endswith((".hdr", ".hdr.gz", ".img", ".img.gz")):
        return [f for f in _pair_files(path) if f is not None and f != path]
    try:
        return [path.parent / name for name, _ in _data_file_names(path)]
    except (HRINetError, OSError):
        return []  # a header naming its data files in a way no reader follows: reading refuses it


def check_file(path: Path) -> None:
    """Every check that applies to ``path``'s format (by its suffix)."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        check_nifti(path)
    elif name.endswith((".hdr", ".hdr.gz", ".img", ".img.gz")):
        check_nifti_pair(path)
    elif name.endswith((".nrrd", ".nhdr")):
        check_nrrd(path)
    elif name.endswith((".mha", ".mhd")):
        check_metaimage(path)
