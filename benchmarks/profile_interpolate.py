"""Where the seconds of ``hrinet interpolate`` go, phase by phase, as a user runs it.

    python benchmarks/profile_interpolate.py [VOLUME] [--precision fp32|bf16|auto] [-- ARGS]

Runs the command in this process (default: the 8 mm chest of the shared CT made isotropic, the
default model) with timers around each phase: reading the volume, loading the model, the
optical flows, the motion features, the network, and writing the result. The flows and
features are built on a second thread while the network runs (``MotionInterpolator``), so
their times overlap the network's; the table shows each phase's own time and the wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import hrinet.cli.app as app
import hrinet.core.io as io
import hrinet.learned.motion as motion
import hrinet.methods.flow as flow
from hrinet.cli import main as hrinet_main
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

SECONDS: dict = defaultdict(float)


def timed(phase: str, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SECONDS[phase] += time.perf_counter() - start
    return wrapper


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volume", nargs="?", default=str(SHARED_CT / "chest-lungdx-8mm.nrrd"))
    p.add_argument("--precision", default="fp32", help="fp32 (default), bf16 or auto")
    p.add_argument("extra", nargs="*", help="more hrinet interpolate options, after --")
    args = p.parse_args()
    io.read_volume = timed("read", io.read_volume)
    app.create_interpolator = timed("load model", app.create_interpolator)
    flow.estimate_flow = timed("flow (feature thread)", flow.estimate_flow)
    features = timed("features incl. flow (feature thread)", motion.motion_features)
    motion.motion_features = features
    io.write_volume = timed("write", io.write_volume)
    original_init = motion.MotionInterpolator.__init__

    def init(self, model, *a, **k):
        original_init(self, model, *a, **k)
        self.model = TimedModel(self.model)

    motion.MotionInterpolator.__init__ = init
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        status = hrinet_main(["interpolate", args.volume, str(Path(tmp) / "out.nrrd"),
                              "--precision", args.precision, *args.extra])
        wall = time.perf_counter() - start
    if status:
        sys.exit(status)
    own = dict(SECONDS)
    own["features (feature thread)"] = own.pop("features incl. flow (feature thread)", 0.0) - \
        own.get("flow (feature thread)", 0.0)
    print(f"\n{Path(args.volume).name}, precision {args.precision}: wall {wall:.1f} s")
    print("phase                              seconds  of wall")
    for phase in ("read", "load model", "flow (feature thread)", "features (feature thread)",
                  "network", "write"):
        print(f"{phase:34s} {own.get(phase, 0.0):7.1f}  {100 * own.get(phase, 0.0) / wall:5.0f}%")


class TimedModel:
    """The network, its calls timed (the engine calls it like the module)."""

    def __init__(self, model):
        self.model = model
        self.cfg = model.cfg

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.model(*args, **kwargs)
        finally:
            SECONDS["network"] += time.perf_counter() - start

    def __getattr__(self, name):
        return getattr(self.model, name)


if __name__ == "__main__":
    main()
