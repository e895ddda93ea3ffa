"""Timing shared by the ``bench_*.py`` scripts: one way to time, to report spread, and to record.

- :func:`timed` runs a callable ``warmup`` times untimed, then ``repeats`` times timed, and
  returns a :class:`Timing`: every run's seconds, their median and spread (min-max, IQR), and
  the last run's return value (a result the script still needs: a process, a job's node).
- :func:`commit` and :func:`environment` say what was measured on what: the checkout's git
  short hash (``-dirty`` with uncommitted changes to tracked files; ``unknown`` outside git),
  Python, torch (its version without importing it; its threads when it is already imported),
  the CPUs and the thread and allocator settings from the environment.
- :func:`add_json_option` gives a script ``--json PATH``; :func:`write_json` writes a record
  there with the commit, the environment and the time, so figures can be compared across
  commits and machines. Nothing is written without ``--json``.

The scripts import it as ``from common import ...`` (run as ``python benchmarks/bench_X.py``,
``benchmarks/`` is on ``sys.path``, as for ``shared_ct``); the tests may import
``benchmarks.common``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[1]
#: Settings from the environment that change what a timing means.
SETTINGS_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "HRINET_ALLOCATOR",
              "HRINET_CHUNK_MB")


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed run of one measurement (at least one)."""

    runs: tuple
    value: Any = None  # what the last run returned

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs)

    @property
    def min_s(self) -> float:
        return min(self.runs)

    @property
    def max_s(self) -> float:
        return max(self.runs)

    @property
    def iqr_s(self) -> float:
        """Interquartile range (0 with fewer than two runs)."""
        if len(self.runs) < 2:
            return 0.0
        q = statistics.quantiles(self.runs, n=4, method="inclusive")
        return q[2] - q[0]

    @property
    def spread(self) -> float:
        """Half the min-max range as a share of the median (0 for one run)."""
        return (self.max_s - self.min_s) / 2 / self.median_s if self.median_s > 0 else 0.0

    def rate(self, items: float = 1) -> float:
        """``items`` per second at the median."""
        return items / self.median_s if self.median_s > 0 else float("inf")

    def range_text(self, fmt: str = ".2f") -> str:
        """``min-max`` seconds, or ``-`` for a single run."""
        return f"{self.min_s:{fmt}}-{self.max_s:{fmt}}" if len(self.runs) > 1 else "-"

    def spread_text(self) -> str:
        """``±N%`` of the median (half the min-max range), or ``""`` for a single run."""
        return f"±{self.spread:.0%}" if len(self.runs) > 1 else ""

    def as_dict(self) -> dict:
        return {"median_s": self.median_s, "min_s": self.min_s, "max_s": self.max_s,
                "iqr_s": self.iqr_s, "runs_s": list(self.runs)}


def timed(fn: Callable[[], Any], repeats: int = 1, warmup: int = 0) -> Timing:
    """Call ``fn`` ``warmup`` times, then time ``repeats`` calls (``time.perf_counter``)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    for _ in range(warmup):
        fn()
    runs, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        runs.append(time.perf_counter() - start)
    return Timing(tuple(runs), value)


def commit(root: Path = REPO) -> str:
    """The checkout's short commit hash, ``-dirty`` when tracked files differ from it, or
    ``unknown`` (not a git checkout, no git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, check=True, capture_output=True, text=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head or "unknown"


def environment() -> dict:
    """What the figures were measured on. Never imports torch (seconds, and memory, a timing
    of a light process must not pay); its threads are given when the script imported it."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count()
    env = {"python": platform.python_version(), "platform": platform.platform(),
           "machine": platform.machine(), "cpu_count": os.cpu_count(), "cpus_usable": cpus,
           "settings_env": {k: os.environ[k] for k in SETTINGS_ENV if k in os.environ}}
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    elif importlib.util.find_spec("torch") is not None:
        env["torch"] = importlib.metadata.version("torch")
    return env


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", help="also write the figures, the commit and "
                        "the environment to PATH (JSON)")


def write_json(path: Optional[str], record: dict, script: Optional[str] = None) -> Optional[Path]:
    """Write ``record`` to ``path`` with the script's name, the commit, the environment and the
    time (UTC); nothing when ``path`` is None. Returns the path written."""
    if not path:
        return None
    out = Path(path)
    full = {"script": script or Path(sys.argv[0]).name, "commit": commit(),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "environment": environment(), **record}
    if out.parent != Path():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(full, indent=2, default=_plain) + "\n", encoding="utf-8")
    return out


def _plain(obj):
    if isinstance(obj, Timing):
        return obj.as_dict()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
