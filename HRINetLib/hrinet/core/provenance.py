"""What an interpolated volume records about how it was made, so that a synthesised slice can
never pass for an acquired one.

A run's record (:func:`record`) is a flat, ordered mapping of short text fields: the software
and its version, the method and the model with its sha256, the factor and the output spacing,
the input's file name (and for DICOM its SeriesInstanceUID), the slab thickness used, and which
output slices are acquired and which synthesised, written compactly (:func:`format_indices`).
The writers put it in every output file: NRRD key/value fields and the ``content`` field,
MetaImage header keys, and in NIfTI the 80-character ``descrip`` plus the whole record as JSON in a
comment extension (code 6). :func:`read_provenance` reads it back from any of them, and
:func:`describe_lines` words it for ``hrinet info``.

The engine may also leave a per-slice estimate of the error of what it synthesised in
``result.metadata["slice_error_hu"]`` (:data:`SLICE_ERROR_KEY`): a list aligned with the output
slices, mean predicted absolute error in HU, None (or absent) where there is no estimate.
:func:`worst_slices` and :func:`report_worst_slices` name the synthesised slices a reader
should look at first.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import struct
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, TextIO, Tuple

from hrinet import __version__
from hrinet.core.atomic import file_sha256

#: Prefix of the provenance keys in NRRD and MetaImage headers.
FILE_PREFIX = "hrinet_"
#: Prefix of the provenance attributes of a Slicer node.
NODE_PREFIX = "HRINet."
#: The fields of a record, in the order they are written and shown.
FIELDS = ("software", "method", "model", "model_sha256", "factor", "spacing_mm", "input",
          "input_series_uid", "slab_thickness_mm", "acquired_restored", "output_slices",
          "synthesised_count", "acquired_slices", "synthesised_slices")
#: Where the engine leaves the per-slice predicted error (see the module docstring).
SLICE_ERROR_KEY = "slice_error_hu"
#: How many synthesised slices the end of a run names.
WORST_SLICES = 5
#: NIfTI extension code for free text (NIFTI_ECODE_COMMENT); the record goes there as JSON.
NIFTI_COMMENT_CODE = 6
_NIFTI_JSON_KEY = "hrinet_provenance"

Record = Dict[str, str]


# ---- slice lists --------------------------------------------------------------------------
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


# ---- the record ---------------------------------------------------------------------------
def _software() -> str:

    return f"hrinet {__version__}"


def _sha256(path: Path) -> str:

    try:
        return file_sha256(path)
    except OSError:
        return ""


def record(result, plan=None, interpolator=None, input_path=None,
           input_name: Optional[str] = None) -> Record:
    """The provenance of ``result`` (an :func:`hrinet.upsample_z` output), stored in
    ``result.metadata["provenance"]`` and returned.

    Args:
        result: the upsampled :class:`hrinet.Volume`.
        plan: the :class:`hrinet.Plan` that was run (gives the slab thickness used).
        interpolator: the method instance that ran (gives the model and its weights file).
        input_path: the file or DICOM folder read; only its name is recorded.
        input_name: the input's name where there is no path (a Slicer node).
    """
    meta = result.metadata
    n_out = int(result.array.shape[0])
    factor = int(meta.get("factor") or (plan.factor if plan is not None else 1))
    restored = bool(meta.get("restored_known"))
    acquired, synthesised = slice_roles(n_out, factor, restored)
    model, sha = "", ""
    weights = getattr(interpolator, "weights_path", None)
    if weights is not None:
        variant = getattr(interpolator, "metadata", {}).get("variant", "")
        model = f"{variant} ({Path(weights).name})" if variant else Path(weights).name
        sha = _sha256(Path(weights))
    name = input_name or (Path(str(input_path).rstrip("/\\")).name if input_path else "")
    if not name and meta.get("source"):
        name = Path(str(meta["source"]).rstrip("/\\")).name
    slab = ""
    if plan is not None:
        slab = f"{plan.thickness:g}" if plan.slab_ratio > 0 else "0"
    rec: Record = {
        "software": _software(),
        "method": str(meta.get("method") or (plan.method if plan is not None else "")),
        "model": model,
        "model_sha256": sha,
        "factor": str(factor),
        "spacing_mm": " ".join(f"{s:.10g}" for s in result.spacing),
        "input": name,
        "input_series_uid": str(meta.get("series_uid") or ""),
        "slab_thickness_mm": slab,
        "acquired_restored": "yes" if restored else "no",
        "output_slices": str(n_out),
        "synthesised_count": str(len(synthesised)),
        "acquired_slices": format_indices(acquired),
        "synthesised_slices": format_indices(synthesised),
    }
    meta["provenance"] = rec
    return rec


def provenance_of(volume) -> Optional[Record]:
    """The record a volume carries: the one :func:`record` stored, else one made from what the
    engine leaves in its metadata (a result written through the Python API alone, without its
    model and input), else None (not an interpolation result)."""
    rec = volume.metadata.get("provenance")
    if rec:
        return rec
    if volume.metadata.get("method") and volume.metadata.get("factor"):
        return record(volume)
    return None


def content_line(rec: Record) -> str:
    """The NRRD ``content`` field: ``interpolated along z by hrinet (N of M slices
    synthesised)``."""
    return (f"interpolated along z by hrinet ({rec.get('synthesised_count', '?')} of "
            f"{rec.get('output_slices', '?')} slices synthesised)")


def short_line(rec: Record, limit: int = 80) -> str:
    """The record in at most ``limit`` characters (NIfTI ``descrip``)."""
    text = (f"{rec.get('software', 'hrinet')} x{rec.get('factor', '?')} "
            f"{rec.get('method', '?')}: {rec.get('synthesised_count', '?')} of "
            f"{rec.get('output_slices', '?')} slices synthesised")
    return text[:limit]


def _one_line(value: str) -> str:
    return " ".join(str(value).split())


def stamp_image(image, rec: Record, suffix: str) -> None:
    """Put ``rec`` into a SimpleITK image's metadata for its writer: ``hrinet_*`` keys (NRRD
    key/value fields, MetaImage header keys) and the NRRD ``content`` field; for NIfTI, whose
    header holds no free keys, the ``descrip`` line (the rest goes into an extension,
    :func:`add_nifti_extension`)."""
    if suffix in (".nii", ".nii.gz"):
        image.SetMetaData("ITK_FileNotes", short_line(rec))
        return
    for key in FIELDS:
        if rec.get(key, "") != "":
            image.SetMetaData(FILE_PREFIX + key, _one_line(rec[key]))
    if suffix in (".nrrd", ".nhdr"):
        image.SetMetaData("NRRD_content", content_line(rec))


# ---- NIfTI extension ----------------------------------------------------------------------
def _open(path: Path, mode: str, gz: Optional[bool] = None):
    if gz is None:
        gz = str(path).lower().endswith(".gz")
    return gzip.open(path, mode) if gz else open(path, mode)


def _nifti_layout(head: bytes) -> Tuple[str, int]:
    """(byte order, vox_offset) of a NIfTI-1 single file's header."""
    if len(head) < 352:
        raise EOFError("the header is cut off")
    for order in ("<", ">"):
        if struct.unpack(order + "i", head[:4])[0] == 348:
            return order, int(struct.unpack(order + "f", head[108:112])[0])
    raise ValueError("not a NIfTI-1 header")


def add_nifti_extension(path: Path, rec: Record) -> None:
    """Rewrite the NIfTI-1 single file ``path`` (``.nii`` or ``.nii.gz``; a temporary file of
    a writer, not yet in place) with ``rec`` as JSON in a comment extension, moving the voxels
    behind it; the file is streamed, never held whole in memory."""
    try:
        _rewrite_nifti(Path(path), rec)
    except (struct.error, EOFError) as exc:  # the writer stopped short (a full disk)
        raise ValueError(f"the written file is cut off ({exc})") from None


def _rewrite_nifti(path: Path, rec: Record) -> None:
    gz = path.name.lower().endswith(".gz")
    with _open(path, "rb") as f:
        head = f.read(352)
        order, offset = _nifti_layout(head)
        rest_of_header = f.read(max(0, offset - 352))
        payload = json.dumps({_NIFTI_JSON_KEY: rec}, sort_keys=False).encode("utf-8")
        size = 8 + len(payload)
        size += (-size) % 16  # extensions are padded to a multiple of 16 bytes
        ext = struct.pack(order + "ii", size, NIFTI_COMMENT_CODE) + \
            payload.ljust(size - 8, b"\0")
        if head[348] != 0 and rest_of_header:  # extensions already there: keep them, add ours
            old = rest_of_header
        else:
            old = b""
        new_offset = 352 + len(old) + len(ext)
        new_head = head[:108] + struct.pack(order + "f", float(new_offset)) + head[112:348] + \
            bytes([1, 0, 0, 0])
        out = path.with_name(path.name + ".ext")
        try:
            with _open(out, "wb", gz) as g:
                g.write(new_head + old + ext)
                for block in iter(lambda: f.read(1 << 22), b""):
                    g.write(block)
            os.replace(out, path)
        finally:
            if out.exists():
                out.unlink()


def nifti_record(path: Path) -> Optional[Record]:
    try:
        with _open(path, "rb") as f:
            head = f.read(352)
            order, offset = _nifti_layout(head)
            if len(head) < 352 or head[348] == 0 or offset > 352 + (1 << 20):
                return None
            data = f.read(max(0, offset - 352))
    except (OSError, ValueError, EOFError, struct.error):
        return None
    at = 0
    while at + 8 <= len(data):
        size, code = struct.unpack(order + "ii", data[at:at + 8])
        if size < 16 or at + size > len(data):
            break
        if code == NIFTI_COMMENT_CODE:
            try:
                found = json.loads(data[at + 8:at + size].rstrip(b"\0").decode("utf-8"))
            except ValueError:
                found = None
            if isinstance(found, dict) and isinstance(found.get(_NIFTI_JSON_KEY), dict):
                return {str(k): str(v) for k, v in found[_NIFTI_JSON_KEY].items()}
        at += size
    return None


# ---- reading back -------------------------------------------------------------------------
def describe_lines(rec: Optional[Record]) -> List[str]:
    """``hrinet info``'s lines for a record (none for None)."""
    if not rec:
        return []
    lines = [f"provenance: {content_line(rec)}",
             f"  software:           {rec.get('software', '?')}",
             f"  method:             {rec.get('method', '?')}"
             + (f", model {rec['model']}" if rec.get("model") else "")]
    if rec.get("model_sha256"):
        lines.append(f"  model sha256:       {rec['model_sha256']}")
    lines.append(f"  factor:             x{rec.get('factor', '?')} (output spacing "
                 f"{' x '.join(rec.get('spacing_mm', '?').split())} mm)")
    if rec.get("input"):
        uid = rec.get("input_series_uid")
        lines.append(f"  input:              {rec['input']}"
                     + (f" (SeriesInstanceUID {uid})" if uid else ""))
    if rec.get("slab_thickness_mm", "") not in ("", "0"):
        lines.append(f"  slab thickness:     {rec['slab_thickness_mm']} mm"
                     + (" (acquired positions restored by the model)"
                        if rec.get("acquired_restored") == "yes" else ""))
    lines.append(f"  acquired slices:    {rec.get('acquired_slices') or 'none'}")
    lines.append(f"  synthesised slices: {rec.get('synthesised_slices') or 'none'}")
    return lines


# ---- per-slice summary --------------------------------------------------------------------
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


def node_attributes(rec: Optional[Record]) -> Dict[str, str]:
    """A record as Slicer node attributes (``HRINet.method`` ...)."""
    return {NODE_PREFIX + k: v for k, v in (rec or {}).items()}


def from_node_attributes(attributes: Dict[str, str]) -> Optional[Record]:
    """The record held by a node's attributes, or None."""
    rec = {k[len(NODE_PREFIX):]: v for k, v in attributes.items() if k.startswith(NODE_PREFIX)
           and k[len(NODE_PREFIX):] in FIELDS}
    return rec or None


def synthesised_name(name: str, rec: Optional[Record]) -> str:
    """A node or series name that says it is synthesised: ``"<name> (interpolated x4, 36 of
    49 slices synthesised)"``; ``name`` unchanged without a record or already marked."""
    if not rec or "synthesised" in name:
        return name
    return (f"{name} (interpolated x{rec.get('factor', '?')}, {rec.get('synthesised_count', '?')}"
            f" of {rec.get('output_slices', '?')} slices synthesised)")


__all__ = ["FIELDS", "SLICE_ERROR_KEY", "add_nifti_extension", "content_line", "describe_lines",
           "format_indices", "from_node_attributes", "node_attributes", "parse_indices",
           "provenance_of", "record", "report_worst_slices", "short_line",
           "slice_roles", "stamp_image", "synthesised_name", "worst_slices"]
