"""Where shipped weights are found (no torch: the panel and ``hrinet info`` ask this)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from hrinet.core.variants import DEFAULT_VARIANT, GROUP_DEFAULT, GROUPS, REGISTRY

#: File name of the default model's weights.
DEFAULT_NAME = "hrinet-default.safetensors"


def sidecar_of(path) -> Path:
    """The JSON sidecar beside a weights file."""
    return Path(path).with_suffix(".json")


def variant_weights_name(variant: str) -> str:
    """File name of the shipped weights of a variant (for side-by-side comparison)."""
    return f"hrinet-variant-{variant}.safetensors"


def cache_dir() -> Path:
    """Where downloaded models go (``hrinet models --get``): ``$HRINET_CACHE``, else the user's
    cache folder (``$XDG_CACHE_HOME/hrinet/weights``, ``~/.cache/hrinet/weights``)."""
    if os.environ.get("HRINET_CACHE"):
        return Path(os.environ["HRINET_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hrinet" / "weights"


def default_weights_dirs() -> List[Path]:
    """Where shipped weights are looked for, first match wins; downloaded ones last."""
    package = Path(__file__).resolve().parents[2]  # hrinet/ (this is hrinet/core/models/...)
    dirs = []
    if os.environ.get("HRINET_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["HRINET_WEIGHTS_DIR"]))
    dirs += [package.parents[1] / "Resources" / "weights",  # source checkout
             package / "shipped_weights",  # package data: a wheel, the Slicer extension
             package.parents[2] / "Resources" / "weights" if len(package.parents) > 2
             else package, cache_dir()]
    return dirs


def find_weights(name: str = DEFAULT_NAME) -> Optional[Path]:
    """Path of a shipped weights file (with its sidecar), or None."""
    for d in default_weights_dirs():
        p = d / name
        if p.is_file() and sidecar_of(p).is_file():
            return p
    return None


@dataclass(frozen=True)
class ShippedModel:
    """A shipped weights file as a user picks it: what it is and how well it measured."""

    variant: str
    path: Path
    group: str  # its heading (hrinet.core.variants.GROUPS)
    quality: str  # one line from the sidecar's evaluation (x4), or "not evaluated"


def quality_line(sidecar: dict, factor: int = 4) -> str:
    """``x4 PSNR_HU 42.71 dB chest-lungfcp-1mm; SSIM_win 0.884`` from a sidecar's ``evaluation``
    rows (the protocol of docs/results.md), one entry per volume."""
    rows = [r for r in sidecar.get("evaluation", {}).get("rows", [])
            if str(r.get("factor")) == str(factor)]
    if not rows:
        return "not evaluated"
    psnr = ", ".join(f"{float(r['psnr_hu']):.2f} dB {r['volume']}" for r in rows)
    ssim = ", ".join(f"{float(r['ssim_win']):.3f}" for r in rows)
    return f"x{factor} PSNR_HU {psnr}; SSIM_win {ssim}"


def shipped_models() -> List[ShippedModel]:
    """The default model, then ours, then the paper's variants, each with its measured quality."""
    found = [(DEFAULT_VARIANT, find_weights(), GROUP_DEFAULT)]
    found += [(v.name, find_weights(variant_weights_name(v.name)), v.group)
              for v in REGISTRY.values()]
    out = []
    for variant, path, group in found:
        if path is None:
            continue
        try:
            sidecar = json.loads(sidecar_of(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            sidecar = {}
        if not isinstance(sidecar, dict):  # a damaged sidecar: listed, its quality unknown
            sidecar = {}
        out.append(ShippedModel(variant, path, group, quality_line(sidecar)))
    return sorted(out, key=lambda m: GROUPS.index(m.group))
