"""Where the default gains least: the pairs at a volume's ends, which lack context slices.

    python benchmarks/bench_ends.py [VOLUME ...] [--weights FILE ...] [--factors 4,6]

For each volume (default: the two validation volumes and two training volumes of
``../shared/data/ct``), its central 49 slices (fewer if it has fewer) are decimated by each
factor and upsampled back by ``flow`` and by each model (the shipped default unless
``--weights``). Each pair of known slices is scored on its synthesised slices (PSNR_HU, from
the pair's mean squared error); the table gives each model's gain over ``flow`` on the two end
pairs (one context slice missing on one side, and the far one) and on the inner pairs: the
difference is what the context slices beyond a pair are worth to the model (flow uses none).

``--hide-context`` adds a control: each inner pair scored again as an end pair, from a crop of the
volume that ends at it (once on each side; the mean of the two): the same slices to synthesise,
only the context beyond one side gone. If the inner pairs' gain then falls to the ends' level,
the ends lose for want of context, not because they are ends of these particular volumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List

import numpy as np
from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import evaluate_volume
from hrinet.evaluation.metrics import mse
from hrinet.learned.inference import load_interpolator
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

VOLUMES = ["chest-lungfcp-1mm.nrrd", "chest-rider-0p8mm.nrrd", "thorax-2mm.nrrd",
           "head-ge-1p25mm.nrrd"]
SLICES = 49


def pair_mse(up: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """Mean squared error (HU, clipped to the PSNR_HU range) of each pair's synthesised slices."""
    return np.array([mse(up[p * k + 1:p * k + k], truth[p * k + 1:p * k + k])
                     for p in range(len(up) // k)])


def upsampled_pair_mse(v, k: int, models: Dict[str, object]) -> Dict[str, np.ndarray]:
    """``{method: pair_mse}`` of ``flow`` and each model on thin volume ``v`` decimated by ``k``."""
    outs = {}
    evaluate_volume(v, "crop", [k], ["flow", *models], interpolators=dict(models),
                    keep=lambda _k, m, a: outs.__setitem__(m, a.astype(np.float64)))
    truth = v.array[:len(outs["flow"])].astype(np.float64)
    return {m: pair_mse(a, truth, k) for m, a in outs.items()}


def gains(path: Path, k: int, models: Dict[str, object],
          hide_context: bool = False) -> Dict[str, List[float]]:
    """``{model: [gain at the ends, gain inside(, inside with the context of one side hidden)]}``
    over flow (dB) at factor ``k``."""
    v = read_volume(path)
    lo = max(0, v.array.shape[0] // 2 - SLICES // 2)
    v = v.with_array(v.array[lo:lo + SLICES].copy(), v.spacing)
    mse = upsampled_pair_mse(v, k, models)
    n = len(mse["flow"])
    ends = np.zeros(n, bool)
    ends[[0, -1]] = True
    db = lambda e, m, sel: 10 * np.log10(e["flow"][sel].mean() / e[m][sel].mean())  # noqa: E731
    out = {m: [db(mse, m, ends), db(mse, m, ~ends) if (~ends).any() else float("nan")]
           for m in models}
    if hide_context:
        # each inner pair p as the first pair of a crop from its first slice, and as the last
        # pair of a crop that ends at its second (two known slices on the other side: the halo)
        hidden = {m: [] for m in ["flow", *models]}
        for p in np.nonzero(~ends)[0]:
            for z0, z1, idx in ((p * k, (p + 3) * k + 1, 0), ((p - 2) * k, (p + 1) * k + 1, -1)):
                crop = v.with_array(v.array[max(z0, 0):z1].copy(), v.spacing)
                e = upsampled_pair_mse(crop, k, models)
                for m in hidden:
                    hidden[m].append(e[m][idx])
        h = {m: np.array(e) for m, e in hidden.items()}
        for m in models:
            out[m].append(db(h, m, slice(None)) if len(h["flow"]) else float("nan"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volumes", nargs="*", help="volumes (default: four of ../shared/data/ct)")
    p.add_argument("--weights", nargs="*", default=[None],
                   help="model weights to compare (default: the shipped default)")
    p.add_argument("--factors", default="4,6")
    p.add_argument("--hide-context", action="store_true",
                   help="also score each inner pair as an end pair (its context hidden)")
    args = p.parse_args()
    paths = [Path(v) for v in args.volumes] or [SHARED_CT / v for v in VOLUMES]
    models = {}
    for i, w in enumerate(args.weights):
        name = Path(w).stem if w else "default"
        name = f"{name}-{i + 1}" if name in models else name  # two files of one name
        models[name] = load_interpolator(w, device="cpu", precision="fp32")
        models[name].name = name
    cols = ["ends", "inner"] + ["inner, context hidden"] * args.hide_context
    print("| volume | factor | " + " | ".join(f"{m}: {c}" for m in models for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols) * len(models))
    for path in paths:
        for k in (int(f) for f in args.factors.split(",")):
            g = gains(path, k, models, args.hide_context)
            cells = " | ".join(f"{x:+.2f}" for m in models for x in g[m])
            print(f"| {path.name} | x{k} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
