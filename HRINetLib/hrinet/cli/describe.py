"""What the command line says about the model it runs: one wording for every command."""

from __future__ import annotations


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

