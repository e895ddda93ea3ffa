"""What the command line says about the model it runs: one wording for every command."""

from __future__ import annotations

import importlib
from typing import List

from hrinet.core.constants import CLASSICAL_METHODS


def model_words(interp) -> str:
    """``model hrinet-flow (hrinet-default.safetensors) on cpu, bf16`` for a learned method, ""
    for a classical one."""
    path = getattr(interp, "weights_path", None)
    if path is None:
        return ""
    variant = getattr(interp, "metadata", {}).get("variant", "?")
    views = getattr(interp, "views", 1)
    return (f"model {variant} ({path.name}) on {getattr(interp, 'device', 'cpu')}, "
            f"{getattr(interp, 'precision', 'fp32')}"
            + (f", {views} mirrored views averaged (--quality high)" if views > 1 else ""))



def unused_options(method: str, args) -> List[str]:
    """The model options given to a classical ``method``, which has no model to apply them to
    (``args``: interpolate's or batch's), one line each."""
    if method not in CLASSICAL_METHODS:
        return []
    unused = []
    if getattr(args, "weights", None):
        unused.append(f"--weights is not used by the {method} method (classical, no weights); "
                      "drop it, or use --method hrinet")
    if getattr(args, "device", "auto") != "auto":
        unused.append(f"--device is not used by the {method} method (it runs on the CPU)")
    if getattr(args, "quality", "standard") != "standard":
        unused.append(f"--quality is not used by the {method} method (it has no model to run "
                      "on mirrored views)")
    return unused


def model_warnings(interp) -> List[str]:
    """What to tell before a learned method's work starts: bf16 that this CPU only emulates
    (:func:`hrinet.learned.precision.emulation_warning`). None for a classical method."""
    precision, device = getattr(interp, "precision", None), getattr(interp, "device", None)
    if precision is None or device is None:
        return []
    # a learned method's object: its module, and torch, are imported already
    slow = importlib.import_module("hrinet.learned.precision").emulation_warning(precision, device)
    return [slow] if slow else []
