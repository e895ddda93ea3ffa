"""Wall, CPU and system time, page faults and peak memory of one ``hrinet interpolate`` run.

Runs the command exactly as a user would (a fresh process, read, interpolate, write), once with
the C library's default allocator settings and once with the setting the ``hrinet`` command
applies (:func:`hrinet.core.runtime.tune_allocator`). The README's speed section quotes it for the
8 mm chest made isotropic (x12, 319 synthesised 512^2 slices):

    python benchmarks/bench_volume.py ../shared/data/ct/chest-lungdx-8mm.nrrd [--method hrinet]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hrinet.core.constants import CLASSICAL_METHODS
from hrinet.core.runtime import ALLOCATOR_ENV


def run_once(volume: str, method: str, allocator: str, extra) -> dict:
    """One ``hrinet interpolate`` in a child process; its resource usage alone."""
    hrinet = Path(sys.executable).with_name("hrinet")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(hrinet), "interpolate", volume, str(Path(tmp) / "out.nrrd"),
               "--method", method, *extra]
        env = dict(os.environ, **{ALLOCATOR_ENV: allocator})
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"hrinet interpolate failed: {proc.stderr.strip().splitlines()[-1]}")
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"wall": wall, "user": user, "sys": system, "faults": after.ru_minflt - before.ru_minflt,
            "peak_mb": after.ru_maxrss / 1024, "plan": proc.stderr.strip().splitlines()[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("volume")
    p.add_argument("--method", default="hrinet")
    p.add_argument("--allocator", default="both", choices=("tuned", "default", "both"))
    p.add_argument("extra", nargs="*", help="more interpolate options, after --")
    a = p.parse_args()
    extra = list(a.extra) + ["--device", "cpu"] if a.method not in CLASSICAL_METHODS \
        else list(a.extra)
    print(f"{'allocator':>9} {'wall s':>7} {'user s':>7} {'sys s':>6} {'sys share':>9} "
          f"{'faults':>8} {'peak MB':>8}")
    for alloc in (("default", "tuned") if a.allocator == "both" else (a.allocator,)):
        r = run_once(a.volume, a.method, alloc, extra)
        share = r["sys"] / max(r["user"] + r["sys"], 1e-9)
        print(f"{alloc:>9} {r['wall']:>7.1f} {r['user']:>7.1f} {r['sys']:>6.1f} {share:>9.1%} "
              f"{r['faults']:>8} {r['peak_mb']:>8.0f}")
    print(r["plan"])


if __name__ == "__main__":
    main()
