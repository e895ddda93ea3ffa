"""How much in-plane detail the default leaves out that cubic B-splines keep, per stress cell.

    python benchmarks/bench_high_band.py [VOLUME ...] [--conditions C,...] [--factors 2,4]

For each volume (central 49 slices) under each `bench_stress.py` condition and factor, the
default's synthesised slices ``o`` are given back a share ``lam`` of the in-plane high band of
cubic's (``HP(cubic - o)``, HP = the slice minus its Gaussian blur of 1 pixel) and scored:

- fixed ``lam`` (``--lams``): what restoring the band is worth, and where it costs;
- ``oracle``: the least-squares ``lam`` against the truth (clamped to 0..1), an upper bound;
- ``self``: ``lam`` fitted on the input alone (its own slices decimated by the same factor and
  predicted back), which a guard could use at run time: it sees the band's predictability at
  twice the gap only.

PSNR_HU / SSIM_win per cell; cubic's beside them. A measurement, not a feature: the default does
not do this (docs/results.md, "Twelfth stage").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from hrinet.core.io import read_volume
from hrinet.core.volume import Volume
from hrinet.evaluation.evaluate import protocol_input
from hrinet.evaluation.metrics import score, truth_stats
from hrinet.learned.inference import load_interpolator
from hrinet.methods.engine import upsample_z
from hrinet.methods.registry import create_interpolator
from scipy.ndimage import gaussian_filter

from bench_stress import (  # benchmarks/bench_stress.py
    CONDITIONS,
    VOLUMES,
    central,
    stressed,
)
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py


def high_band(x: np.ndarray) -> np.ndarray:
    """The in-plane high band of ``(n, y, x)``: each slice minus its 1-pixel Gaussian blur."""
    return x - gaussian_filter(x, sigma=(0, 1, 1))


def best_share(band: np.ndarray, residual: np.ndarray) -> float:
    """The least-squares share of ``band`` that explains ``residual``, clamped to 0..1."""
    return float(np.clip((band * residual).sum() / max(float((band * band).sum()), 1e-6), 0, 1))


def upsampled(thick: Volume, k: int, model, cubic):
    """The default's and cubic's outputs for ``thick`` at factor ``k`` (float32)."""
    return tuple(upsample_z(thick, factor=k, interpolator=m, thickness=0.0).array.astype(np.float32)
                 for m in (model, cubic))


def self_share(thick: Volume, k: int, model, cubic) -> float:
    """``lam`` fitted on the input alone: its slices decimated by ``k`` and predicted back."""
    sub, _, mask = protocol_input(thick, k, "decimate")
    o, c = upsampled(sub, k, model, cubic)
    truth = thick.array[:len(mask)][mask].astype(np.float32)
    return best_share(high_band(c[mask] - o[mask]), truth - o[mask])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volumes", nargs="*", help="thin volumes (default: the validation volumes)")
    p.add_argument("--conditions", default="scanned,bone-kernel,bone-kernel-2,noise-40")
    p.add_argument("--factors", default="2,4")
    p.add_argument("--lams", default="0.5,1.0", help="fixed shares of the band to score")
    p.add_argument("--slices", type=int, default=49)
    args = p.parse_args()
    for c in args.conditions.split(","):
        if c not in CONDITIONS:
            raise SystemExit(f"unknown condition {c!r}; choose from {', '.join(CONDITIONS)}")
    model = load_interpolator(None, device="cpu", precision="fp32")
    cubic = create_interpolator("cubic")
    lams = [float(x) for x in args.lams.split(",")]
    print("| volume | condition | x | default | " + " | ".join(f"lam {x:g}" for x in lams)
          + " | oracle (lam) | self (lam) | cubic |")
    print("|---|---|---|---|" + "---|" * (len(lams) + 3))
    fmt = lambda s: f"{s.psnr_hu:.2f} / {s.ssim_win:.4f}"  # noqa: E731
    for path in [Path(v) for v in args.volumes] or [SHARED_CT / v for v in VOLUMES]:
        base = central(read_volume(path), args.slices)
        for cond in args.conditions.split(","):
            vol = stressed(base, cond)
            for k in (int(x) for x in args.factors.split(",")):
                thick, _, mask = protocol_input(vol, k, "decimate")
                truth = vol.array[:len(mask)][mask].astype(np.float32)
                stats = truth_stats(truth)
                o, c = (a[mask] for a in upsampled(thick, k, model, cubic))
                band = high_band(c - o)
                oracle = best_share(band, truth - o)
                own = self_share(thick, k, model, cubic)
                cells = [fmt(score(o + x * band, truth, stats)) for x in [0.0] + lams]
                cells += [f"{fmt(score(o + x * band, truth, stats))} ({x:.2f})"
                          for x in (oracle, own)]
                cells.append(fmt(score(c, truth, stats)))
                print(f"| {path.stem} | {cond} | {k} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
