"""MetaImage headers (``.mha``, ``.mhd``): whole sizes this machine can hold, a file holding its
own data holds all of it, and every detached data file lies in the header's own folder."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List, Tuple

from hrinet.core.errors import HRINetError
from hrinet.core.io.headers.text_header import (
    MAX_DATA_FILES,
    c_int,
    check_described_size,
    check_inside,
    check_sizes,
    expand_pattern,
    header_lines,
    read_header_text,
    whole_numbers,
)

#: Bytes a voxel of each MetaImage ``ElementType`` takes.
_META_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4,
               "MET_UINT": 4, "MET_FLOAT": 4, "MET_LONG": 8, "MET_ULONG": 8,
               "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_DOUBLE": 8}


def metaimage_data_files(path: Path) -> List[Tuple[str, str]]:
    """Every detached data file the MetaImage header at ``path`` names, as written (relative to
    its folder unless absolute), each with how it was named (for the message): single names,
    patterns expanded with their numbers as the reader expands them, ``LIST`` lines."""
    return _data_files(path, read_header_text(path))


def _data_files(path: Path, text: str) -> List[Tuple[str, str]]:
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
    dims = whole_numbers(fields.get("DimSize", ""))
    ndims = len(dims) if dims else None
    if value.startswith("LIST"):
        words = value.split()
        file_dim = c_int(words[1]) if len(words) > 1 else 0
        file_dim = file_dim or 0
        if file_dim < 0:
            raise HRINetError(f"{path}'s ElementDataFile = {value} gives a negative file "
                              "dimension; the header is damaged, fix it")
        names = [ln.strip() for ln in lines[at + 1:] if ln.strip()]
        if len(names) > MAX_DATA_FILES:
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
            numbers = [c_int(w) or 0 for w in words[1:4]]
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
        return expand_pattern(path, pattern, first, last, step, slices)
    names = [value, value + ".gz", value + ".Z"]
    if value.split()[0] != value:
        names.append(value.split()[0])
    return [(name, "") for name in names]


def check_metaimage(path: Path) -> None:
    """A MetaImage header: a size this machine can hold; a detached data file in the header's
    folder."""
    lines = header_lines(path)
    fields = {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in lines)}
    if "DimSize" in fields or "NDims" in fields:
        check_sizes(path, fields.get("NDims", ""), fields.get("DimSize", ""),
                    ("NDims", "DimSize"))
    if fields.get("ElementType") in _META_BYTES and "DimSize" in fields:
        channels = fields.get("ElementNumberOfChannels", "1")
        per_voxel = _META_BYTES[fields["ElementType"]] * (int(channels) if channels.isdigit()
                                                         and int(channels) > 0 else 1)
        check_described_size(path, fields["DimSize"], per_voxel)
        _check_local_data(path, fields, per_voxel)
    for name, named in metaimage_data_files(path):
        check_inside(path, name, named)


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
