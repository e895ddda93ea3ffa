"""Which output slices are acquired and which synthesised, as compact text (``0-12/4``), and
the synthesised slices with the highest predicted error (:data:`SLICE_ERROR_KEY`), named at the
end of a run."""

from __future__ import annotations

import math
import re
import sys
from typing import Dict, Iterable, List, Optional, TextIO, Tuple

#: Where the engine leaves the per-slice predicted error (see the module docstring).
SLICE_ERROR_KEY = "slice_error_hu"
#: How many synthesised slices the end of a run names.
WORST_SLICES = 5


def format_indices(indices: Iterable[int]) -> str:
    """Slice indices as compact text: comma-separated runs ``a-b`` (``a`` alone for one slice)
    or strides ``a-b/s`` (every ``s``-th from ``a`` to ``b``, both included); "" for none.

    A set that is the union of a few strides with one step (the synthesised slices of a factor
    ``k``: ``k - 1`` strides) is written as those strides when that is shorter than its runs.

    Example:
        >>> format_indices([0, 4, 8, 12])
        '0-12/4'
        >>> format_indices(i for i in range(25) if i % 4)
        '1-21/4,2-22/4,3-23/4'
        >>> format_indices([0, 1, 2, 7])
        '0-2,7'
    """
    values = sorted(set(int(i) for i in indices))
    if not values:
        return ""
    runs = _runs(values)
    best = ",".join(runs)
    starts = [int(r.split("-")[0]) for r in runs]
    for step in sorted(set(b - a for a, b in zip(starts, starts[1:]))):
        strides = _strides(values, step)
        if strides is not None and len(",".join(strides)) < len(best):
            best = ",".join(strides)
    return best


def _runs(values: List[int]) -> List[str]:
    out, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return out


def _strides(values: List[int], step: int) -> Optional[List[str]]:
    """``values`` as strides of ``step`` (one per residue), or None if some residue's values
    are not one unbroken stride."""
    groups: Dict[int, List[int]] = {}
    for v in values:
        groups.setdefault(v % step, []).append(v)
    out = []
    for _, g in sorted(groups.items(), key=lambda kv: kv[1][0]):
        if g[-1] - g[0] != step * (len(g) - 1):
            return None
        out.append(f"{g[0]}" if len(g) == 1 else f"{g[0]}-{g[-1]}/{step}")
    return out


def parse_indices(text: str) -> List[int]:
    """The slice indices :func:`format_indices` wrote, sorted.

    Raises:
        ValueError: text that is not such a list.
    """
    out = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?:/(\d+))?)?", part)
        if not m:
            raise ValueError(f"{part!r} is not a slice, a run a-b or a stride a-b/s")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        s = int(m.group(3)) if m.group(3) else 1
        if b < a or s < 1:
            raise ValueError(f"{part!r} runs backwards or has no step")
        out.update(range(a, b + 1, s))
    return sorted(out)


def slice_roles(output_slices: int, factor: int, restored: bool = False) -> Tuple[List[int],
                                                                                 List[int]]:
    """``(acquired, synthesised)`` output slice indices of an upsampling by ``factor``: the
    acquired slices land at every ``factor``-th index from 0; with ``restored`` (a learned
    model rewrote the acquired positions from slabs) every slice is synthesised."""
    acquired = [] if restored else list(range(0, output_slices, factor))
    known = set(acquired)
    return acquired, [i for i in range(output_slices) if i not in known]


def worst_slices(metadata: dict, count: int = WORST_SLICES) -> List[Tuple[int, float]]:
    """The ``count`` synthesised slices with the highest mean predicted error, as ``(output
    slice index, error in HU)``, highest first; [] when the run left no estimate
    (``metadata[SLICE_ERROR_KEY]`` absent or None). Acquired slices and entries that are None
    or not finite are left out."""
    errors = metadata.get(SLICE_ERROR_KEY)
    if errors is None:
        return []
    rec = metadata.get("provenance") or {}
    acquired = set(parse_indices(rec.get("acquired_slices", ""))) if rec else set()
    if not rec and metadata.get("factor") and not metadata.get("restored_known"):
        acquired = set(range(0, len(errors), int(metadata["factor"])))
    found = []
    for i, e in enumerate(errors):
        if i in acquired or e is None:
            continue
        try:
            value = float(e)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            found.append((i, value))
    found.sort(key=lambda t: (-t[1], t[0]))
    return found[:count]


def report_worst_slices(metadata: dict, events=None, stream: Optional[TextIO] = None) -> None:
    """End a run's log with the synthesised slices most likely wrong (one line) and, for
    ``--progress jsonl``, a ``summary`` event with ``worst_slices`` (``[{"slice", "error_hu"}]``,
    output slice indices from 0); nothing when there is no estimate."""
    worst = worst_slices(metadata)
    if not worst:
        return
    text = ", ".join(f"{i} ({e:.0f} HU)" for i, e in worst)
    print(f"synthesised slices with the highest predicted error (output slice, mean): {text}",
          file=stream or sys.stderr)
    if events is not None:
        events.emit("summary", worst_slices=[{"slice": i, "error_hu": round(e, 2)}
                                             for i, e in worst])
