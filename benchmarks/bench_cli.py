"""Wall time of ``hrinet info`` and of the command's start (``hrinet --help``), fresh processes.

``info`` builds the whole command-line parser and reads a volume's header and voxels; it must
answer in well under a second because it imports no learned code (no torch). Prints the median
and the min-max range of ``--repeats`` runs (after one untimed run) for a 256^2 x 40 phantom and,
if given, a real volume:

    python benchmarks/bench_cli.py [VOLUME ...] [--repeats 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Timing, add_json_option, timed, write_json  # benchmarks/common.py


def wall(cmd, repeats: int) -> Timing:
    """Wall time of ``cmd`` in fresh processes (one untimed run first: the file cache)."""
    return timed(lambda: subprocess.run(cmd, capture_output=True, check=True), repeats, warmup=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("volumes", nargs="*")
    p.add_argument("--repeats", type=int, default=5)
    add_json_option(p)
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
        print(f"{'command':<44} {'median wall s':>13} {'min-max s':>11}")
        record = []
        for label, cmd in rows:
            t = wall(cmd, a.repeats)
            print(f"{label:<44} {t.median_s:>13.2f} {t.range_text():>11}")
            record.append({"command": label, "wall": t})
    write_json(a.json, {"repeats": a.repeats, "rows": record})


if __name__ == "__main__":
    main()
