"""Throughput and peak memory of each interpolation method (a benchmark, not a test).

Prints synthesised slices per second and the peak resident memory of a fresh process that
upsamples a phantom by x4, for each method at 256^2 and 512^2. Each measurement runs in its own
process so peak memory is that method's alone.

    python benchmarks/bench_engine.py [--slices 21] [--factor 4] [--methods linear,cubic,hrinet]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(method: str, size: int, slices: int, factor: int, device: str) -> dict:
    from hrinet.engine import upsample_z
    from hrinet.phantom import make_phantom

    vol = make_phantom(size=(size, size, slices), spacing=(300 / size, 300 / size, 4.0), seed=0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    upsample_z(vol.with_array(vol.array[:3].copy()), factor=factor, method=method,
               device=device)  # warm-up: model load, kernels
    start = time.perf_counter()
    upsample_z(vol, factor=factor, method=method, device=device)
    seconds = time.perf_counter() - start
    synthesised = (slices - 1) * (factor - 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "size": size, "slices_per_s": synthesised / seconds,
            "seconds": seconds, "peak_rss_mb": peak / 1024, "input_mb": vol.array.nbytes / 2**20,
            "rss_before_mb": base / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--slices", type=int, default=21)
    p.add_argument("--factor", type=int, default=4)
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--methods", default="linear,cubic,hrinet")
    p.add_argument("--device", default="cpu")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        method, size = a.one.split(":")
        print(json.dumps(measure(method, int(size), a.slices, a.factor, a.device)))
        return
    import torch

    print(f"x{a.factor}, {a.slices} input slices, device {a.device}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"{'method':<8} {'size':>5} {'slices/s':>9} {'seconds':>8} {'peak RSS MB':>12} "
          f"{'input MB':>9}")
    for size in map(int, a.sizes.split(",")):
        for method in a.methods.split(","):
            r = subprocess.run([sys.executable, __file__, "--one", f"{method}:{size}",
                                "--slices", str(a.slices), "--factor", str(a.factor),
                                "--device", a.device], capture_output=True, text=True)
            if r.returncode:
                print(f"{method:<8} {size:>5} failed: {r.stderr.strip().splitlines()[-1]}")
                continue
            m = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{method:<8} {size:>5} {m['slices_per_s']:>9.1f} {m['seconds']:>8.2f} "
                  f"{m['peak_rss_mb']:>12.0f} {m['input_mb']:>9.1f}")


if __name__ == "__main__":
    main()
