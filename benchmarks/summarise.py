"""Print the README's compact results table from ``hrinet evaluate`` output.

    python benchmarks/summarise.py out/evaluate [more folders, merged in order]

For each factor and method: PSNR_HU on each volume, the gain over the best classical method
(linear, cubic and flow, those evaluated), SSIM_win and the sharpness ratio (mean over volumes).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from hrinet.core.constants import (
    CLASSICAL_METHODS as CLASSICAL,  # what a learned model must beat
)


def main() -> None:
    rows, sharp = [], {}
    for folder in map(Path, sys.argv[1:] or ["out/evaluate"]):
        with open(folder / "metrics.csv") as f:
            rows += list(csv.DictReader(f))
        if (folder / "sharpness.csv").is_file():
            with open(folder / "sharpness.csv") as f:
                sharp.update({(r["volume"], r["factor"], r["method"]): float(r["grad_ratio"])
                              for r in csv.DictReader(f)})
    volumes = list(dict.fromkeys(r["volume"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = {(r["volume"], r["factor"], r["method"]): r for r in rows}
    head = " | ".join(f"PSNR_HU {v}" for v in volumes)
    print(f"| factor | method | {head} | gain over best classical (dB) | SSIM_win (mean) | "
          "sharpness (mean) |")
    print("|---" * (len(volumes) + 5) + "|")
    for k in dict.fromkeys(r["factor"] for r in rows):
        for m in methods:
            if not all((v, k, m) in by for v in volumes):
                continue
            psnr = [float(by[(v, k, m)]["psnr_hu"]) for v in volumes]
            best = [max(float(by[(v, k, c)]["psnr_hu"]) for c in CLASSICAL if (v, k, c) in by)
                    for v in volumes]
            gain = " / ".join(f"{p - b:+.2f}" for p, b in zip(psnr, best))
            ssim = sum(float(by[(v, k, m)]["ssim_win"]) for v in volumes) / len(volumes)
            sh = [sharp.get((v, k, m)) for v in volumes]
            sh_text = f"{sum(sh) / len(sh):.2f}" if all(x is not None for x in sh) else "-"
            cells = " | ".join(f"{p:.2f}" for p in psnr)
            print(f"| x{k} | {m} | {cells} | {gain} | {ssim:.4f} | {sh_text} |")


if __name__ == "__main__":
    main()
