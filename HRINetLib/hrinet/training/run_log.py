"""What a training run writes as it goes, beside its checkpoints: ``log.csv`` (every step's
losses), ``progress.json`` (the latest step, for the Slicer panel) and ``loss.png``."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import List

import numpy as np

from hrinet.core.io.atomic import atomic_write, complete_png, write_text

#: Columns of ``log.csv``.
LOG_FIELDS = ["step", "phase", "loss_g", "content", "loss_d1", "loss_d2", "seconds"]


class RunLog:
    """The run folder ``out``'s logs; only rank 0 of a distributed run writes."""

    def __init__(self, out: Path, rank: int = 0, title: str = "training losses"):
        self.out, self.rank, self.title = Path(out), rank, title

    @property
    def path(self) -> Path:
        return self.out / "log.csv"

    def truncate(self, step: int) -> None:
        """Drop rows past ``step`` (the checkpoint's) so a resumed run's log has no
        duplicates."""
        if self.rank != 0 or not self.path.is_file():
            return
        with open(self.path) as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)

    def append(self, rows: List[dict]) -> None:
        if self.rank != 0 or not rows:
            return
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, LOG_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerows(rows)

    def progress(self, info: dict) -> None:
        """``progress.json``: ``info`` and the time it was written."""
        if self.rank == 0:
            write_text(self.out / "progress.json", json.dumps({**info, "time": time.time()}))

    def plot(self) -> None:
        """``loss.png``: each loss per step, with a running mean over the step-to-step noise."""
        if self.rank != 0 or not self.path.is_file():
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with open(self.path) as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return
        fig, ax = plt.subplots(figsize=(6, 3.5))
        positive = True
        for key in ("content", "loss_d1", "loss_d2"):
            pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
            if pts:
                s, v = zip(*pts)
                line, = ax.plot(s, v, lw=0.5, alpha=0.3)
                # step-to-step noise (one batch, a GAN's critics) hides the trend: a running mean
                w = max(1, min(50, len(v) // 10))
                smooth = np.convolve(v, np.ones(w) / w, mode="valid")
                ax.plot(s[w - 1:], smooth, color=line.get_color(), lw=1.2,
                        label=f"{key} (mean of {w})" if w > 1 else key)
                positive = positive and min(v) > 0
        if positive:  # a log-MSE loss (--log-mse) is negative: plotted as it is
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.legend()
        ax.set_title(self.title)
        fig.tight_layout()
        with atomic_write(self.out / "loss.png", verify=complete_png, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
