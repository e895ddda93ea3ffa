"""Cohort throughput: cases per hour of ``hrinet batch`` on this machine, as a user runs it.

    python benchmarks/bench_batch.py [--copies 1] [--json PATH]

Two cohorts of the shared CT, each case a fresh copy in a temporary folder: the real 8 mm chest
made isotropic (x12, 319 synthesised 512^2 slices) and the thin 1 mm chest at x4 (291), with the
shipped default on the CPU. Prints the seconds each case took (from results.csv) and cases/hour.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import add_json_option, timed, write_json  # benchmarks/common.py
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

COHORTS = [("chest-lungdx-8mm.nrrd", []), ("chest-lungfcp-1mm.nrrd", ["--factor", "4"])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--copies", type=int, default=1, help="cases per cohort (copies of the volume)")
    add_json_option(p)
    args = p.parse_args()
    hrinet = Path(sys.executable).with_name("hrinet")
    print("cohort                        cases  wall s  s/case  cases/hour")
    rows = []
    for name, extra in COHORTS:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "in"
            src.mkdir()
            for i in range(args.copies):
                shutil.copyfile(SHARED_CT / name, src / f"{i:02d}-{name}")
            wall = timed(lambda: subprocess.run(
                [str(hrinet), "batch", str(src), "--out", str(Path(tmp) / "out"), "--device",
                 "cpu", *extra], check=True, capture_output=True)).median_s
            with open(Path(tmp) / "out" / "results.csv", newline="") as f:
                seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
        per = sum(seconds) / len(seconds)
        print(f"{name + ' ' + ' '.join(extra):29s} {len(seconds):5d} {wall:7.1f} {per:7.1f} "
              f"{3600 * len(seconds) / wall:11.0f}")
        rows.append({"cohort": name, "options": extra, "cases": len(seconds), "wall_s": wall,
                     "case_s": seconds, "cases_per_hour": 3600 * len(seconds) / wall})
    write_json(args.json, {"copies": args.copies, "rows": rows})


if __name__ == "__main__":
    main()
