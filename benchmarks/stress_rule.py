"""A ship rule's stress clauses, read from a ``bench_stress.py`` table: a candidate against the
shipped default, cell by cell.

    python benchmarks/stress_rule.py out/candidate/stress/stress.csv [--candidate new]
        [--base hrinet] [--tolerance 0.02]

Prints, per factor, each model's mean PSNR_HU margin over the best classical method (linear,
cubic, flow) over the cells both were measured in; every cell the candidate loses (PSNR_HU or
SSIM_win, as ``bench_stress.py`` marks them) and whether the default wins it; and the two
clauses the rules in docs/results.md state: (a) no cell lost that the default wins (per
metric: PSNR_HU and SSIM_win each), (b) no factor's mean margin more than ``--tolerance`` dB
under the default's. Exit status 0 when both hold, 1 when not, 2 when the table cannot decide
(no cell, or cells missing a model or a classical method: a stopped run, a misspelt name).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from bench_stress import CLASSICAL, margins  # benchmarks/bench_stress.py: one definition


def cell_margins(cells: dict, model: str) -> dict:
    """``{(volume, condition, factor): (psnr margin, ssim margin)}`` of ``model`` over the best
    classical method (:func:`bench_stress.margins`), in every cell that holds it."""
    return {key: margins(m, model) for key, m in cells.items()
            if model in m and all(c in m for c in CLASSICAL)}


def read_cells(path: Path) -> dict:
    """``{(volume, condition, factor): {method: row}}`` from ``stress.csv``, the numbers as
    floats."""
    cells: dict = defaultdict(dict)
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            cells[(r["volume"], r["condition"], int(r["factor"]))][r["method"]] = {
                "psnr_hu": float(r["psnr_hu"]), "ssim_win": float(r["ssim_win"])}
    return cells


def judge(cells: dict, candidate: str, base: str, tolerance: float):
    """``(lines, verdict)``: the report, and 0 when clauses (a) and (b) hold, 1 when either
    fails, 2 when the table cannot decide (no cell, or a cell missing either model or a
    classical method: a typo in a name, a run stopped mid-volume). Clause (a) is read per
    metric: a cell where the default wins PSNR_HU (or SSIM_win) and the candidate does not is a
    cell lost. A NaN margin is a loss."""
    new, old = cell_margins(cells, candidate), cell_margins(cells, base)
    keys = sorted(set(new) & set(old))
    short = [k for k in cells if k not in keys]
    lines = [f"{len(keys)} cells with both {candidate} and {base}"]
    if short:
        lines.append(f"incomplete: {len(short)} cell(s) without {candidate}, {base} or a "
                     f"classical method, e.g. {' '.join(map(str, short[0]))}")
    by_factor = defaultdict(list)
    for key in keys:
        by_factor[key[2]].append(key)
    worse_mean = []
    for k, ks in sorted(by_factor.items()):
        a = sum(new[c][0] for c in ks) / len(ks)
        b = sum(old[c][0] for c in ks) / len(ks)
        lines.append(f"x{k}: {len(ks)} cells, mean PSNR_HU margin {candidate} {a:+.3f} dB, "
                     f"{base} {b:+.3f} dB ({a - b:+.3f})")
        if not a >= b - tolerance:  # NaN: worse
            worse_mean.append(k)
    newly_lost = []
    for key in keys:
        lost = [not m >= 0 for m in new[key]]  # NaN: lost
        won = [m >= 0 for m in old[key]]
        if any(lost):
            taken = [w and l for w, l in zip(won, lost)]  # per metric: PSNR_HU, SSIM_win
            (dp, ds), (bp, bs) = new[key], old[key]
            lines.append(f"{candidate} loses {' '.join(map(str, key))}: PSNR_HU {dp:+.2f}, "
                         f"SSIM_win {ds:+.4f} ({base} {bp:+.2f} / {bs:+.4f}"
                         f"{', which wins it' if any(taken) else ', which loses it too'})")
            if any(taken):
                newly_lost.append(key)
    lines.append(f"(a) cells lost that {base} wins: {len(newly_lost)} -> "
                 f"{'holds' if not newly_lost else 'fails'}")
    lines.append(f"(b) factors whose mean margin is more than {tolerance} dB under {base}'s: "
                 f"{', '.join(f'x{k}' for k in worse_mean) or 'none'} -> "
                 f"{'holds' if not worse_mean else 'fails'}")
    if not keys or short:
        lines.append("undecided: the table is incomplete (see above)")
        return lines, 2
    return lines, 0 if not newly_lost and not worse_mean else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stress", type=Path, help="a bench_stress.py stress.csv")
    p.add_argument("--candidate", default="new", help="the candidate's column (default new)")
    p.add_argument("--base", default="hrinet", help="the shipped default's column (default "
                   "hrinet)")
    p.add_argument("--tolerance", type=float, default=0.02, help="dB a factor's mean margin "
                   "may fall under the default's (default 0.02)")
    args = p.parse_args()
    lines, verdict = judge(read_cells(args.stress), args.candidate, args.base, args.tolerance)
    print("\n".join(lines))
    return verdict


if __name__ == "__main__":
    raise SystemExit(main())
