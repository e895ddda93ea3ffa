"""Throughput and peak memory of each interpolation method (a benchmark, not a test).

Prints synthesised slices per second, the peak resident memory and the system-time share (with
page faults) of a fresh process that upsamples a phantom by x4, for each method at 256^2 and
512^2, with the allocator setting that the ``hrinet`` command applies
(:func:`hrinet.core.runtime.tune_allocator`) and, with ``--allocator both``, also without it (the C
library's default: every large buffer mapped and unmapped per call). Each measurement runs in its
own process so peak memory is that method's alone. (The ``hrinet`` command applies the setting
only where a network runs: these rows show why.) For learned methods it also prints the network's
FLOPs per synthesised slice (torch's FLOP counter) and the achieved rate as a fraction of this
CPU's fp32 matmul peak, measured in the same run (a 2048^2 matmul on the same threads). With
``--repeats N`` each upsampling is timed N times in its process: the figures are at the median,
with the min-max range of the seconds (system share and faults per run).

    python benchmarks/bench_engine.py [--slices 21] [--factor 4] [--methods linear,...,hrinet@bf16]
        [--allocator tuned|default|both] [--repeats 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

from common import add_json_option, timed, write_json  # benchmarks/common.py
from hrinet.core.constants import CLASSICAL_METHODS
from hrinet.core.runtime import ALLOCATOR_ENV, tune_allocator


def measure(method: str, size: int, slices: int, factor: int, device: str,
            repeats: int = 1) -> dict:
    from hrinet.core.phantom import make_phantom
    from hrinet.methods import create_interpolator
    from hrinet.methods.engine import upsample_z

    name, _, precision = method.partition("@")  # "hrinet@bf16": the learned method in bf16
    vol = make_phantom(size=(size, size, slices), spacing=(300 / size, 300 / size, 4.0), seed=0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    interp = create_interpolator(name, device=device, precision=precision or "auto")
    upsample_z(vol.with_array(vol.array[:3].copy()), factor=factor,
               interpolator=interp)  # warm-up: model load, kernels
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = timed(lambda: upsample_z(vol, factor=factor, interpolator=interp), repeats)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    seconds = t.median_s
    synthesised = (slices - 1) * (factor - 1)
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    gpu_mb = None
    if str(device).startswith("cuda"):
        import torch

        gpu_mb = torch.cuda.max_memory_allocated() / 2**20
    return {"method": method, "size": size, "slices_per_s": t.rate(synthesised),
            "gpu_peak_mb": gpu_mb, "seconds": seconds, "timing": t.as_dict(),
            "range_s": t.range_text(), "peak_rss_mb": r1.ru_maxrss / 1024,
            "input_mb": vol.array.nbytes / 2**20, "sys_share": system / max(user + system, 1e-9),
            "faults": (r1.ru_minflt - r0.ru_minflt) // repeats,
            "rss_before_mb": base / 1024, "gflop_per_slice": network_gflop(name, size)}


def network_gflop(method: str, size: int):
    """The learned network's GFLOP for one synthesised ``size``^2 slice (None if classical)."""
    if method in CLASSICAL_METHODS:
        return None
    import torch
    from hrinet.learned.inference import load_interpolator
    from hrinet.learned.models import Generator
    from torch.utils.flop_counter import FlopCounterMode

    interp = load_interpolator(None if method == "hrinet" else _weights(method), device="cpu")
    m = interp.model
    x = torch.zeros(1, 1, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if isinstance(m, Generator):  # two encodes (shared between a pair's slices) + a decode
            z = m.encode(torch.cat([x, x]))
            m.decode(m.mix([c[:1] for c in z], [c[1:] for c in z], torch.ones(1)))
        else:
            plain = 2 + int(m.cfg.spline)  # linear, Keys' cubic (and the 6-slice spline)
            m(torch.zeros(1, 4, size, size), torch.zeros(1, plain, size, size),
              torch.ones(1) / 2, torch.zeros(1), torch.full((1,), 2.0))
    return counter.get_total_flops() / 1e9


def _weights(method: str) -> str:
    from hrinet.core.models.shipped import find_weights, variant_weights_name

    return str(find_weights(variant_weights_name(method)))


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This CPU's measured fp32 matmul rate on torch's current threads (GFLOP/s)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    return timed(lambda: a @ b, repeats, warmup=1).rate(2 * n ** 3) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--slices", type=int, default=21)
    p.add_argument("--factor", type=int, default=4)
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--methods", default="linear,cubic,flow,hrinet@fp32,hrinet@bf16",
                   help="methods to time; NAME@PRECISION runs a learned one in fp32, bf16 or "
                   "(CUDA) fp16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--allocator", default="both", choices=("tuned", "default", "both"),
                   help="allocator setting(s) to measure (see hrinet.core.runtime)")
    p.add_argument("--repeats", type=int, default=1,
                   help="timed upsamplings per measurement (the median is printed)")
    add_json_option(p)
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        if os.environ.get(ALLOCATOR_ENV) != "default":
            tune_allocator()
        method, size = a.one.split(":")
        print(json.dumps(measure(method, int(size), a.slices, a.factor, a.device, a.repeats)))
        return
    import torch

    peak = matmul_peak_gflops()
    print(f"x{a.factor}, {a.slices} input slices, device {a.device}, torch threads "
          f"{torch.get_num_threads()}, fp32 matmul peak {peak:.0f} GFLOP/s")
    print(f"{'method':<12} {'size':>5} {'allocator':>9} {'slices/s':>9} {'seconds':>8} "
          f"{'min-max s':>11} {'peak RSS MB':>12} {'sys share':>9} {'faults':>8} "
          f"{'GFLOP/slice':>12} {'of peak':>8}")
    rows = []
    allocators = ("default", "tuned") if a.allocator == "both" else (a.allocator,)
    for size in map(int, a.sizes.split(",")):
        for method in a.methods.split(","):
            for alloc in allocators:
                env = dict(os.environ, **{ALLOCATOR_ENV: alloc})
                r = subprocess.run([sys.executable, __file__, "--one", f"{method}:{size}",
                                    "--slices", str(a.slices), "--factor", str(a.factor),
                                    "--device", a.device, "--repeats", str(a.repeats)],
                                   capture_output=True, text=True, env=env)
                if r.returncode:
                    print(f"{method:<12} {size:>5} failed: {r.stderr.strip().splitlines()[-1]}")
                    continue
                m = json.loads(r.stdout.strip().splitlines()[-1])
                g = m["gflop_per_slice"]
                flops = (f"{g:>12.2f} {g * m['slices_per_s'] / peak:>8.0%}" if g is not None
                         else f"{'-':>12} {'-':>8}")
                gpu = f" GPU peak {m['gpu_peak_mb']:.0f} MB" if m["gpu_peak_mb"] else ""
                print(f"{method:<12} {size:>5} {alloc:>9} {m['slices_per_s']:>9.1f} "
                      f"{m['seconds']:>8.2f} {m['range_s']:>11} {m['peak_rss_mb']:>12.0f} "
                      f"{m['sys_share']:>9.1%} {m['faults']:>8} {flops}{gpu}")
                rows.append(dict(m, allocator=alloc))
    write_json(a.json, {"slices": a.slices, "factor": a.factor, "device": a.device,
                        "repeats": a.repeats, "matmul_peak_gflops": peak, "rows": rows})


if __name__ == "__main__":
    main()
