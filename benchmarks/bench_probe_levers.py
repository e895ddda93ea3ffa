"""Two cheap levers for issue 43, probed on whole validation volumes (decimate protocol, fp32).

    python benchmarks/bench_probe_levers.py warp VOLUME ... [--factors 2,4,6] [--methods flow]
    python benchmarks/bench_probe_levers.py pair VOLUME ... [--factors 2,4,6] [--other FILE]

- ``warp``: the optical flow's backward warp with bicubic instead of bilinear sampling (the
  warped slices keep more of the in-plane high band, which the default lacks on sharp kernels):
  each method scored with both, the model as trained (with bilinear warps).
- ``pair``: the shipped default averaged with a second model (``--other``, default the
  quality-corpus candidate), the cheapest ensemble of differently trained weights: each alone
  and their mean.

PSNR_HU / SSIM_win per volume and factor. Measurements, not features (docs/results.md, "Two
levers probed").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import protocol_input
from hrinet.evaluation.metrics import score, truth_stats
from hrinet.methods import flow
from hrinet.methods.engine import upsample_z
from hrinet.methods.registry import create_interpolator

CANDIDATE = Path(__file__).resolve().parent / "candidates" / "quality-corpus.safetensors"


def bicubic_warp(image: np.ndarray, field: np.ndarray, grid=None) -> np.ndarray:
    """:func:`hrinet.methods.flow.warp` with bicubic sampling."""
    h, w = image.shape[:2]
    gx, gy = grid if grid is not None else np.meshgrid(np.arange(w, dtype=np.float32),
                                                       np.arange(h, dtype=np.float32))
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), gx + field[..., 0],
                     gy + field[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def cells(path: str, factors, outputs):
    """``(k, name, PSNR_HU, SSIM_win)`` for each output ``outputs(thick, k) -> {name: array}``."""
    vol = read_volume(path)
    for k in factors:
        thick, thickness, mask = protocol_input(vol, k, "decimate")
        truth = vol.array[:len(mask)]
        stats = truth_stats(truth[mask])
        for name, out in outputs(thick, k, thickness).items():
            s = score(out[mask], truth[mask], stats)
            yield k, name, s.psnr_hu, s.ssim_win


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("probe", choices=("warp", "pair"))
    ap.add_argument("volumes", nargs="+")
    ap.add_argument("--factors", default="2,4,6")
    ap.add_argument("--methods", default="flow", help="warp: the methods scored (flow, hrinet)")
    ap.add_argument("--other", default=str(CANDIDATE), help="pair: the second model's weights")
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
    else:
        one = create_interpolator("hrinet", device="cpu", precision="fp32")
        two = create_interpolator("hrinet", device="cpu", precision="fp32", weights=args.other)

        def outputs(thick, k, thickness):
            a, b = (upsample_z(thick, factor=k, interpolator=m, thickness=thickness)
                    .array.astype(np.float32) for m in (one, two))
            return {"default": a, "other": b, "mean": (a + b) / 2}
    print("| volume | x | " + ("method, sampling" if args.probe == "warp" else "model")
          + " | PSNR_HU | SSIM_win |\n|---|---|---|---|---|", flush=True)
    for path in args.volumes:
        for k, name, p, s in cells(path, factors, outputs):
            print(f"| {Path(path).stem} | {k} | {name} | {p:.2f} | {s:.4f} |", flush=True)


if __name__ == "__main__":
    main()
