"""Wall time of ``hrinet info`` and of the command's start (``hrinet --help``), fresh processes.

``info`` builds the whole command-line parser and reads a volume's header and voxels; it must
answer in well under a second because it imports no learned code (no torch). Prints the median
of ``--repeats`` runs for a 256^2 x 40 phantom and, if given, a real volume:

    python benchmarks/bench_cli.py [VOLUME ...] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("volumes", nargs="*")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    from hrinet.core.io import write_volume
    from hrinet.core.phantom import make_phantom

    hrinet = str(Path(sys.executable).with_name("hrinet"))
    with tempfile.TemporaryDirectory() as tmp:
        phantom = write_volume(make_phantom(size=(256, 256, 40), spacing=(1, 1, 4)),
                               Path(tmp) / "phantom.nrrd")
        rows = [("hrinet --help", [hrinet, "--help"]),
                ("hrinet info phantom 256x256x40", [hrinet, "info", str(phantom)])]
        rows += [(f"hrinet info {Path(v).name}", [hrinet, "info", v]) for v in a.volumes]
        print(f"{'command':<44} {'median wall s':>13}")
        for label, cmd in rows:
            print(f"{label:<44} {wall(cmd, a.repeats):>13.2f}")


if __name__ == "__main__":
    main()
