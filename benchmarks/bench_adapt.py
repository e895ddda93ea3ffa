"""Does "Adapt to this case" help? The validation volumes decimated x4 and x6 are adapted to
(``hrinet adapt``'s code, default settings), then interpolated back with the weights the guard
kept, and scored against the thin truth like ``hrinet evaluate`` (a benchmark, not a test).

    python benchmarks/bench_adapt.py [--iterations 200] [--out runs/bench-adapt] [--json PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import add_json_option, timed, write_json  # benchmarks/common.py
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import decimate, synthesised_mask
from hrinet.evaluation.metrics import score
from hrinet.methods.engine import upsample_z
from hrinet.training.adapt import adapt
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

VOLUMES = ("chest-lungfcp-1mm.nrrd", "head-ge-1p25mm.nrrd")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=str(SHARED_CT))
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--out", default="runs/bench-adapt")
    add_json_option(p)
    a = p.parse_args()
    print("| case | default PSNR_HU | after adaptation | change | kept | held-out start / adapted "
          "| seconds |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name in VOLUMES:
        thin = read_volume(Path(a.data) / name)
        for k in (4, 6):
            thick = decimate(thin, k)
            n_out = (thick.array.shape[0] - 1) * k + 1
            mask = synthesised_mask(n_out, k)
            truth = thin.array[:n_out][mask]

            def psnr(weights=None):
                up = upsample_z(thick, factor=k, method="hrinet", weights=weights, device="cpu",
                                precision="fp32", thickness=0)
                return score(up.array[mask], truth).psnr_hu

            case = f"{name.split('.')[0]} x{k}"
            base = psnr()
            try:
                t = timed(lambda: adapt(thick, Path(a.out) / case.replace(" ", "-"),
                                        iterations=a.iterations, device="cpu", case=case,
                                        log=None))
            except HRINetError as exc:
                print(f"| {case} | {base:.2f} | - | - | - | not adapted: {exc} | - |")
                rows.append({"case": case, "default_psnr_hu": base, "not_adapted": str(exc)})
                continue
            r, seconds = t.value, t.median_s
            after = psnr(r.weights)
            print(f"| {case} | {base:.2f} | {after:.2f} | {after - base:+.2f} | {r.kept} | "
                  f"{r.default_psnr_hu:.2f} / {r.adapted_psnr_hu:.2f} | {seconds:.0f} |",
                  flush=True)
            rows.append({"case": case, "default_psnr_hu": base, "adapted_psnr_hu": after,
                         "kept": r.kept, "held_out": [r.default_psnr_hu, r.adapted_psnr_hu],
                         "seconds": seconds})
    write_json(a.json, {"iterations": a.iterations, "rows": rows})


if __name__ == "__main__":
    main()
