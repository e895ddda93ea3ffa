"""Where shipped weights are found (no torch: the panel and ``hrinet info`` ask this)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

#: File name of the default model's weights.
DEFAULT_NAME = "hrinet-default.safetensors"


def sidecar_of(path) -> Path:
    """The JSON sidecar beside a weights file."""
    return Path(path).with_suffix(".json")


def variant_weights_name(variant: str) -> str:
    """File name of the shipped weights of a variant (for side-by-side comparison)."""
    return f"hrinet-variant-{variant}.safetensors"


def default_weights_dirs() -> List[Path]:
    """Where shipped weights are looked for, first match wins."""
    here = Path(__file__).resolve().parent
    dirs = []
    if os.environ.get("HRINET_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["HRINET_WEIGHTS_DIR"]))
    dirs += [here.parents[1] / "Resources" / "weights",  # source checkout
             here / "shipped_weights",  # package data: a wheel, the Slicer extension
             here.parents[2] / "Resources" / "weights" if len(here.parents) > 2 else here]
    return dirs


def find_weights(name: str = DEFAULT_NAME) -> Optional[Path]:
    """Path of a shipped weights file (with its sidecar), or None."""
    for d in default_weights_dirs():
        p = d / name
        if p.is_file() and sidecar_of(p).is_file():
            return p
    return None
