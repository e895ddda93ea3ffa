"""How well the confidence map (:mod:`hrinet.methods.confidence`) predicts the real error.

Decimate protocol: keep every k-th thin slice of a volume, upsample it back by k with the
default model (``hrinet``, on the CPU), and compare the map with the real absolute error of each
synthesised voxel. Per factor it prints the Spearman rank correlation between predicted and real
error, the AUROC for finding voxels whose real error exceeds 100 HU, and calibration: the real
median error in voxels predicted <= 20 HU and in those predicted > 100 HU. Beside it, the plain
disagreement ``max(|default - linear|, |default - flow|)`` is scored the same way.

The volumes (:data:`VOLUMES`) are the corpus's validation series, none of which the shipped
model trained on. Each is scored by a calibration fitted on the other three (leave one volume
out), so every number is of a series that neither the model nor its calibration saw; the
shipped calibration is fitted on all four.

To keep runs short on a shared CPU each volume is cut to a central crop (``--crop`` pixels
square, ``--slices`` thin slices around the middle) and every ``--stride``-th voxel in-plane is
scored.

    python benchmarks/bench_confidence.py [--corpus ../corpus] [--factors 2,4,6,8]
        [--figure docs/figures/confidence-x6.png]
    python benchmarks/bench_confidence.py --fit   # also remake the shipped calibration

``--fit`` writes ``HRINetLib/hrinet/methods/confidence_calibration.json`` (fitted on every
volume of :data:`VOLUMES`); the table printed is the leave-one-volume-out one either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

#: The corpus's validation series (benchmarks/data/corpus.toml): the shipped model never trained
#: on them. The shipped calibration is fitted on all; each is reported under the other three's.
VOLUMES = ("chest-lungfcp-1mm", "liver-crlm1004-5mm", "extremity-sts001-3mm", "chest-lung1-3mm")
FIGURE_VOLUME = "chest-lung1-3mm"
ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT / "HRINetLib/hrinet/methods/confidence_calibration.json"


def run_case(volume, k: int, interp, stride: int):
    """``(features, error, disagreement, truth_slices, synth, conf)`` of one volume at x``k``:
    features ``(F, m)`` and errors ``(m,)`` of every ``stride``-th synthesised voxel."""
    from hrinet.evaluation.evaluate import protocol_input
    from hrinet.methods import create_interpolator
    from hrinet.methods.confidence import FEATURE_NAMES, pair_features
    from hrinet.methods.engine import upsample_z

    thick, _, mask = protocol_input(volume, k)
    result = upsample_z(thick, factor=k, interpolator=interp)
    truth = volume.array[:len(mask)].astype(np.float32)
    src = thick.array.astype(np.float32)
    lin = upsample_z(thick, factor=k, interpolator=create_interpolator("linear")).array
    flow = upsample_z(thick, factor=k, interpolator=create_interpolator("flow")).array
    fractions = [j / k for j in range(1, k)]
    feats, errs, dis = [], [], []
    full = np.zeros((len(FEATURE_NAMES),) + result.array.shape, np.float32)
    for p in range(src.shape[0] - 1):
        lo, hi = max(0, p - 1), min(src.shape[0], p + 3)
        sl = slice(p * k + 1, (p + 1) * k)
        synth = result.array[sl].astype(np.float32)
        f = pair_features(src[lo:hi], p - lo, fractions, synth, thick.spacing[2])
        full[:, sl] = np.moveaxis(f, 1, 0)
        err = np.abs(synth - truth[sl])
        d = np.maximum(np.abs(synth - lin[sl]), np.abs(synth - flow[sl]))
        sub = (slice(None), slice(None, None, stride), slice(None, None, stride))
        feats.append(f[:, :, ::stride, ::stride].transpose(1, 0, 2, 3).reshape(f.shape[1], -1))
        errs.append(err[sub].ravel())
        dis.append(d[sub].ravel())
    return (np.concatenate(feats, 1), np.concatenate(errs), np.concatenate(dis), truth,
            result.array.astype(np.float32), full)


def collect(corpus: Path, names: Sequence[str], factors: Sequence[int], size: int,
            slices: int, stride: int, keep=None) -> Dict[int, List[tuple]]:
    """Per factor, the ``(features, error, disagreement)`` of each volume."""
    import torch

    from hrinet.core.io import read_volume
    from hrinet.methods import create_interpolator

    from bench_stress import central  # benchmarks/bench_stress.py

    torch.set_num_threads(1)
    interp = create_interpolator("hrinet", device="cpu")
    cases: Dict[int, List[tuple]] = {k: [] for k in factors}
    for name in names:
        full = read_volume(corpus / f"{name}.nrrd")
        vol = central(full, slices, size)
        for k in factors:
            t0 = time.perf_counter()
            f, e, d, truth, synth, feats = run_case(vol, k, interp, stride)
            cases[k].append((f, e, d))
            print(f"  {name} x{k}: {e.size} voxels, {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            if keep is not None:
                keep(name, k, vol, truth, synth, feats)
    return cases


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    from scipy.stats import rankdata

    pos = int(positive.sum())
    neg = positive.size - pos
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def isotonic(x: np.ndarray, y: np.ndarray, bins: int = 48):
    """Knots and values of a non-decreasing map ``x -> mean y``: quantile bins of ``x``, then
    pool-adjacent-violators on the bins' means (weighted by their sizes)."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    blocks = []  # [sum_y, count, sum_x]
    for b in range(len(edges) - 1):
        sel = idx == b
        if sel.any():
            blocks.append([float(y[sel].sum()), int(sel.sum()), float(x[sel].sum())])
    merged: List[list] = []
    for blk in blocks:
        merged.append(blk)
        while len(merged) > 1 and merged[-2][0] / merged[-2][1] > merged[-1][0] / merged[-1][1]:
            s, c, sx = merged.pop()
            merged[-1][0] += s
            merged[-1][1] += c
            merged[-1][2] += sx
    knots = [m[2] / m[1] for m in merged]
    values = [m[0] / m[1] for m in merged]
    return knots, values


def fit(cases: Dict[int, List[tuple]], names: Sequence[str], args) -> dict:
    """The calibration from ``cases``: least squares of ``log(|error| + offset)`` on the design,
    every factor weighted equally, then the isotonic map from the score to mean |error|."""
    from hrinet.methods.confidence import LOG_OFFSET, design

    xs, ys = [], []
    for k, per in cases.items():
        f = np.concatenate([c[0] for c in per], 1)
        e = np.concatenate([c[1] for c in per])
        rng = np.random.default_rng(k)
        pick = rng.choice(e.size, min(e.size, 200_000), replace=False)
        xs.append(design(f[:, pick][:, :, None])[..., 0])
        ys.append(e[pick])
    d = np.concatenate(xs, 1).T.astype(np.float64)
    e = np.concatenate(ys)
    coef, *_ = np.linalg.lstsq(d, np.log(e + LOG_OFFSET), rcond=None)
    knots, values = isotonic(d @ coef, e)
    return {
        "what": "expected |error| (HU) of an interpolated voxel: score = design(features) . coef "
                "(hrinet.methods.confidence.design), then np.interp(score, score_knots, "
                "error_hu)",
        "fitted_on": {
            "volumes": list(names), "split": "validation (benchmarks/data/corpus.toml)",
            "protocol": "decimate", "factors": sorted(cases), "method": "hrinet (shipped "
            "default, CPU)", "crop": f"central {args.crop}^2 pixels, {args.slices} thin slices",
            "voxels": f"one in {args.stride} along each in-plane axis, at most 200000 per factor",
            "made_by": "python benchmarks/bench_confidence.py --fit"},
        "coef": [round(float(c), 6) for c in coef],
        "score_knots": [round(float(v), 5) for v in knots],
        "error_hu": [round(float(v), 3) for v in values],
    }


def held_out(cases: Dict[int, List[tuple]], names: Sequence[str], args) -> tuple:
    """Leave one volume out: per factor, ``(predicted, error, disagreement)`` of every volume,
    each predicted by a calibration fitted on the other volumes; and those calibrations."""
    from hrinet.methods.confidence import expected_error

    cals = [fit({k: per[:i] + per[i + 1:] for k, per in cases.items()},
                [n for j, n in enumerate(names) if j != i], args) for i in range(len(names))]
    out = {k: [(expected_error(c[0][:, :, None], cals[i])[:, 0], c[1], c[2])
               for i, c in enumerate(per)] for k, per in cases.items()}
    return out, cals


def table(scored: Dict[int, List[tuple]]) -> List[dict]:
    """Per factor: Spearman, AUROC (>100 HU), calibration medians, for the map and for the
    plain disagreement; ``scored[k]`` lists ``(predicted, error, disagreement)`` per volume."""
    rows = []
    for k, per in scored.items():
        pred = np.concatenate([c[0] for c in per])
        e = np.concatenate([c[1] for c in per])
        dis = np.concatenate([c[2] for c in per])
        rng = np.random.default_rng(0)
        pick = rng.choice(e.size, min(e.size, 300_000), replace=False)
        low, high = pred <= 20, pred > 100
        rows.append({
            "factor": k, "voxels": int(e.size), "over_100": float((e > 100).mean()),
            "spearman": spearman(pred[pick], e[pick]), "auroc": auroc(pred, e > 100),
            "low_share": float(low.mean()),
            "low_median": float(np.median(e[low])) if low.any() else float("nan"),
            "high_share": float(high.mean()),
            "high_median": float(np.median(e[high])) if high.any() else float("nan"),
            "high_pred_median": float(np.median(pred[high])) if high.any() else float("nan"),
            "plain_spearman": spearman(dis[pick], e[pick]), "plain_auroc": auroc(dis, e > 100)})
    return rows


def markdown(rows: List[dict]) -> str:
    lines = ["| factor | Spearman | AUROC (>100 HU) | predicted <= 20 HU: share, real median | "
             "predicted > 100 HU: share, real median (predicted median) | plain disagreement: "
             "Spearman, AUROC |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| x{r['factor']} | {r['spearman']:.2f} | {r['auroc']:.3f} | "
            f"{100 * r['low_share']:.0f}%, {r['low_median']:.1f} HU | "
            f"{100 * r['high_share']:.1f}%, {r['high_median']:.0f} HU "
            f"({r['high_pred_median']:.0f}) | "
            f"{r['plain_spearman']:.2f}, {r['plain_auroc']:.3f} |")
    return "\n".join(lines)


def figure(path: Path, vol, truth, synth, feats, k: int, calibration: dict) -> None:
    """Real error beside predicted error on the middle coronal reformat (one synthesised row
    band per gap), written small."""
    import matplotlib

    from hrinet.core.preview import coronal

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hrinet.methods.confidence import expected_error

    pred = expected_error(np.moveaxis(feats, 0, 1), calibration)
    pred[::k] = 0
    err = np.abs(synth - truth)
    y = truth.shape[1] // 2
    sx, _, sz = vol.spacing
    aspect = sz / sx
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4), dpi=80)
    # the last slice on top, as every figure shows z (hrinet.core.preview.coronal)
    axes[0].imshow(coronal(truth, y), cmap="gray", vmin=-1000, vmax=400, aspect=aspect)
    axes[0].set_title("thin truth (coronal)")
    for ax, img, title in ((axes[1], coronal(err, y), "real |error| (HU)"),
                           (axes[2], coronal(pred, y), "predicted |error| (HU)")):
        im = ax.imshow(img, cmap="magma", vmin=0, vmax=200, aspect=aspect)
        ax.set_title(title)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[1:], shrink=0.8, label="HU")
    fig.suptitle(f"{FIGURE_VOLUME}, decimated x{k}, hrinet (acquired rows: 0)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "corpus")
    ap.add_argument("--factors", default="2,4,6,8")
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--slices", type=int, default=97)
    ap.add_argument("--stride", type=int, default=3)
    ap.add_argument("--fit", action="store_true", help="remake the shipped calibration")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs/figures/confidence-x6.png")
    ap.add_argument("--json", type=Path, help="also write the table as JSON")
    args = ap.parse_args()
    factors = [int(f) for f in args.factors.split(",")]
    kept = {}

    def keep(name, k, vol, truth, synth, feats):
        if name == FIGURE_VOLUME and k == 6:
            kept.update(vol=vol, truth=truth, synth=synth, feats=feats)

    cases = collect(args.corpus, VOLUMES, factors, args.crop, args.slices, args.stride, keep)
    if args.fit:
        CALIBRATION.write_text(json.dumps(fit(cases, VOLUMES, args), indent=1) + "\n")
        print(f"wrote {CALIBRATION}")
    scored, cals = held_out(cases, VOLUMES, args)
    rows = table(scored)
    print(f"each of {', '.join(VOLUMES)} under a calibration fitted on the other "
          f"{len(VOLUMES) - 1} (central {args.crop}^2, {args.slices} slices, one "
          f"voxel in {args.stride} along each in-plane axis)")
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if kept and args.figure:
        figure(args.figure, kept["vol"], kept["truth"], kept["synth"], kept["feats"], 6,
               cals[VOLUMES.index(FIGURE_VOLUME)])
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
