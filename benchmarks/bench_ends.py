"""Where the default gains least: the pairs at a volume's ends, which lack context slices.

    python benchmarks/bench_ends.py [VOLUME ...] [--weights FILE ...] [--factors 4,6]

For each volume (default: the two validation volumes and two training volumes of
``../shared/data/ct``), its central 49 slices (fewer if it has fewer) are decimated by each
factor and upsampled back by ``flow`` and by each model (the shipped default unless
``--weights``). Each pair of known slices is scored on its synthesised slices (PSNR_HU, from
the pair's mean squared error); the table gives each model's gain over ``flow`` on the two end
pairs (one context slice missing on one side, and the far one) and on the inner pairs: the
difference is what the context slices beyond a pair are worth to the model (flow uses none).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List

import numpy as np

from hrinet.evaluate import evaluate_volume
from hrinet.inference import load_interpolator
from hrinet.io import read_volume
from hrinet.metrics import mse
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

VOLUMES = ["chest-lungfcp-1mm.nrrd", "abdomen-2mm-dicom", "thorax-2mm.nrrd",
           "head-ge-1p25mm.nrrd"]
SLICES = 49


def pair_mse(up: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """Mean squared error (HU, clipped to the PSNR_HU range) of each pair's synthesised slices."""
    return np.array([mse(up[p * k + 1:p * k + k], truth[p * k + 1:p * k + k])
                     for p in range(len(up) // k)])


def gains(path: Path, k: int, models: Dict[str, object]) -> Dict[str, List[float]]:
    """``{model: [gain at the ends, gain inside]}`` over flow (dB) at factor ``k``."""
    v = read_volume(path)
    lo = max(0, v.array.shape[0] // 2 - SLICES // 2)
    v = v.with_array(v.array[lo:lo + SLICES].copy(), v.spacing)
    outs = {}
    evaluate_volume(v, path.name, [k], ["flow", *models], interpolators=dict(models),
                    keep=lambda _k, m, a: outs.__setitem__(m, a.astype(np.float64)))
    truth = v.array[:len(outs["flow"])].astype(np.float64)
    mse = {m: pair_mse(a, truth, k) for m, a in outs.items()}
    ends = np.zeros(len(mse["flow"]), bool)
    ends[[0, -1]] = True
    db = lambda m, sel: 10 * np.log10(mse["flow"][sel].mean() / mse[m][sel].mean())  # noqa: E731
    return {m: [db(m, ends), db(m, ~ends) if (~ends).any() else float("nan")] for m in models}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volumes", nargs="*", help="volumes (default: four of ../shared/data/ct)")
    p.add_argument("--weights", nargs="*", default=[None],
                   help="model weights to compare (default: the shipped default)")
    p.add_argument("--factors", default="4,6")
    args = p.parse_args()
    paths = [Path(v) for v in args.volumes] or [SHARED_CT / v for v in VOLUMES]
    models = {}
    for i, w in enumerate(args.weights):
        name = Path(w).stem if w else "default"
        name = f"{name}-{i + 1}" if name in models else name  # two files of one name
        models[name] = load_interpolator(w, device="cpu")
        models[name].name = name
    print("| volume | factor | " + " | ".join(f"{m}: ends | {m}: inner" for m in models) + " |")
    print("|---|---|" + "---|---|" * len(models))
    for path in paths:
        for k in (int(f) for f in args.factors.split(",")):
            g = gains(path, k, models)
            cells = " | ".join(f"{g[m][0]:+.2f} | {g[m][1]:+.2f}" for m in models)
            print(f"| {path.name} | x{k} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
