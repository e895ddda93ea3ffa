"""Which views should the quality setting average? Each of 16 views of the input scored alone,
and the mean of every set of views up to ``--most``, on the central slices of each volume.

    python benchmarks/bench_probe_views.py VOLUME ... [--factors 4,6] [--slices 49] [--crop 0]
        [--most 5] [--save cells.npz]
    python benchmarks/bench_probe_views.py --load cells.npz ... [--most 5]
    python benchmarks/bench_probe_views.py VOLUME ... --sets id+z+x+zx,yt+xt+xyt+zy

A view is a symmetry of the slice grid the model is not built to respect: reversed along z,
flipped left to right, flipped top to bottom, rows and columns swapped (16 combinations). The
quality setting today averages four (as given, reversed, flipped left to right, both:
``hrinet.methods.ensemble.VIEWS``). The optical flow inside the model errs differently in
each view, so views whose errors are least alike should average best; this probe measures that
instead of guessing (each view's result kept in float32, so a set's score is its average's, up
to the clipping of each view to the HU range). Prints, per volume and factor, each view's PSNR_HU and the best sets of each
size; last, over all cells, the mean gain of each set over the single view as given, the sets
ranked (``--load``: the ranking alone, over cells saved by ``--save``). With ``--sets``, each
named set (views labelled by what they apply: z reversed, x and y flipped, t swapped; id none)
is scored in full instead. Measurements, not a feature (docs/results.md, "Which views to
average").
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

from bench_stress import central as stress_central  # benchmarks/bench_stress.py

#: Every view (hrinet.methods.ensemble.View): reversed in z, flipped in x, in y, rows and columns
#: swapped
VIEWS = tuple(itertools.product((False, True), repeat=4))


def label(view) -> str:
    """``z``, ``x``, ``y``, ``t`` for each transform the view applies; ``id`` for none."""
    return "".join(c for c, on in zip("zxyt", view) if on) or "id"


def cell_name(path: str, k: int, taken) -> str:
    """``<file name without its extensions> x<k>``, the folder's name before it where two
    volumes share a file name."""
    name = f"{Path(path).name.split('.')[0]} x{k}"
    return name if name not in taken else f"{Path(path).parent.name}/{name}"


def central(volume, slices: int, crop: int):
    """:func:`bench_stress.central` in float32 HU, so that the engine writes each result
    unrounded (the quality setting averages before it rounds)."""
    block = stress_central(volume, slices, crop)
    return block.with_array(block.array.astype(np.float32))


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


def probe_parser(doc: str, slices: int, crop: int, example: str) -> argparse.ArgumentParser:
    """The arguments the probes share: volumes, factors, central slices and crop, cells saved
    and loaded, named sets scored in full (``example`` shows them)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("volumes", nargs="*")
    ap.add_argument("--factors", default="4,6")
    ap.add_argument("--slices", type=int, default=slices, help="central slices used")
    ap.add_argument("--crop", type=int, default=crop, help="central in-plane crop (0: whole)")
    ap.add_argument("--save", default=None, help="write each cell's products (npz)")
    ap.add_argument("--load", nargs="*", default=(),
                    help="rank the sets over cells saved by --save instead of running")
    ap.add_argument("--sets", default=None, help="instead of ranking: score these sets in full "
                    f"(PSNR_HU, SSIM_win, grad_ratio), e.g. {example!r}")
    return ap


def checked(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed arguments, refused where they ask for nothing or for two things at once."""
    args = ap.parse_args()
    if not args.volumes and not args.load:
        ap.error("name the volumes to run on, or --load the cells saved by --save")
    if args.sets and (args.load or args.save):
        ap.error("--sets scores volumes in full; it neither loads nor saves cells")
    return args


def main() -> None:
    ap = probe_parser(__doc__, 49, 0, "id+z+x+zx,yt+xt+xyt+zy")
    ap.add_argument("--most", type=int, default=5, help="largest set of views averaged")
    ap.add_argument("--weights", default=None, help="the model's weights (default: shipped)")
    args = checked(ap)
    if args.sets:
        unknown = {n for s in args.sets.split(",") for n in s.split("+")} - {
            label(v) for v in VIEWS}
        if unknown:
            ap.error(f"unknown views {', '.join(sorted(unknown))}; a view is labelled by what it "
                     "applies, in the order z x y t (e.g. zxt), or id for none")
    grams = {}  # cell name -> error products of the 16 views
    for f in args.load:
        with np.load(f) as saved:
            grams.update({name: saved[name] for name in saved.files})
    inner = None if args.load else create_interpolator("hrinet", device="cpu",
                                                       precision="fp32", weights=args.weights)
    if args.sets:
        return compare(inner, args)
    for path in [] if args.load else args.volumes:
        vol = central(read_volume(path), args.slices, args.crop)
        for k in (int(f) for f in args.factors.split(",")):
            thick, thickness, mask = protocol_input(vol, k, "decimate")
            truth = vol.array[:len(mask)][mask]
            stats = truth_stats(truth)
            outs = [upsample_z(thick, factor=k, interpolator=MirroredViews(inner, (v,)),
                               thickness=thickness).array[mask].astype(np.float32)
                    for v in VIEWS]
            alone = [score(o, truth, stats).psnr_hu for o in outs]
            print(f"{Path(path).stem} x{k}: " + ", ".join(
                f"{label(v)} {p:.2f}" for v, p in zip(VIEWS, alone)), flush=True)
            grams[cell_name(path, k, grams)] = error_gram(outs, truth)
            if args.save:
                np.savez(args.save, **grams)
    rank(grams, args.most)


def compare(inner, args) -> None:
    """Each set of ``args.sets`` scored in full on each volume and factor."""
    by_label = {label(v): v for v in VIEWS}

    def outputs(thick, k, thickness, names):
        return {n: upsample_z(thick, factor=k, thickness=thickness,
                              interpolator=MirroredViews(inner, (by_label[n],))).array
                for n in names}
    compare_sets(args, outputs, "views")


def compare_sets(args, outputs, what: str) -> None:
    """Each set of ``args.sets`` (names joined by ``+``, sets by ``,``) scored in full, its
    members' results ``outputs(thick, k, thickness, names) -> {name: volume}`` averaged: a table
    of PSNR_HU, SSIM_win and grad_ratio per volume and factor."""
    sets = [s.split("+") for s in args.sets.split(",")]
    print(f"| volume | x | {what} | PSNR_HU | SSIM_win | grad_ratio |\n|---|---|---|---|---|---|")
    for path in args.volumes:
        vol = central(read_volume(path), args.slices, args.crop)
        for k in (int(f) for f in args.factors.split(",")):
            thick, thickness, mask = protocol_input(vol, k, "decimate")
            truth = vol.array[:len(mask)][mask]
            stats = truth_stats(truth)
            outs = {n: o[mask].astype(np.float32) for n, o in outputs(
                thick, k, thickness, {n for s in sets for n in s}).items()}
            for names in sets:
                sc = score(sum(outs[n] for n in names) / np.float32(len(names)), truth, stats)
                print(f"| {Path(path).stem} | {k} | {'+'.join(names)} | {sc.psnr_hu:.3f} | "
                      f"{sc.ssim_win:.4f} | {sc.grad_ratio:.3f} |", flush=True)


def rank(grams: dict, most: int) -> None:
    """Each set of up to ``most`` views: its mean and worst gain over the view as given."""
    gains = {}  # set of views -> gain over "id" per cell
    for gram in grams.values():
        alone = mean_psnr(gram, (0,))
        for size in range(1, most + 1):
            for combo in itertools.combinations(range(len(VIEWS)), size):
                gains.setdefault(combo, []).append(mean_psnr(gram, combo) - alone)
    today = tuple(sorted(VIEWS.index(v) for v in ((False,) * 4, (True, False, False, False),
                                           (False, True, False, False), (True, True, False, False))))
    if today in gains:
        print("\nmean gain over the view as given, all cells (today's set: "
              + f"{np.mean(gains[today]):+.3f}, worst {min(gains[today]):+.3f})")
    print(f"over {len(grams)} cells: {', '.join(grams)}")
    for size in range(2, min(most, len(VIEWS)) + 1):
        ranked = sorted((np.mean(g), min(g), c) for c, g in gains.items() if len(c) == size)
        for m, w, c in ranked[::-1][:5]:
            print(f"  {size}: {'+'.join(label(VIEWS[i]) for i in c)} {m:+.3f} (worst {w:+.3f})")
        m, w, c = max(ranked, key=lambda r: (r[1], r[0]))
        print(f"  {size}, best worst: {'+'.join(label(VIEWS[i]) for i in c)} {m:+.3f} "
              f"(worst {w:+.3f})")


if __name__ == "__main__":
    main()
