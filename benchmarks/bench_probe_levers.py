"""Three cheap levers for issue 43, probed on whole volumes (decimate protocol, fp32).

    python benchmarks/bench_probe_levers.py warp VOLUME ... [--factors 2,4,6] [--methods flow]
    python benchmarks/bench_probe_levers.py pair VOLUME ... [--factors 2,4,6] [--other FILE]
    python benchmarks/bench_probe_levers.py blend VOLUME ... [--factors 2,4,6] [--shares 0.1,0.2]

- ``warp``: the optical flow's backward warp with bicubic instead of bilinear sampling (the
  warped slices keep more of the in-plane high band, which the default lacks on sharp kernels):
  each method scored with both, the model as trained (with bilinear warps).
- ``pair``: the shipped default averaged with a second model (``--other``, default the
  quality-corpus candidate), the cheapest ensemble of differently trained weights: each alone
  and their mean.
- ``blend``: the shipped default mixed with each classical method at fixed shares (``(1 - w)``
  default + ``w`` method), each classical method alone too, so that every row can be read as a
  margin over the best of them.

``--slices N`` takes the central N slices of each volume (as ``bench_stress.py`` does);
``--conditions`` (``blend``) puts each volume under ``bench_stress.py``'s scanner conditions first.

PSNR_HU / SSIM_win per volume and factor. Measurements, not features (docs/results.md, "Levers
probed for issue 43").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from hrinet.core.constants import CLASSICAL_METHODS
from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import protocol_input
from hrinet.evaluation.metrics import score, truth_stats
from hrinet.methods import flow
from hrinet.methods.engine import upsample_z
from hrinet.methods.registry import create_interpolator

from bench_stress import central, margins, stressed  # benchmarks/bench_stress.py

CANDIDATE = Path(__file__).resolve().parent / "candidates" / "quality-corpus.safetensors"


def bicubic_warp(image: np.ndarray, field: np.ndarray, grid=None) -> np.ndarray:
    """:func:`hrinet.methods.flow.warp` with bicubic sampling."""
    h, w = image.shape[:2]
    gx, gy = grid if grid is not None else np.meshgrid(np.arange(w, dtype=np.float32),
                                                       np.arange(h, dtype=np.float32))
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), gx + field[..., 0],
                     gy + field[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def cells(path: str, factors, outputs, slices: int = 0, condition: str = "scanned"):
    """``(k, name, PSNR_HU, SSIM_win)`` for each output ``outputs(thick, k) -> {name: array}``
    (the central ``slices`` slices only, when given, under ``condition``)."""
    vol = stressed(central(read_volume(path), slices), condition)
    for k in factors:
        thick, thickness, mask = protocol_input(vol, k, "decimate")
        truth = vol.array[:len(mask)]
        stats = truth_stats(truth[mask])
        for name, out in outputs(thick, k, thickness).items():
            s = score(out[mask], truth[mask], stats)
            yield k, name, s.psnr_hu, s.ssim_win


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("probe", choices=("warp", "pair", "blend"))
    ap.add_argument("volumes", nargs="+")
    ap.add_argument("--factors", default="2,4,6")
    ap.add_argument("--methods", default="flow", help="warp: the methods scored (flow, hrinet)")
    ap.add_argument("--other", default=str(CANDIDATE), help="pair: the second model's weights")
    ap.add_argument("--shares", default="0.1,0.2,0.3", help="blend: the classical method's shares")
    ap.add_argument("--slices", type=int, default=0, help="central slices used (0: all)")
    ap.add_argument("--conditions", default="scanned", help="blend: bench_stress.py's "
                    "conditions, e.g. scanned,bone-kernel-2")
    args = ap.parse_args()
    factors = [int(f) for f in args.factors.split(",")]
    if args.probe == "warp":
        interps = {m: create_interpolator(m, device="cpu", precision="fp32")
                   for m in args.methods.split(",")}
        bilinear = flow.warp

        def outputs(thick, k, thickness):
            out = {}
            for sampling, fn in (("bilinear", bilinear), ("bicubic", bicubic_warp)):
                flow.warp = fn  # the flow and the model's features both warp through it
                for m, interp in interps.items():
                    out[f"{m} {sampling}"] = upsample_z(thick, factor=k, interpolator=interp,
                                                        thickness=thickness).array
            flow.warp = bilinear
            return out
    elif args.probe == "blend":
        interps = {m: create_interpolator(m, device="cpu", precision="fp32")
                   for m in list(CLASSICAL_METHODS) + ["hrinet"]}
        shares = [float(w) for w in args.shares.split(",")]

        def outputs(thick, k, thickness):
            up = {m: upsample_z(thick, factor=k, interpolator=interp, thickness=thickness)
                  .array.astype(np.float32) for m, interp in interps.items()}
            out = {m: up[m] for m in CLASSICAL_METHODS}
            out["default"] = up["hrinet"]
            for m in CLASSICAL_METHODS:
                for w in shares:
                    out[f"default + {w:g} {m}"] = (1 - w) * up["hrinet"] + w * up[m]
            return out
    else:
        one = create_interpolator("hrinet", device="cpu", precision="fp32")
        two = create_interpolator("hrinet", device="cpu", precision="fp32", weights=args.other)

        def outputs(thick, k, thickness):
            a, b = (upsample_z(thick, factor=k, interpolator=m, thickness=thickness)
                    .array.astype(np.float32) for m in (one, two))
            return {"default": a, "other": b, "mean": (a + b) / 2}
    if args.probe == "blend":
        blend_table(args.volumes, factors, outputs, args.slices, args.conditions.split(","))
        return
    print("| volume | x | " + ("method, sampling" if args.probe == "warp" else "model")
          + " | PSNR_HU | SSIM_win |\n|---|---|---|---|---|", flush=True)
    for path in args.volumes:
        for k, name, p, s in cells(path, factors, outputs, args.slices):
            print(f"| {Path(path).stem} | {k} | {name} | {p:.2f} | {s:.4f} |", flush=True)


def blend_table(volumes, factors, outputs, slices: int, conditions) -> None:
    """Each non-classical output's margins, as ``bench_stress.py`` counts a cell won
    (:func:`bench_stress.margins`)."""
    print("| volume | condition | x | output | PSNR_HU margin | SSIM_win margin |\n"
          "|---|---|---|---|---|---|", flush=True)
    for path, cond in ((p, c) for p in volumes for c in conditions):
        by_k = {}
        for k, name, p, s in cells(path, factors, outputs, slices, cond):
            by_k.setdefault(k, {})[name] = {"psnr_hu": p, "ssim_win": s}
        for k, cell in by_k.items():
            for name in cell:
                if name not in CLASSICAL_METHODS:
                    dp, ds = margins(cell, name)
                    print(f"| {Path(path).stem} | {cond} | {k} | {name} | {dp:+.2f} | "
                          f"{ds:+.4f} |", flush=True)


if __name__ == "__main__":
    main()
