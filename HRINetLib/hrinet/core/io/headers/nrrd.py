"""NRRD headers (``.nrrd``, ``.nhdr``): finite positive spacings, whole sizes this machine can
hold, and every detached data file in the header's own folder."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List, Tuple

from hrinet.core.constants import MAX_VOXEL_MM
from hrinet.core.errors import HRINetError
from hrinet.core.io.headers.text_header import (
    MAX_DATA_FILES,
    check_described_size,
    check_inside,
    check_sizes,
    expand_pattern,
    header_lines,
    read_header_text,
    whole_numbers,
)

#: Bytes a voxel of each NRRD ``type`` takes.
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


def nrrd_data_files(path: Path) -> List[Tuple[str, str]]:
    """Every detached data file the NRRD header at ``path`` names, as written (relative to its
    folder unless absolute), each with how it was named (for the message): single names,
    patterns expanded with their numbers as the reader expands them, ``LIST`` lines."""
    text = read_header_text(path)
    if not text.startswith("NRRD"):
        return []
    return _data_files(path, text)


def _data_files(path: Path, text: str) -> List[Tuple[str, str]]:
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
    sizes = whole_numbers(fields.get("sizes", ""))
    for i, value in found:
        if value.startswith("LIST"):
            listed = [ln.strip() for ln in lines[i + 1:] if ln.strip()]
            if len(listed) > MAX_DATA_FILES:
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
            names += expand_pattern(path, words[0], first, last, step, described)
        else:
            names += [(value, "")] + ([(words[0], "")] if words[0] != value else [])
    return names


#: NRRD ``space units`` that are millimetres (any letter case; empty: unsaid, read as mm).
MM_UNITS = ("", "mm", "millimeter", "millimeters", "millimetre", "millimetres")


def check_nrrd(path: Path) -> None:
    """An NRRD header: finite positive spacings; a detached data file in the header's folder."""
    lines = header_lines(path)
    if not lines or not lines[0].startswith("NRRD"):
        return
    for line in lines[1:]:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("spacings", "space directions"):
            numbers = re.findall(r"[-+]?(?:nan|inf|(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)",
                                 value.lower())
            if any(not math.isfinite(float(n)) for n in numbers):
                raise HRINetError(f"{path} has a spacing that is not a number ({value.strip()}); "
                                  "fix the header so every spacing is a positive number of mm")
            if any(abs(float(n)) > MAX_VOXEL_MM for n in numbers):
                raise HRINetError(f"{path} has a voxel spacing over {MAX_VOXEL_MM:g} mm in its "
                                  f"header ({value.strip()[:80]}); fix the header so every "
                                  "spacing is the voxel size in mm")
            if key == "spacings" and any(float(n) == 0 for n in numbers):
                raise HRINetError(f"{path} has a zero voxel spacing in its header; fix the "
                                  "header so every spacing is a positive number of mm")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    units = [u.strip() for u in re.findall(r'"([^"]*)"', fields.get("space units", ""))]
    if any(u.lower() not in MM_UNITS for u in units):  # ITK (and Slicer) read them as mm
        raise HRINetError(f"{path} gives its geometry in {' '.join(units)} (space units), which "
                          "would be read as mm; rewrite the header in mm (space directions and "
                          "origin scaled, space units \"mm\")")
    if "sizes" in fields or "dimension" in fields:
        check_sizes(path, fields.get("dimension", ""), fields.get("sizes", ""),
                    ("dimension", "sizes"))
    if fields.get("type", "").lower() in _NRRD_BYTES and "sizes" in fields:
        check_described_size(path, fields["sizes"], _NRRD_BYTES[fields["type"].lower()])
    for name, named in nrrd_data_files(path):
        check_inside(path, name, named)
