"""What bf16 costs the default model, cell by cell: the rule ``--precision auto`` follows.

    python benchmarks/bench_precision.py [--methods hrinet] [--crop 256 --slices 49]
        [--protocols decimate]

Scores the method in fp32 and in bf16 on the validation volumes with both protocols of the
README's results (decimated x2-x8, slab x2-x6), and prints each cell's PSNR_HU and SSIM_win in
both and the difference. ``auto`` picks bf16 for a model only if no cell loses more than
``hrinet.learned.precision.AUTO_TOLERANCE_DB``. Where bf16 is only emulated (many times slower,
the same rounding) ``--crop`` and ``--slices`` score a central block of each volume instead.
"""

from __future__ import annotations

import argparse

from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import evaluate_volume
from hrinet.learned.precision import AUTO_TOLERANCE_DB
from hrinet.methods import create_interpolator
from bench_stress import central  # benchmarks/bench_stress.py
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

VOLUMES = ("chest-lungfcp-1mm.nrrd", "head-ge-1p25mm.nrrd")
PROTOCOLS = (("decimate", (2, 4, 6, 8)), ("slab", (2, 4, 6)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="hrinet")
    p.add_argument("--crop", type=int, default=0, help="central N x N pixels (0: whole slices)")
    p.add_argument("--slices", type=int, default=0, help="central N slices (0: all)")
    p.add_argument("--protocols", default="decimate,slab")
    a = p.parse_args()
    print("| volume | protocol | x | method | PSNR_HU fp32 | bf16 | difference | SSIM_win fp32 "
          "| bf16 |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for name in VOLUMES:
        volume = central(read_volume(SHARED_CT / name), a.slices, a.crop)
        for protocol, factors in PROTOCOLS:
            if protocol not in a.protocols.split(","):
                continue
            rows = {}
            for precision in ("fp32", "bf16"):
                interps = {m: create_interpolator(m, device="cpu", precision=precision)
                           for m in a.methods.split(",")}
                for r in evaluate_volume(volume, name, factors, list(interps), protocol=protocol,
                                         interpolators=interps):
                    rows[(r.factor, r.method, precision)] = r
            for k in factors:
                for m in a.methods.split(","):
                    f, b = rows[(k, m, "fp32")], rows[(k, m, "bf16")]
                    worst = min(worst, b.psnr_hu - f.psnr_hu)
                    print(f"| {name} | {protocol} | {k} | {m} | {f.psnr_hu:.4f} | "
                          f"{b.psnr_hu:.4f} | {b.psnr_hu - f.psnr_hu:+.4f} | {f.ssim_win:.4f} | "
                          f"{b.ssim_win:.4f} |")
    verdict = "within" if -worst < AUTO_TOLERANCE_DB else "beyond"
    print(f"\nlargest loss {-worst:.4f} dB: {verdict} the {AUTO_TOLERANCE_DB} dB auto accepts")


if __name__ == "__main__":
    main()
