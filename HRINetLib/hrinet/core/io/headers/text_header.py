"""What NRRD and MetaImage text headers share: reading the header, its dimension and sizes
(whole numbers, a size this machine can hold), and the detached data files it names (a single
name, a C file-name pattern, a ``LIST``), each kept inside the header's own folder."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List, Optional, Tuple

from hrinet.core.errors import HRINetError
from hrinet.core.memory import available_memory


def header_lines(path: Path, limit: int = 1 << 16) -> List[str]:
    """The text header of an NRRD or MetaImage file (up to the blank line or the data)."""
    with open(path, "rb") as f:
        raw = f.read(limit)
    end = raw.find(b"\n\n")
    text = raw[: end if end >= 0 else len(raw)].decode("latin-1")
    return text.splitlines()


def check_inside(header: Path, data: str, named: str = "") -> None:
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
MAX_DATA_FILES = 1 << 16
#: Longest header text read to find a ``LIST`` of data file names (a name a line).
MAX_LIST_BYTES = 16 << 20

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


def c_int(text: str) -> Optional[int]:
    """``int(atof(text))`` as C computes it (a leading number, truncated); None without one."""
    m = re.match(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", text)
    if m is None:
        return None
    value = float(m.group(1))
    return int(value) if math.isfinite(value) and abs(value) < 2 ** 31 else None


def whole_numbers(text: str) -> Optional[List[int]]:
    values = text.split()
    return [int(v) for v in values] if values and all(v.isdigit() for v in values) else None


def expand_pattern(path: Path, pattern: str, first: int, last: int, step: int,
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
    if count > MAX_DATA_FILES:
        raise HRINetError(f"{path} names {count} data files with the pattern {pattern}, more "
                          "than any volume has slices; the header is damaged, fix it")
    named = f"its file-name pattern {pattern}"
    return [(fmt % (first + k * step), named) for k in range(count)]


def read_header_text(path: Path) -> str:
    """The text of an NRRD or MetaImage header as the readers see it: its first 64 KiB, and
    where it names its data files in a ``LIST``, the names that follow (up to
    MAX_LIST_BYTES)."""
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
        if re.search(rb"(?:ElementDataFile|data ?file)\s*[=:]\s*LIST", raw, re.IGNORECASE):
            raw += f.read(MAX_LIST_BYTES)
            if f.read(1):
                raise HRINetError(f"{path} lists its data files in more than "
                                  f"{MAX_LIST_BYTES >> 20} MiB of names; the header is "
                                  "damaged, fix it")
    return raw.decode("latin-1")


def check_sizes(path: Path, count: str, sizes: str, names) -> None:
    """The header's dimension is a whole number and its sizes are that many whole numbers of at
    least 1: what the reader would otherwise fill in from memory it never set."""
    dimension, sizes_name = names
    values = sizes.split()
    if not count.strip().isdigit() or len(values) != int(count) or not all(
            v.isdigit() and int(v) >= 1 for v in values):
        raise HRINetError(f"{path}'s header is damaged: {dimension} {count.strip() or '(none)'} "
                          f"with {sizes_name} {sizes.strip() or '(none)'}; each of the "
                          f"{dimension} axes needs a whole number of voxels")


def check_described_size(path: Path, sizes: str, bytes_per_voxel: int) -> None:
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
