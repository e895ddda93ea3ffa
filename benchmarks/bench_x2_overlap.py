"""Where the default loses at x2: thin volumes against overlapping reconstructions.

    python benchmarks/bench_x2_overlap.py [VOLUME ...] [--weights FILE]

For each volume (default: the two validation volumes and four training volumes of
``../shared/data/ct``), the central 41 slices are decimated x2 and upsampled back by linear,
cubic, flow and the default model; the synthesised slices (three at each end left out, where
cubic lacks context) are scored in PSNR_HU. Then the least-squares blend of the four outputs
against the truth: its weights say what the model leaves unused (a cubic weight near 0 means the
model already holds what cubic knows). The blend is fitted on the truth, so it is a diagnosis,
not a method.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import evaluate_volume, synthesised_mask
from hrinet.evaluation.metrics import psnr
from hrinet.learned.inference import load_interpolator
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

VOLUMES = ["chest-lungfcp-1mm.nrrd", "chest-rider-0p8mm.nrrd",
           "thorax-2mm.nrrd", "chest-lidc-1mm.nrrd", "head-ge-1p25mm.nrrd"]
METHODS = ["hrinet", "cubic", "linear", "flow"]
SLICES, EDGE = 41, 3


def diagnose(path: Path, model) -> dict:
    v = read_volume(path)
    z = v.array.shape[0] // 2
    lo = max(0, z - SLICES // 2)
    v = v.with_array(v.array[lo:lo + SLICES].copy(), v.spacing)
    outs = {}
    evaluate_volume(v, path.name, [2], METHODS, interpolators={"hrinet": model},
                    keep=lambda k, m, a: outs.__setitem__(m, a.astype(np.float32)))
    n = outs["linear"].shape[0]
    mask = synthesised_mask(n, 2)
    mask[:EDGE], mask[n - EDGE:] = False, False
    truth = v.array[:n][mask].astype(np.float32)
    pred = {m: outs[m][mask] for m in METHODS}
    a = np.stack([np.clip(pred[m], -1024, 3071).ravel() for m in METHODS], 1)
    w, *_ = np.linalg.lstsq(a, np.clip(truth, -1024, 3071).ravel(), rcond=None)
    blend = sum(wi * pred[m] for wi, m in zip(w, METHODS))
    return {"psnr": {m: psnr(pred[m], truth) for m in METHODS}, "blend": psnr(blend, truth),
            "weights": dict(zip(METHODS, w.tolist()))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volumes", nargs="*", help="volumes (default: six of ../shared/data/ct)")
    p.add_argument("--weights", help="model weights (default: the shipped default)")
    args = p.parse_args()
    paths = [Path(v) for v in args.volumes] or [SHARED_CT / v for v in VOLUMES]
    model = load_interpolator(args.weights, device="cpu", precision="fp32")
    print("| volume | " + " | ".join(METHODS) + " | default - cubic | LS blend | blend weights "
          "(" + ", ".join(METHODS) + ") |")
    print("|---" * (len(METHODS) + 4) + "|")
    for path in paths:
        if not path.exists():
            print(f"| {path.name} | missing |")
            continue
        r = diagnose(path, model)
        ps = r["psnr"]
        print(f"| {path.name} | " + " | ".join(f"{ps[m]:.2f}" for m in METHODS) +
              f" | {ps['hrinet'] - ps['cubic']:+.2f} | {r['blend']:.2f} | " +
              ", ".join(f"{r['weights'][m]:.2f}" for m in METHODS) + " |", flush=True)


if __name__ == "__main__":
    main()
