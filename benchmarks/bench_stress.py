"""Trust on any scanner: each volume under what real scanners do, every factor, per cell.

    python benchmarks/bench_stress.py [VOLUME ...] [--weights NAME=FILE ...] [--out DIR]

Each volume (default: the validation volumes of ../shared/data/ct) is taken as scanned and
re-made as another scanner would have given it: a small display field of view (everything
outside a circle that cuts through the body set to -2000 or -3024 HU), added noise at two doses
(20 and 40 HU), a bone kernel (in-plane unsharp masking, amount 1) and a sharper one (amount 2:
about 3x at the highest in-plane frequencies, as sharp bone kernels). Each version is decimated
at x2, x4, x6, x8 and x12 and upsampled back by linear, cubic, flow and the default model (and
any ``--weights``, each at ``--quality``); PSNR_HU and SSIM_win of the synthesised slices
are printed per cell (``stress.csv`` is rewritten after each volume and condition, so a run
stopped early keeps what it measured), with every cell where a learned model falls below the
best classical method (PSNR: linear, cubic, flow; SSIM_win: linear, cubic) marked and listed. The central ``--slices`` slices of each volume
are used (speed). Results go to ``DIR/stress.csv``, ``DIR/stress.md`` (every cell) and
``DIR/summary.md`` (the README's form: per volume and condition, each model's PSNR_HU gain at
each factor and its lowest SSIM_win margin), with ``DIR/settings.json`` (how the table was
measured: ``stress_reuse.py``). ``--reuse`` an earlier ``stress.csv`` copies the cells that run
measured as this one would instead of measuring them again: a candidate's table then costs its
own cells only.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from hrinet.core.io import read_volume
from hrinet.core.preview import coronal
from hrinet.core.volume import Volume, cast_like
from hrinet.evaluation.evaluate import evaluate_volume
from hrinet.learned.inference import load_interpolator
from hrinet.core.constants import CLASSICAL_METHODS, QUALITIES
from hrinet.methods import engine
from hrinet.methods.ensemble import with_quality
from hrinet.training.augment import apply_kernel, apply_noise, circle_mask
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py
from stress_reuse import Reuse, code_id, volume_id, weights_id, write_settings

VOLUMES = ["chest-lungfcp-1mm.nrrd", "head-ge-1p25mm.nrrd"]
CLASSICAL = list(CLASSICAL_METHODS)
FACTORS = (2, 4, 6, 8, 12)
#: Field-of-view circle radius as a fraction of the slice (cuts through a chest or abdomen).
FOV_RADIUS = 0.36
CONDITIONS = ("scanned", "fov-2000", "fov-3024", "noise-20", "noise-40", "bone-kernel",
              "bone-kernel-2")


def stressed(volume: Volume, condition: str, seed: int = 0) -> Volume:
    """``volume`` as a scanner under ``condition`` would have given it (the truth included)."""
    a = volume.array.astype(np.float32)
    if condition == "scanned":
        return volume
    if condition.startswith("fov"):
        out = volume.array.copy()
        out[:, circle_mask(a.shape[1:], (0.5, 0.5, FOV_RADIUS))] = -float(condition.split("-")[1])
        return volume.with_array(out)
    if condition.startswith("noise"):
        a = apply_noise(a, float(condition.split("-")[1]), np.random.default_rng(seed))
    elif condition.startswith("bone-kernel"):  # "bone-kernel" (amount 1) or "bone-kernel-<amount>"
        a = apply_kernel(a, float(condition[len("bone-kernel-"):] or 1.0))
    else:
        raise SystemExit(f"unknown condition {condition!r}; choose from {', '.join(CONDITIONS)}")
    return volume.with_array(cast_like(a, volume.array.dtype))


def central(volume: Volume, slices: int, crop: int = 0) -> Volume:
    """The central ``slices`` slices of ``volume`` (all of them if it has fewer, or for 0), each
    cut to its central ``crop`` x ``crop`` pixels (0: whole)."""
    n, h, w = volume.array.shape
    if (not slices or n <= slices) and not crop:
        return volume
    lo = (n - slices) // 2 if slices and n > slices else 0
    y = max((h - crop) // 2, 0) if crop else 0
    x = max((w - crop) // 2, 0) if crop else 0
    return volume.with_array(volume.array[lo:lo + (slices or n), y:y + (crop or h),
                                          x:x + (crop or w)].copy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volumes", nargs="*", help="thin volumes (default: the validation volumes)")
    p.add_argument("--weights", nargs="*", default=[], metavar="NAME=FILE",
                   help="more models to score beside the shipped default, e.g. new=w.safetensors")
    p.add_argument("--no-default", action="store_true", help="leave the shipped default out")
    p.add_argument("--factors", default=",".join(map(str, FACTORS)))
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--quality", choices=QUALITIES, default="standard",
                   help="run every learned model at this --quality (high: four mirrored views "
                        "averaged, the opt-in setting's stress table)")
    p.add_argument("--slices", type=int, default=49, help="central slices used (default 49)")
    p.add_argument("--out", default="out/stress")
    p.add_argument("--no-padding-guard", action="store_true", help="measure without the "
                   "engine's padding guard (padding shown to the methods as it is), to see what "
                   "the guard is worth")
    p.add_argument("--figure", help="also draw a coronal reformat of the first volume as "
                   "scanned at the largest factor (truth, linear, each model) into this PNG")
    p.add_argument("--reuse", help="an earlier run's stress.csv: the cells it measured as this "
                   "run would (settings, code, weights and voxels the same, by its settings.json: "
                   "stress_reuse.py) are copied, not measured again (default: measure all)")
    p.add_argument("--reuse-as", default="", metavar="OLD=NEW,...", help="with --reuse, also "
                   "take these models' cells renamed, on your word that OLD's weights are NEW's "
                   "(e.g. new=hrinet: an earlier candidate shipped since; default: none)")
    args = p.parse_args()
    if args.reuse and args.figure:
        raise SystemExit("--figure needs every output: leave --reuse out to draw it")
    if args.no_padding_guard:
        engine.find_padding = lambda array: None
    paths = [Path(v) for v in args.volumes] or [SHARED_CT / v for v in VOLUMES]
    models = {} if args.no_default else {"hrinet": load_interpolator(None, device="cpu", precision="fp32")}
    for item in args.weights:
        name, _, path = item.partition("=")
        models[name] = load_interpolator(path, device="cpu", precision="fp32")
    models = {name: with_quality(m, args.quality) for name, m in models.items()}
    weights = {"hrinet": None} if not args.no_default else {}
    weights.update(item.partition("=")[::2] for item in args.weights)
    settings = {"slices": args.slices, "quality": args.quality, "precision": "fp32",
                "padding_guard": not args.no_padding_guard, "code": code_id(),
                "weights": {name: weights_id(path) for name, path in weights.items()}}
    reuse = Reuse(Path(args.reuse) if args.reuse else None, args.reuse_as, settings)
    methods = CLASSICAL + list(models)
    factors = [int(f) for f in args.factors.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, voxels = [], {}
    for path in paths:
        base = central(read_volume(path), args.slices)
        voxels[path.name] = volume_id(base)
        for cond in args.conditions.split(","):
            vol = stressed(base, cond)
            usable = [k for k in factors if (vol.array.shape[0] - 1) // k >= 1]
            t0 = time.time()
            kept = {}
            keep = None
            if args.figure and cond == "scanned" and path == paths[0]:
                keep = lambda k, m, a: kept.__setitem__(m, a) if k == max(usable) else None  # noqa: E731
            copied, copies = reuse.cells(path.name, voxels[path.name], cond, usable, methods)
            rows += copies
            todo = [m for m in methods if m not in copied]
            for r in evaluate_volume(vol, path.name, usable, todo, device="cpu",
                                     interpolators=dict(models), keep=keep) if todo else ():
                rows.append(dict(volume=path.name, condition=cond, factor=r.factor,
                                 method=r.method, psnr_hu=r.psnr_hu, ssim_win=r.ssim_win))
            print(f"{path.name} {cond}: {time.time() - t0:.0f} s"
                  + (f" ({', '.join(copied)} from {args.reuse})" if copied else ""), flush=True)
            if kept:
                coronal_figure(vol, max(usable), kept, ["linear"] + list(models), args.figure)
            write_rows(rows, out / "stress.csv")  # a run stopped early keeps what it measured
            write_settings(out, settings, voxels, reuse.unverified, out / "stress.csv")
    table, losses = report(rows, list(models))
    (out / "stress.md").write_text(table + "\n\n" + "\n".join(losses) + "\n")
    (out / "summary.md").write_text("\n\n".join(summary(rows, m) for m in models) + "\n")
    print(table)
    print("\n".join(losses) or "no cell below the best classical method")


def write_rows(rows, path: Path) -> None:
    """Every cell measured so far, replacing the file whole (written beside it, then moved)."""
    part = path.with_name(path.name + ".part")
    with open(part, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    part.replace(path)


def coronal_figure(volume: Volume, k: int, outputs: dict, methods, path) -> None:
    """Coronal reformats through the volume's centre: the truth and each method at factor k,
    in the lung window (-1350 to 150 HU) and at the true aspect ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = outputs["linear"].shape[0]
    y = volume.array.shape[1] // 2
    # the last slice on top, as the preview and Slicer show z (hrinet.core.preview.coronal)
    panels = [("truth", coronal(volume.array[:n], y))] + [(m, coronal(outputs[m], y))
                                                           for m in methods]
    sx, _, sz = volume.spacing
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2 * n * sz / (
        volume.array.shape[2] * sx) + 0.6))
    for ax, (name, img) in zip(axes, panels):
        ax.imshow(img, cmap="gray", vmin=-1350, vmax=150, aspect=sz / sx, origin="upper")
        ax.set_title(name if name == "truth" else f"{name}, x{k}", fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: The methods a learned model must match in SSIM_win (flow is a bar in PSNR_HU only).
SSIM_BAR = ("linear", "cubic")


def margins(cell: dict, model: str) -> tuple:
    """``model``'s PSNR_HU margin over the best classical method and its SSIM_win margin over
    the best of :data:`SSIM_BAR`, in one cell (rows by method)."""
    return (cell[model]["psnr_hu"] - max(cell[c]["psnr_hu"] for c in CLASSICAL),
            cell[model]["ssim_win"] - max(cell[c]["ssim_win"] for c in SSIM_BAR))


def report(rows, learned):
    """The markdown table (PSNR_HU / SSIM_win per method) and the list of losing cells."""
    cells = {}
    for r in rows:
        cells.setdefault((r["volume"], r["condition"], r["factor"]), {})[r["method"]] = r
    head = "| volume | condition | x | " + " | ".join(
        CLASSICAL + learned + [f"{m} - best" for m in learned]) + " |"
    lines = [head, "|" + "---|" * (3 + len(CLASSICAL) + 2 * len(learned))]
    losses = []
    for (vol, cond, k), m in cells.items():
        row = [vol, cond, str(k)] + [f"{m[c]['psnr_hu']:.2f} / {m[c]['ssim_win']:.3f}"
                                     for c in CLASSICAL + learned]
        for name in learned:
            dp, ds = margins(m, name)
            lost = dp < 0 or ds < 0
            row.append(("**" if lost else "") + f"{dp:+.2f} / {ds:+.4f}" + ("**" if lost else ""))
            if lost:
                losses.append(f"- {name} loses at {vol} {cond} x{k}: PSNR_HU {dp:+.2f} dB vs "
                              f"the best classical, SSIM_win {ds:+.4f} vs the best of linear/cubic")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines), losses


def summary(rows, model: str) -> str:
    """The README's table for ``model``: per volume and condition, its PSNR_HU gain over the best
    classical method at each factor and its lowest SSIM_win margin over linear and cubic (in
    bold, with its factor, when below zero)."""
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["volume"], r["condition"]), {}).setdefault(r["factor"], {})[
            r["method"]] = r
    factors = sorted({r["factor"] for r in rows})
    lines = [f"| volume | condition ({model}) | PSNR_HU gain, "
             + " / ".join(f"x{k}" for k in factors) + " | SSIM_win margin (lowest) |",
             "|---|---|---|---|"]
    for (vol, cond), by_k in cells.items():
        gains, lows = [], []
        for k in factors:
            m = by_k.get(k)
            if m is None:
                gains.append("-")
                continue
            dp, ds = margins(m, model)
            gains.append(f"{dp:+.2f}")
            lows.append((ds, k))
        low, k = min(lows)
        margin = f"**{low:+.4f}** (x{k})" if low < 0 else f"{low:+.4f}"
        lines.append(f"| {Path(vol).stem} | {cond} | {' / '.join(gains)} | {margin} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
