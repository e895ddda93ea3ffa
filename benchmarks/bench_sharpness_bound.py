"""What ``grad_ratio`` (sharpness) can an estimator of the missing slices reach, and at what
PSNR cost: the decomposition behind issue 43's x8-x12 sharpness goal.

    python benchmarks/bench_sharpness_bound.py VOLUME ... [--factors 8,12] [--slices 49]

For the synthesised slices ``p`` of each method against the truth ``t`` (error ``e = p - t``),
with ``G(x)`` the mean squared in-plane gradient (:func:`hrinet.evaluation.metrics.
gradient_energy`, HU clipped as ``hrinet evaluate`` clips them):

    G(t) = G(p) + G(e) - 2 C,   C = mean(grad p . grad e)

so ``grad_ratio = G(p) / G(t) = 1 - G(e) / G(t) + 2 C / G(t)``. An estimator that minimises
the squared error (the conditional mean of the truth given the known slices) leaves an error
orthogonal to every function of its input, its own gradient included: ``C = 0`` and
``grad_ratio = 1 - G(e) / G(t)``. For such an estimator ``grad_ratio >= R`` needs the error's
gradient energy at or below ``(1 - R) G(t)``: a gain in accuracy at the finest scales, not a
change of loss. The other way, adding a texture ``n`` independent of the truth, raises
``G(p)`` by ``G(n)`` and the squared error by ``var(n)``; the texture with the most gradient
energy per variance (a checkerboard: ``G(n) = 8 var(n)``) gives the least PSNR cost of lifting
``grad_ratio`` to ``R``: ``10 log10(1 + (R - r) G(t) / (8 MSE))`` dB. Printed per volume and
factor for each method: PSNR_HU, grad_ratio, G(e)/G(t), 2C/G(t), the matched gradient
``mean(grad p . grad t) / G(t)`` (= grad_ratio - C / G(t): the gradient energy that agrees with
the truth, which only a more accurate slice raises; for an MSE-optimal estimator it equals
grad_ratio), the error-gradient reduction an MSE-optimal estimator needs for R (dB) and that
least PSNR cost of texture.

The central ``--slices`` slices of each volume are used, decimated by each factor (the
decimate protocol of ``hrinet evaluate``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from hrinet.core.constants import HU_RANGE
from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import protocol_input
from hrinet.evaluation.metrics import psnr
from hrinet.methods import create_interpolator
from hrinet.methods.engine import upsample_z

from bench_stress import central  # benchmarks/bench_stress.py


def _gradients(a: np.ndarray):
    a = np.clip(np.asarray(a, dtype=np.float64), *HU_RANGE)
    return np.diff(a, axis=-2), np.diff(a, axis=-1)


def decompose(pred: np.ndarray, truth: np.ndarray, target: float) -> dict:
    """The terms above for synthesised slices ``pred`` against ``truth`` and a ``grad_ratio``
    goal ``target``."""
    py, px = _gradients(pred)
    ty, tx = _gradients(truth)
    ey, ex = py - ty, px - tx
    g_t = float(np.mean(ty ** 2) + np.mean(tx ** 2))
    g_p = float(np.mean(py ** 2) + np.mean(px ** 2))
    g_e = float(np.mean(ey ** 2) + np.mean(ex ** 2))
    cross = float(np.mean(py * ey) + np.mean(px * ex))
    mse = float(np.mean((np.clip(pred, *HU_RANGE) - np.clip(truth, *HU_RANGE)) ** 2))
    ratio = g_p / g_t
    need = max(0.0, 10 * np.log10(g_e / ((1 - target) * g_t)))
    cost = 10 * np.log10(1 + max(0.0, target - ratio) * g_t / (8 * mse))
    return {"psnr_hu": psnr(pred, truth), "grad_ratio": ratio, "error_share": g_e / g_t,
            "cross_share": 2 * cross / g_t, "matched": ratio - cross / g_t,
            "mmse_needs_db": need, "texture_cost_db": cost}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("volumes", nargs="+", help="thin-slice volumes (NRRD, NIfTI, DICOM folder)")
    p.add_argument("--factors", default="8,12", help="decimation factors (default 8,12)")
    p.add_argument("--methods", default="linear,cubic,flow,hrinet",
                   help="methods (default linear,cubic,flow,hrinet)")
    p.add_argument("--target", type=float, default=0.85, help="grad_ratio goal (default 0.85)")
    p.add_argument("--slices", type=int, default=49, help="central slices used (default 49)")
    args = p.parse_args()
    methods = args.methods.split(",")
    interps = {m: create_interpolator(m, precision="fp32") for m in methods}
    print("| volume | x | method | PSNR_HU | grad_ratio | G(e)/G(t) | 2C/G(t) | matched | "
          f"MSE-optimal needs (dB less error gradient) for {args.target:g} | least PSNR cost of "
          "texture (dB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in args.volumes:
        volume = central(read_volume(path), args.slices)
        for k in (int(f) for f in args.factors.split(",")):
            thick, thickness, mask = protocol_input(volume, k)
            truth = volume.array[:len(mask)][mask]
            for m in methods:
                up = upsample_z(thick, factor=k, interpolator=interps[m], thickness=thickness)
                d = decompose(up.array[mask], truth, args.target)
                print(f"| {Path(path).name.split('.')[0]} | {k} | {m} | {d['psnr_hu']:.2f} | "
                      f"{d['grad_ratio']:.3f} | {d['error_share']:.3f} | "
                      f"{d['cross_share']:+.3f} | {d['matched']:.3f} | "
                      f"{d['mmse_needs_db']:.2f} | "
                      f"{d['texture_cost_db']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
