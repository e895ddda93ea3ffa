"""A run's provenance record: made from the result, its plan, model and input
(:func:`record`), worded for ``hrinet info`` and file headers, and carried as Slicer node
attributes."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional

from hrinet import __version__
from hrinet.core.io.atomic import file_sha256
from hrinet.core.io.provenance.slices import format_indices, parse_indices, slice_roles

#: Where a volume read from an hrinet output keeps the record its file (or node) held, so that
#: an interpolation of it never calls its synthesised slices acquired.
SOURCE_KEY = "source_provenance"
#: Prefix of the provenance attributes of a Slicer node.
NODE_PREFIX = "HRINet."
#: The fields of a record, in the order they are written and shown.
FIELDS = ("software", "method", "model", "model_sha256", "factor", "spacing_mm", "input",
          "input_series_uid", "slab_thickness_mm", "acquired_restored", "detilt_degrees",
          "output_slices",
          "synthesised_count", "acquired_slices", "synthesised_slices")

#: What follows the input's name in a record whose input hrinet itself made.
CHAIN_NOTE = " (itself interpolated by hrinet: "

Record = Dict[str, str]


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
    earlier = meta.get(SOURCE_KEY)  # the input's own record: it was itself made by hrinet
    if meta.get("copied_slices") is not None:  # where the engine put each input slice
        kept = input_acquired(earlier, meta.get("input_slices"))
        acquired = sorted(j for j, i in meta["copied_slices"] if kept is None or i in kept)
        synthesised = sorted(set(range(n_out)) - set(acquired))
    model, sha = "", ""
    weights = getattr(interpolator, "weights_path", None)
    if weights is not None:
        variant = getattr(interpolator, "metadata", {}).get("variant", "")
        model = f"{variant} ({Path(weights).name})" if variant else Path(weights).name
        views = getattr(interpolator, "views", 1)
        if views > 1:  # the quality setting: say so where the output says how it was made
            model += f", {views} mirrored views averaged"
        sha = _sha256(Path(weights))
    name = input_name or (Path(str(input_path).rstrip("/\\")).name if input_path else "")
    if not name and meta.get("source"):
        name = Path(str(meta["source"]).rstrip("/\\")).name
    if earlier:  # the input was itself made by hrinet: its synthesised slices stay synthesised
        name += (f"{CHAIN_NOTE}{earlier.get('synthesised_count', '?')} of "
                 f"{earlier.get('output_slices', '?')} slices synthesised)")
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
        "detilt_degrees": (f"{float(meta['gantry_tilt_degrees']):.1f}"  # de-tilted now, or
                           if meta.get("gantry_tilt_degrees") else  # by the run that made
                           (earlier or {}).get("detilt_degrees", "")),  # the input
        "output_slices": str(n_out),
        "synthesised_count": str(len(synthesised)),
        "acquired_slices": format_indices(acquired),
        "synthesised_slices": format_indices(synthesised),
    }
    meta["provenance"] = rec
    return rec


def acquired_words(rec: Record) -> str:
    """What became of the acquired slices: "unchanged", or for a gantry-tilted series that was
    de-tilted, moved in-plane (their values resampled)."""
    tilt = rec.get("detilt_degrees", "")
    return (f"moved in-plane (cubic resampling) to undo a gantry tilt of {tilt} degrees"
            if tilt else "unchanged")


def with_input_name(rec: Record, name: str) -> Record:
    """``rec`` with its input called ``name`` (a Slicer node's name instead of the job's
    temporary file), keeping what it says of an input hrinet itself made."""
    _, note, rest = rec.get("input", "").partition(CHAIN_NOTE)
    return dict(rec, input=name + (note + rest if note else ""))


def input_acquired(earlier: Optional[Record], n_in) -> Optional[set]:
    """The input's slices that were acquired: all (None) for an input hrinet did not make; for
    one it made (``earlier``, its record), those its record names acquired, or none where the
    record does not fit the input (a volume cut or changed since): then nothing can be called
    acquired with certainty."""
    if not earlier:
        return None
    try:
        if n_in is not None and int(earlier.get("output_slices", -1)) != int(n_in):
            return set()
        return set(parse_indices(earlier.get("acquired_slices", "")))
    except ValueError:
        return set()


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


def made_by_hrinet(volume) -> Optional[Record]:
    """The record of a volume hrinet made, else None: its own (a result in Python), else the
    one read with it from an output file or series (:data:`SOURCE_KEY`); ``volume``'s metadata
    is left as it is."""
    return provenance_of(replace(volume, metadata=dict(volume.metadata))) or \
        volume.metadata.get(SOURCE_KEY)  # (record() would write into the metadata it is given)


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


def describe_lines(rec: Optional[Record], slices: Optional[int] = None) -> List[str]:
    """``hrinet info``'s lines for a record (none for None); with ``slices`` (the volume's),
    a record of another number of slices (the file cut or changed since) is said to vouch for
    nothing, as an interpolation of it takes it (:func:`input_acquired`)."""
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
    lines.append(f"  acquired slices:    {rec.get('acquired_slices') or 'none'}"
                 + (f" ({acquired_words(rec)})" if rec.get("detilt_degrees") else ""))
    lines.append(f"  synthesised slices: {rec.get('synthesised_slices') or 'none'}")
    if slices is not None and str(rec.get("output_slices", "")).strip() != str(slices):
        lines.append(f"  warning:            the record is of {rec.get('output_slices', '?')} "
                     f"slices but the volume has {slices} (cut or changed since): which slices "
                     "are acquired is unknown, so treat every slice as synthesised")
    return lines


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
    49 slices synthesised)"``; ``name`` unchanged without a record. An earlier mark in
    ``name`` (an output interpolated again) is replaced, never left to understate it."""
    if not rec:
        return name
    name = _SYNTHESISED_MARK.sub("", name)
    mark = (f"(interpolated x{rec.get('factor', '?')}, {rec.get('synthesised_count', '?')} of "
            f"{rec.get('output_slices', '?')} slices synthesised)")
    return f"{name} {mark}" if name.strip() else mark


#: The mark :func:`synthesised_name` adds, as it appears in a name given to a result of it.
_SYNTHESISED_MARK = re.compile(r" ?\(interpolated x[^()]*slices synthesised\)")
