"""Validation during training: the model against linear on the central block of each
validation volume (every ``val_every`` steps of :class:`hrinet.training.trainer.Trainer`),
recorded in ``val.jsonl`` and told in words."""

from __future__ import annotations

import json
from pathlib import Path

from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import evaluate_volume
from hrinet.learned.inference import make_interpolator
from hrinet.methods.classical import LinearInterpolator


def val_subvolume(v, slices: int, crop: int):
    """The central ``slices`` x ``crop`` x ``crop`` block (bounded validation cost)."""
    n, ny, nx = v.array.shape
    z0 = max(0, (n - slices) // 2)
    y0, x0 = max(0, (ny - crop) // 2), max(0, (nx - crop) // 2)
    return v.with_array(v.array[z0:z0 + slices, y0:y0 + crop, x0:x0 + crop].copy())


def describe_validation(results: dict) -> str:
    """``chest.nrrd x2 48.49 dB (linear 43.80), ...``: the model's PSNR_HU per volume and factor
    beside linear's, for people (``val.jsonl`` keeps every number)."""
    parts = []
    for key, value in results.items():
        name, factor, metric = key.rsplit("/", 2)
        if metric == "model_psnr_hu":
            linear = results.get(f"{name}/{factor}/linear_psnr_hu")
            parts.append(f"{name} {factor} {value:.2f} dB" +
                         (f" (linear {linear:.2f})" if linear is not None else ""))
    return ", ".join(parts) or "no validation volumes"


def validation_scores(generator, device, cfg) -> dict:
    """``{"<volume>/x<factor>/<method>_<metric>": value}``: PSNR_HU and SSIM_win of
    ``generator`` (in eval mode) and of linear on the central block of each of ``cfg.val`` at
    each of ``cfg.val_factors``."""
    interps = {"model": make_interpolator(generator, device), "linear": LinearInterpolator()}
    results = {}
    for path in cfg.val:
        v = val_subvolume(read_volume(path), cfg.val_slices, cfg.val_crop)
        name = Path(path).name
        for r in evaluate_volume(v, name, cfg.val_factors, list(interps), interpolators=interps):
            results[f"{name}/x{r.factor}/{r.method}_psnr_hu"] = round(r.psnr_hu, 3)
            results[f"{name}/x{r.factor}/{r.method}_ssim_win"] = round(r.ssim_win, 4)
    return results


def record_validation(out: Path, scores: dict) -> None:
    """Append one validation's scores (with its step) to ``out/val.jsonl``."""
    with open(out / "val.jsonl", "a") as f:
        f.write(json.dumps(scores) + "\n")
