"""Does a gap filled in two steps err differently enough to average with one filled at once?

    python benchmarks/bench_probe_recursive.py VOLUME ... [--factors 4,6] [--slices 25]
        [--crop 256] [--save cells.npz]
    python benchmarks/bench_probe_recursive.py --load cells.npz ...
    python benchmarks/bench_probe_recursive.py VOLUME ... --sets did+dz+dx+dzx,did+rid+dz+rz

At an even factor ``k`` the default model can fill a gap directly (``k - 1`` slices between two
acquired ones) or in two steps: x2 first, then x``k/2`` between the acquired and the synthesised
slices. The two are different estimators of the same slices; if their errors are less alike than
those of the quality setting's mirrored views, averaging them gains more at the same cost (four
model passes). Members: each of the quality setting's four views (``id``, ``z``, ``x``, ``zx``:
``hrinet.methods.ensemble.VIEWS``), direct (``d``) and in two steps (``r``). Every set of up to
four members is scored exactly from the members' error and gradient products: its PSNR_HU and
``grad_ratio`` change against today's set (the four views, direct). Measurements, not a feature
(docs/results.md, "A gap filled in two steps").
"""

from __future__ import annotations

import itertools

import numpy as np
from bench_probe_views import (cell_name, central, checked, compare_sets, error_gram, label,
                               mean_psnr, probe_parser)
from hrinet.core.constants import HU_RANGE
from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import protocol_input
from hrinet.evaluation.metrics import gradient_energy
from hrinet.methods.engine import upsample_z
from hrinet.methods.ensemble import VIEWS, MirroredViews
from hrinet.methods.registry import create_interpolator


def gradient_gram(outs) -> np.ndarray:
    """Mean products of the members' in-plane neighbour differences (HU clipped, as
    ``gradient_energy``): the gradient energy of any mean of members follows from it."""
    clipped = [np.clip(o, *HU_RANGE) for o in outs]
    grads = [(np.diff(c, axis=-2).ravel(), np.diff(c, axis=-1).ravel()) for c in clipped]
    n = len(outs)
    gram = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            gram[i, j] = gram[j, i] = sum(
                float(np.dot(a.astype(np.float64), b)) / a.size
                for a, b in zip(grads[i], grads[j]))
    return gram


def members(inner, thick, k: int, thickness: float, wanted=None):
    """``{name: output}``: each view direct and, at an even ``k``, in two steps (those named in
    ``wanted``, if given)."""
    out = {}
    for view in VIEWS:
        interp = MirroredViews(inner, (view,))
        if wanted is None or f"d{label(view)}" in wanted:
            out[f"d{label(view)}"] = upsample_z(thick, factor=k, interpolator=interp,
                                                thickness=thickness).array
        if k % 2 == 0 and (wanted is None or f"r{label(view)}" in wanted):
            half = upsample_z(thick, factor=2, interpolator=interp, thickness=thickness)
            out[f"r{label(view)}"] = upsample_z(half, factor=k // 2, interpolator=interp).array
    return out


def main() -> None:
    ap = probe_parser(__doc__, 25, 256, "did+dz+dx+dzx,did+rid+dz+rz")
    ap.add_argument("--only", default=None, help="rank only the cells whose name ends with "
                    "this (e.g. ' x4')")
    args = checked(ap)
    if args.sets:
        return compare(args)
    cells = {}  # cell -> (names, error gram, gradient gram, truth's gradient energy)
    for f in args.load:
        with np.load(f, allow_pickle=False) as saved:
            for key in {n.rsplit("|", 1)[0] for n in saved.files}:
                cells[key] = (list(saved[key + "|names"]), saved[key + "|err"],
                              saved[key + "|grad"], float(saved[key + "|truth"]))
    inner = create_interpolator("hrinet", device="cpu", precision="fp32") if args.volumes \
        else None
    for path in args.volumes:
        vol = central(read_volume(path), args.slices, args.crop)
        for k in (int(f) for f in args.factors.split(",")):
            thick, thickness, mask = protocol_input(vol, k, "decimate")
            truth = vol.array[:len(mask)][mask]
            outs = {n: o[mask].astype(np.float32)
                    for n, o in members(inner, thick, k, thickness).items()}
            key = cell_name(path, k, cells)
            cells[key] = (list(outs), error_gram(list(outs.values()), truth),
                          gradient_gram(list(outs.values())), gradient_energy(truth))
            print(key + ": " + ", ".join(f"{n} {mean_psnr(cells[key][1], (i,)):.2f}"
                                         for i, n in enumerate(outs)), flush=True)
            if args.save:
                np.savez(args.save, **{f"{c}|{part}": v for c, (names, e, g, t) in cells.items()
                                       for part, v in (("names", np.array(names)), ("err", e),
                                                       ("grad", g), ("truth", t))})
    rank({c: v for c, v in cells.items() if args.only is None or c.endswith(args.only)})


def compare(args) -> None:
    """Each set of ``args.sets`` scored in full on each volume and factor."""
    inner = create_interpolator("hrinet", device="cpu", precision="fp32")
    compare_sets(args, lambda thick, k, thickness, names: members(inner, thick, k, thickness,
                                                                  names), "members")


def rank(cells: dict) -> None:
    """Every set of up to four members against today's set, over the cells that have them."""
    today = ("did", "dz", "dx", "dzx")
    rows = {}
    for names, err, grad, truth in cells.values():
        idx = {n: i for i, n in enumerate(names)}
        base = [idx[n] for n in today]
        p0 = mean_psnr(err, base)
        g0 = grad[np.ix_(base, base)].sum() / 16 / truth
        for size in range(1, 5):
            for combo in itertools.combinations(names, size):
                ii = [idx[n] for n in combo]
                g = grad[np.ix_(ii, ii)].sum() / size ** 2 / truth
                rows.setdefault(combo, []).append((mean_psnr(err, ii) - p0, g - g0))
    full = {c: v for c, v in rows.items() if len(v) == len(cells)}
    print(f"\nover {len(cells)} cells ({', '.join(cells)}): PSNR_HU and grad_ratio change "
          "against today's set (mean, worst)")
    ranked = sorted(full.items(), key=lambda kv: -np.mean([p for p, _ in kv[1]]))

    def line(combo, v):
        p, g = np.array(v).T
        return (f"{'+'.join(combo)}: PSNR {p.mean():+.3f} (worst {p.min():+.3f}), "
                f"grad_ratio {g.mean():+.4f} (worst {g.min():+.4f})")
    for combo, v in ranked[:12]:
        print("  " + line(combo, v))
    allowed = [(c, v) for c, v in ranked if np.mean([g for _, g in v]) >= 0
               and min(p for p, _ in v) >= -0.02]
    print("chosen by the rule (mean grad_ratio at or above today's, worst cell -0.02 dB at most):"
          f"\n  {line(*allowed[0]) if allowed else 'none'}")


if __name__ == "__main__":
    main()
