"""GPU inference figures for the README's speed table, run on a lent GPU machine in one call.

1. ``bench_engine.py --device cuda``: the default at 512^2 (x4 of a phantom) in fp32, bf16 and
   fp16: synthesised slices per second and peak GPU memory, beside flow (CPU-bound) for scale;
2. the real 8 mm chest made isotropic (x12, ``--volume``: packed by ``pack_training_data.py``,
   since the GPU machine has no SimpleITK) with the default in each precision: seconds and the
   GPU's utilisation sampled by ``nvidia-smi`` while it runs.

``--dry-run`` does the same on this CPU at toy sizes (the test suite does, so the script cannot
rot between leases).

Usage (GPU machine): python benchmarks/gpu/bench_gpu.py --volume .gpu/chest8 [--device cuda]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "HRINetLib"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PRECISIONS_GPU = ("fp32", "bf16", "fp16")


def utilisation_sampler(samples: list, stop: threading.Event) -> None:
    """Append the GPU's utilisation (percent) every 0.2 s until ``stop`` (nvidia-smi)."""
    while not stop.is_set():
        try:
            r = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                "--format=csv,noheader,nounits"], capture_output=True,
                               text=True, timeout=5)
            samples.append(float(r.stdout.split()[0]))
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return
        stop.wait(0.2)


def whole_volume(folder: Path, device: str, precisions, factor: int) -> None:
    """Time the default on each packed volume in ``folder`` made ``factor`` times finer."""
    from hrinet.methods import create_interpolator
    from hrinet.methods.engine import upsample_z
    from pack_training_data import unpack

    for name, vol in zip(*unpack(folder)):
        for precision in precisions:
            interp = create_interpolator("hrinet", device=device, precision=precision)
            upsample_z(vol.with_array(vol.array[:3].copy()), factor=factor, interpolator=interp)
            samples, stop = [], threading.Event()
            sampler = threading.Thread(target=utilisation_sampler, args=(samples, stop))
            sampler.start()
            start = time.perf_counter()
            out = upsample_z(vol, factor=factor, interpolator=interp)
            seconds = time.perf_counter() - start
            stop.set()
            sampler.join()
            util = f", GPU busy {sum(samples) / len(samples):.0f}% on average" if samples else ""
            print(f"{name} x{factor} {vol.array.shape} -> {out.array.shape[0]} slices, "
                  f"{precision}: {seconds:.1f} s{util}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--volume", help="folder of packed volumes (pack_training_data.py)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--factor", type=int, default=12)
    p.add_argument("--dry-run", action="store_true", help="toy sizes on a CPU (the tests)")
    a = p.parse_args()
    device = "cpu" if a.dry_run else a.device
    precisions = ("fp32", "bf16") if a.dry_run else PRECISIONS_GPU
    size, slices = ("64", "5") if a.dry_run else ("512", "21")
    methods = ",".join(["flow"] + [f"hrinet@{q}" for q in precisions])
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_engine.py"),
                        "--device", device, "--sizes", size, "--slices", slices,
                        "--methods", methods, "--allocator", "tuned"])
    if r.returncode:
        sys.exit(r.returncode)
    if a.volume:
        whole_volume(Path(a.volume), device, precisions, 2 if a.dry_run else a.factor)


if __name__ == "__main__":
    main()
