"""Which views should the quality setting average? Each of 16 views of the input scored alone,
and the mean of every set of views up to ``--most``, on the central slices of each volume.

    python benchmarks/bench_probe_views.py VOLUME ... [--factors 4,6] [--slices 49] [--most 5]

A view is a symmetry of the slice grid the model is not built to respect: reversed along z,
flipped left to right, flipped top to bottom, rows and columns swapped (16 combinations). The
quality setting today averages four (as given, reversed, flipped left to right, both:
``hrinet.methods.ensemble.VIEWS``). The optical flow inside the model errs differently in
each view, so views whose errors are least alike should average best; this probe measures that
instead of guessing. Prints, per volume and factor, each view's PSNR_HU and the best sets of each
size; last, over all cells, the mean gain of each set over the single view as given, the sets
ranked. Measurements, not a feature (docs/results.md, "Which views to average").
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from hrinet.core.constants import HU_RANGE
from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import protocol_input
from hrinet.evaluation.metrics import score, truth_stats
from hrinet.methods.engine import upsample_z
from hrinet.methods.ensemble import MirroredViews
from hrinet.methods.registry import create_interpolator

#: (reverse z, flip left-right, flip top-bottom, swap rows and columns)
VIEWS = tuple(itertools.product((False, True), repeat=4))


def label(view) -> str:
    """``z``, ``x``, ``y``, ``t`` for each transform the view applies; ``id`` for none."""
    return "".join(c for c, on in zip("zxyt", view) if on) or "id"


class OneView(MirroredViews):
    """``inner`` run on one view of its input, the result mapped back."""

    def __init__(self, inner, view):
        super().__init__(inner)
        self.view = view

    def interpolate(self, window, pairs, fractions):
        reverse, flip_x, flip_y, swap = self.view
        view = window[::-1] if reverse else window
        view = view[..., ::-1] if flip_x else view
        view = view[..., ::-1, :] if flip_y else view
        view = np.ascontiguousarray(np.swapaxes(view, -1, -2) if swap else view)
        out = self._reversed(view, pairs, fractions) if reverse else \
            self.inner.interpolate(view, list(pairs), list(fractions))
        out = np.swapaxes(out, -1, -2) if swap else out
        out = out[..., ::-1, :] if flip_y else out
        out = out[..., ::-1] if flip_x else out
        return np.ascontiguousarray(out, dtype=np.float32)


def central(volume, slices: int):
    """The central ``slices`` slices of ``volume`` (all of them if it has fewer)."""
    n = volume.array.shape[0]
    if n <= slices:
        return volume
    start = (n - slices) // 2
    volume.array = volume.array[start:start + slices]
    return volume


def error_gram(outs, truth) -> np.ndarray:
    """Mean products of the views' errors (HU, clipped as PSNR_HU clips): the mean squared
    error of any mean of views follows from it without forming the mean."""
    t = np.clip(truth.astype(np.float32), *HU_RANGE).ravel()
    errs = [np.clip(o, *HU_RANGE).ravel() - t for o in outs]
    n = len(errs)
    gram = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            gram[i, j] = gram[j, i] = float(np.dot(errs[i].astype(np.float64), errs[j]) / t.size)
    return gram


def mean_psnr(gram: np.ndarray, combo) -> float:
    """PSNR_HU of the mean of the views in ``combo``, from their error products."""
    idx = np.asarray(combo)
    m = gram[np.ix_(idx, idx)].sum() / len(idx) ** 2
    return float(10 * np.log10((HU_RANGE[1] - HU_RANGE[0]) ** 2 / m))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("volumes", nargs="+")
    ap.add_argument("--factors", default="4,6")
    ap.add_argument("--slices", type=int, default=49)
    ap.add_argument("--most", type=int, default=5, help="largest set of views averaged")
    ap.add_argument("--weights", default=None, help="the model's weights (default: shipped)")
    args = ap.parse_args()
    inner = create_interpolator("hrinet", device="cpu", precision="fp32", weights=args.weights)
    gains = {}  # set of views -> list of gains over "id" per cell
    for path in args.volumes:
        vol = central(read_volume(path), args.slices)
        for k in (int(f) for f in args.factors.split(",")):
            thick, thickness, mask = protocol_input(vol, k, "decimate")
            truth = vol.array[:len(mask)][mask]
            stats = truth_stats(truth)
            outs = [upsample_z(thick, factor=k, interpolator=OneView(inner, v),
                               thickness=thickness).array[mask].astype(np.float32)
                    for v in VIEWS]
            alone = [score(o, truth, stats).psnr_hu for o in outs]
            print(f"{Path(path).stem} x{k}: " + ", ".join(
                f"{label(v)} {p:.2f}" for v, p in zip(VIEWS, alone)), flush=True)
            gram = error_gram(outs, truth)
            for size in range(2, args.most + 1):
                best = []
                for combo in itertools.combinations(range(len(VIEWS)), size):
                    p = mean_psnr(gram, combo)
                    gains.setdefault(combo, []).append(p - alone[0])
                    best.append((p, combo))
                best.sort(reverse=True)
                print(f"  {size} views, best: " + "; ".join(
                    f"{'+'.join(label(VIEWS[i]) for i in c)} {p:.2f}" for p, c in best[:3]),
                    flush=True)
    today = tuple(sorted(VIEWS.index(v) for v in ((False,) * 4, (True, False, False, False),
                                           (False, True, False, False), (True, True, False, False))))
    if today in gains:
        print("\nmean gain over the view as given, all cells (today's set: "
              + f"{np.mean(gains[today]):+.3f}, worst {min(gains[today]):+.3f})")
    for size in range(2, args.most + 1):
        ranked = sorted((np.mean(g), min(g), c) for c, g in gains.items() if len(c) == size)
        for m, w, c in ranked[::-1][:5]:
            print(f"  {size}: {'+'.join(label(VIEWS[i]) for i in c)} {m:+.3f} (worst {w:+.3f})")


if __name__ == "__main__":
    main()
