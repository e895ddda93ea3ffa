"""Slab input without ``--thickness`` against with it: what the thickness estimate costs.

For each validation series and factor, the series is made into a slab series as
``hrinet evaluate --protocol slab`` makes it (slab averages ``k`` slices wide on every ``k``-th
slice, :func:`hrinet.evaluation.evaluate.protocol_input`), its recorded thickness dropped (as
NRRD, NIfTI and MHA files lose it), and upsampled back by the default method twice: with the true
thickness (``--thickness``) and with the one the command line estimates
(:func:`hrinet.core.slab_estimate.estimate_slab`). Prints a markdown table of PSNR_HU (HU clipped
to [-1024, 3071], synthesised and restored slices alike, as ``evaluate`` scores them) of both and
their difference.

Usage: ``python benchmarks/bench_slab_estimate.py [--corpus /work/corpus] [--crop 256]``
(``--crop N``: the central N x N in-plane, for machines where the full slices are too slow).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "HRINetLib"))

from hrinet.core.io import read_volume  # noqa: E402
from hrinet.evaluation.evaluate import protocol_input  # noqa: E402
from hrinet.evaluation.metrics import psnr  # noqa: E402
from hrinet.methods.engine import upsample_z  # noqa: E402
from hrinet.methods.planning import plan_upsampling  # noqa: E402
from hrinet.methods.registry import create_interpolator  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "ct"


def validation_series(corpus: Path) -> list:
    """The validation split: the corpus's list, and the shared chest-lungfcp-1mm."""
    names = []
    try:
        out = subprocess.run([sys.executable, str(REPO / "benchmarks/data/build_corpus.py"),
                              "--out", str(corpus), "--list", "validation"],
                             capture_output=True, text=True, check=True).stdout
        names = [Path(line.strip()) for line in out.splitlines() if line.strip()]
    except subprocess.CalledProcessError:
        pass
    shared = SHARED / "chest-lungfcp-1mm.nrrd"
    if shared.exists() and all(p.name != shared.name for p in names):
        names.insert(0, shared)
    return [p for p in names if p.exists()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=Path("/work/corpus"))
    p.add_argument("--factors", default="2,4,6")
    p.add_argument("--method", default="hrinet")
    p.add_argument("--crop", type=int, default=0, help="central N x N in-plane (0: whole)")
    args = p.parse_args()
    interp = create_interpolator(args.method, device="cpu", precision="fp32")
    print("| series | x | true mm | estimated mm | PSNR_HU with --thickness | without | "
          "difference dB |\n|---|---|---|---|---|---|---|")
    for path in validation_series(args.corpus):
        volume = read_volume(path)
        if args.crop:
            _, ny, nx = volume.array.shape
            c = args.crop // 2
            volume = volume.with_array(np.ascontiguousarray(
                volume.array[:, max(0, ny // 2 - c):ny // 2 + c, max(0, nx // 2 - c):nx // 2 + c]))
        for k in (int(f) for f in args.factors.split(",")):
            if (volume.array.shape[0] - 1) // k < 1:
                continue
            thick, true_mm, mask = protocol_input(volume, k, "slab")
            thick.metadata.pop("slice_thickness_mm", None)  # lost, as in NRRD/NIfTI/MHA
            truth = volume.array[:len(mask)][mask]
            scores, t0 = {}, time.perf_counter()
            given = plan_upsampling(thick, factor=k, method=args.method, thickness=true_mm)
            found = plan_upsampling(thick, factor=k, method=args.method,
                                    estimate_thickness=True)
            for key, plan in (("given", given), ("estimated", found)):
                if key == "estimated" and (plan.thickness, plan.slab_ratio) == \
                        (given.thickness, given.slab_ratio):
                    scores[key] = scores["given"]  # the same plan runs the same (deterministic)
                    continue
                up = upsample_z(thick, plan=plan, interpolator=interp)
                scores[key] = psnr(up.array[mask], truth)
            est = f"{found.thickness:.2f}" if found.slab_ratio > 0 else "thin"
            print(f"| {path.stem} | {k} | {true_mm:.3g} | {est} | {scores['given']:.2f} | "
                  f"{scores['estimated']:.2f} | {scores['estimated'] - scores['given']:+.3f} |",
                  flush=True)
            print(f"  ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
