"""benchmarks/stress_rule.py, the stress clauses of a ship rule: a candidate that keeps every
cell the default wins and its mean margins passes; a cell lost in either metric, a mean under
the default's, a NaN fail; a table that cannot decide says so (exit 2), never a pass."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "stress_rule.py"
CLASSICAL = {"linear": (40.0, 0.90), "cubic": (40.5, 0.91), "flow": (41.0, 0.89)}


def _table(path: Path, models: dict, factors=(2, 4)) -> Path:
    """A stress table: one volume, two conditions, ``models`` as {name: (psnr, ssim)} in every
    cell (a callable of the cell for values that differ), beside fixed classical methods."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["volume", "condition", "factor", "method", "psnr_hu", "ssim_win"])
        for cond in ("scanned", "noise-20"):
            for k in factors:
                for name, value in {**CLASSICAL, **models}.items():
                    value = value(cond, k) if callable(value) else value
                    if value is not None:
                        w.writerow(["a.nrrd", cond, k, name, *value])
    return path


def _judge(path: Path, *more):
    r = subprocess.run([sys.executable, str(SCRIPT), str(path), *more], capture_output=True,
                       text=True, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout


def test_a_candidate_as_good_as_the_default_everywhere_passes(tmp_path):
    code, out = _judge(_table(tmp_path / "s.csv", {"hrinet": (42.0, 0.93), "new": (42.0, 0.93)}))
    assert code == 0 and "4 cells with both new and hrinet" in out, out


@pytest.mark.parametrize("new, why", [
    ((42.0, 0.905), "(a) cells lost that hrinet wins: 4 -> fails"),  # SSIM_win alone lost
    ((41.5, 0.93), "(b) factors whose mean margin is more than 0.02 dB under hrinet's: x2, x4"),
    ((float("nan"), 0.93), "(a) cells lost that hrinet wins: 4 -> fails"),
])
def test_a_cell_lost_in_either_metric_or_a_lower_mean_fails(tmp_path, new, why):
    code, out = _judge(_table(tmp_path / "s.csv", {"hrinet": (42.0, 0.93), "new": new}))
    assert code == 1 and why in out, out


def test_a_cell_the_default_loses_too_is_no_new_loss(tmp_path):
    both = {"hrinet": (42.0, 0.905), "new": (42.0, 0.905)}  # both under cubic's SSIM_win
    code, out = _judge(_table(tmp_path / "s.csv", both))
    assert code == 0 and "which loses it too" in out, out


@pytest.mark.parametrize("models, more", [
    ({"hrinet": (42.0, 0.93), "new": (42.0, 0.93)}, ["--candidate", "New"]),  # a misspelt name
    ({"hrinet": (42.0, 0.93), "new": lambda c, k: None if k == 4 else (42.0, 0.93)}, []),
    ({}, []),
])
def test_a_table_that_cannot_decide_says_so_and_never_passes(tmp_path, models, more):
    code, out = _judge(_table(tmp_path / "s.csv", models), *more)
    assert code == 2 and "undecided" in out, out
