"""Wall, CPU and system time, page faults and peak memory of one ``hrinet interpolate`` run.

Runs the command exactly as a user would (a fresh process, read, interpolate, write), once with
the C library's default allocator settings and once with the setting the ``hrinet`` command
applies (:func:`hrinet.core.runtime.tune_allocator`). The README's speed section quotes it for the
8 mm chest made isotropic (x12, 319 synthesised 512^2 slices). With ``--repeats N`` each setting
runs N times: the wall time is the median, with its min-max range; CPU time and faults per run.

    python benchmarks/bench_volume.py ../shared/data/ct/chest-lungdx-8mm.nrrd [--method hrinet]
        [--repeats 1] [--json PATH] [-- more interpolate options, e.g. --thickness 8]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from common import add_json_option, timed, write_json  # benchmarks/common.py
from hrinet.core.constants import CLASSICAL_METHODS
from hrinet.core.runtime import ALLOCATOR_ENV


def run_once(volume: str, method: str, allocator: str, extra, repeats: int = 1) -> dict:
    """``repeats`` runs of ``hrinet interpolate``, each in a child process; their resource usage
    alone (wall time: the median; CPU time and faults: per run)."""
    hrinet = Path(sys.executable).with_name("hrinet")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(hrinet), "interpolate", volume, str(Path(tmp) / "out.nrrd"),
               "--method", method, "--overwrite", *extra]
        env = dict(os.environ, **{ALLOCATOR_ENV: allocator})

        def one():
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit("hrinet interpolate failed: "
                                 f"{proc.stderr.strip().splitlines()[-1]}")
            return proc

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = timed(one, repeats)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"wall": t.median_s, "timing": t.as_dict(), "range_s": t.range_text(".1f"),
            "user": user / repeats, "sys": system / repeats,
            "faults": (after.ru_minflt - before.ru_minflt) // repeats,
            "peak_mb": after.ru_maxrss / 1024, "plan": t.value.stderr.strip().splitlines()[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("volume")
    p.add_argument("--method", default="hrinet")
    p.add_argument("--allocator", default="both", choices=("tuned", "default", "both"))
    p.add_argument("--repeats", type=int, default=1, help="runs per setting (median wall time)")
    add_json_option(p)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    a = p.parse_args(argv[:cut])
    a.extra = argv[cut + 1:]  # more interpolate options, after --
    extra = list(a.extra) + ["--device", "cpu"] if a.method not in CLASSICAL_METHODS \
        else list(a.extra)
    print(f"{'allocator':>9} {'wall s':>7} {'min-max s':>11} {'user s':>7} {'sys s':>6} "
          f"{'sys share':>9} {'faults':>8} {'peak MB':>8}")
    rows = []
    for alloc in (("default", "tuned") if a.allocator == "both" else (a.allocator,)):
        r = run_once(a.volume, a.method, alloc, extra, a.repeats)
        share = r["sys"] / max(r["user"] + r["sys"], 1e-9)
        print(f"{alloc:>9} {r['wall']:>7.1f} {r['range_s']:>11} {r['user']:>7.1f} "
              f"{r['sys']:>6.1f} {share:>9.1%} {r['faults']:>8} {r['peak_mb']:>8.0f}")
        rows.append(dict(r, allocator=alloc, sys_share=share))
    print(r["plan"])
    write_json(a.json, {"volume": a.volume, "method": a.method, "repeats": a.repeats,
                        "rows": rows})


if __name__ == "__main__":
    main()
