"""Validation curves of training runs: the model's PSNR_HU on each validation volume against the
iteration, from each run's ``val.jsonl`` (written every ``--val-every`` steps), with linear
interpolation's as a dashed reference; and whether the last validations still improve.

    python benchmarks/plot_curves.py RUN [RUN ...] --out docs/figures/validation-curves.png

A run has reached its plateau here when its last ``--window`` validations improve the mean PSNR_HU
over the validation volumes by less than ``--tolerance`` dB in all (printed per run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List

from hrinet.core.io.atomic import atomic_write, complete_png


def read_curve(run: Path) -> List[dict]:
    """The validations of ``run`` in step order (a resumed run may repeat a step: last wins)."""
    by_step: Dict[int, dict] = {}
    for line in (run / "val.jsonl").read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            by_step[int(d["step"])] = d
    return [by_step[s] for s in sorted(by_step)]


def series(curve: List[dict], method: str = "model") -> Dict[str, List[tuple]]:
    """``{volume/xk: [(step, psnr_hu), ...]}`` for ``method`` (``model`` or ``linear``)."""
    out: Dict[str, List[tuple]] = {}
    for d in curve:
        for key, value in d.items():
            if key.endswith(f"/{method}_psnr_hu"):
                out.setdefault(key[: -len(f"/{method}_psnr_hu")], []).append((d["step"], value))
    return out


def plateau(curve: List[dict], window: int = 2, tolerance: float = 0.1) -> str:
    """Whether the mean model PSNR_HU rose by less than ``tolerance`` dB over the last
    ``window`` validations."""
    means = []
    for d in curve:
        vals = [v for k, v in d.items() if k.endswith("/model_psnr_hu")]
        if vals:
            means.append(sum(vals) / len(vals))
    if len(means) <= window:
        return f"{len(means)} validations: too few to tell"
    gain = max(means[-window:]) - max(means[:-window])
    state = "plateau" if gain < tolerance else "still improving"
    return (f"{state}: the last {window} validations {gain:+.2f} dB over the best before "
            f"(mean PSNR_HU {means[-1]:.2f} at step {curve[-1]['step']})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--window", type=int, default=2)
    p.add_argument("--tolerance", type=float, default=0.1)
    a = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4))
    for i, run in enumerate(a.runs):
        curve = read_curve(run)
        print(f"{run}: {plateau(curve, a.window, a.tolerance)}")
        colour = f"C{i}"
        for j, (key, pts) in enumerate(series(curve).items()):
            s, v = zip(*pts)
            ax.plot(s, v, color=colour, marker="o", ms=3, ls="-" if j == 0 else ":",
                    label=f"{run.name}: {key}")
        if i == 0:
            for key, pts in series(curve, "linear").items():
                ax.axhline(pts[0][1], color="grey", ls="--", lw=0.8, label=f"linear: {key}")
    ax.set_xlabel("iteration (this run)")
    ax.set_ylabel("PSNR_HU (dB)")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("validation (central 25 slices, 256² crops)", fontsize=9)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(a.out, verify=complete_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
