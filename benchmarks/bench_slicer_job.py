"""The Slicer path's cost against the command line, on the same volume.

    python benchmarks/bench_slicer_job.py [VOLUME] [--factor K] [--repeats 1] [--json PATH]

Times ``hrinet interpolate VOLUME OUT`` as a user runs it, then the panel's interpolation job
(``HRINetSlicerLib.jobs.InterpolationJob``: the node exported, the same command in a background
process, the result read back into a new node) on that volume as a node of a real MRML scene
(the PyPI ``slicer-core`` library, as the tests use it). Prints both (the median of
``--repeats`` runs, with the min-max range when there are several) and the overhead.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import add_json_option, timed, write_json  # benchmarks/common.py
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "HRINetSlicer"))

import slicer  # noqa: E402  (slicer-core: the MRML library)
from hrinet.core.io import read_volume  # noqa: E402
from hrinet.core.model_options import ModelOptions  # noqa: E402
from HRINetSlicerLib.jobs import InterpolationJob  # noqa: E402
from HRINetSlicerLib.mrml import node_from_volume  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volume", nargs="?", default=str(SHARED_CT / "chest-lungdx-8mm.nrrd"))
    p.add_argument("--factor", type=int, help="default: isotropic, as the panel's default")
    p.add_argument("--repeats", type=int, default=1, help="runs of each (median)")
    add_json_option(p)
    a = p.parse_args()
    extra = ["--factor", str(a.factor)] if a.factor else []
    with tempfile.TemporaryDirectory() as tmp:
        cli_t = timed(lambda: subprocess.run(
            [str(Path(sys.executable).with_name("hrinet")), "interpolate", a.volume,
             str(Path(tmp) / "cli.nrrd"), "--overwrite", *extra], check=True,
            capture_output=True), a.repeats)
    scene = slicer.vtkMRMLScene()
    node = node_from_volume(read_volume(a.volume), "input", scene)

    def panel_job():
        job = InterpolationJob(node, ModelOptions(factor=a.factor))
        job.start()
        while job.running():
            time.sleep(0.05)
        return job.finish()

    panel_t = timed(panel_job, a.repeats)
    cli, panel = cli_t.median_s, panel_t.median_s
    dims = panel_t.value.GetImageData().GetDimensions()
    print(f"{Path(a.volume).name} -> {dims[0]} x {dims[1]} x {dims[2]}")
    print(f"command line     {cli:6.1f} s{_range(cli_t)}")
    print(f"Slicer job       {panel:6.1f} s  (+{100 * (panel / cli - 1):.0f}%: export, "
          f"process, read back, new node){_range(panel_t)}")
    write_json(a.json, {"volume": a.volume, "factor": a.factor, "repeats": a.repeats,
                        "command_line": cli_t, "slicer_job": panel_t,
                        "overhead": panel / cli - 1, "output_dims": list(dims)})


def _range(t) -> str:
    return f"  [min-max {t.range_text('.1f')} s]" if len(t.runs) > 1 else ""


if __name__ == "__main__":
    main()
