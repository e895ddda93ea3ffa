"""benchmarks/bench_stress.py --reuse (benchmarks/stress_reuse.py): a ship decision reads the
stress table cell by cell, so a cell is copied from an earlier table only where that run
measured it as this one would (settings, code, weights, voxels), and comes out as it went in;
everything else is measured again or refused in one line, never copied."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hrinet.core.io import write_volume
from hrinet.core.phantom import make_phantom

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "bench_stress.py"
SHIPPED = REPO / "Resources" / "weights" / "hrinet-default.safetensors"
OTHER = REPO / "benchmarks" / "candidates" / "clean2.safetensors"


def _run(volume: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(volume), "--no-default",
                           "--factors", "2", "--conditions", "scanned", "--slices", "9",
                           "--out", str(out), *extra], cwd=REPO / "benchmarks",
                          capture_output=True, text=True, timeout=600)


def _rows(path: Path) -> list:
    with open(path, newline="", encoding="utf-8") as f:
        return sorted(tuple(r.values()) for r in csv.DictReader(f))


def _phantom(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_volume(make_phantom(size=(48, 48, 12), spacing=(1.0, 1.0, 2.0), noise=5, seed=seed),
                 path)
    return path


@pytest.fixture
def volume(tmp_path):
    return _phantom(tmp_path / "phantom.nrrd")


@pytest.fixture
def earlier(volume, tmp_path):
    """A table with the classical methods and model ``m`` (the shipped weights)."""
    done = _run(volume, tmp_path / "a", "--weights", f"m={SHIPPED}")
    assert done.returncode == 0, done.stderr
    return tmp_path / "a" / "stress.csv"


def test_a_run_measured_alike_copies_every_cell_and_writes_the_same_table(volume, earlier,
                                                                           tmp_path):
    again = _run(volume, tmp_path / "b", "--weights", f"m={SHIPPED}", "--reuse", str(earlier))
    assert again.returncode == 0, again.stderr
    assert "(linear, cubic, flow, m from " in again.stdout
    assert _rows(tmp_path / "b" / "stress.csv") == _rows(earlier)


def test_a_model_with_other_weights_or_a_volume_with_other_voxels_is_measured_again(
        volume, earlier, tmp_path):
    other = _run(volume, tmp_path / "b", "--weights", f"m={OTHER}", "--reuse", str(earlier))
    assert other.returncode == 0 and "(linear, cubic, flow from " in other.stdout
    namesake = _phantom(tmp_path / "elsewhere" / "phantom.nrrd", seed=7)
    moved = _run(namesake, tmp_path / "c", "--weights", f"m={SHIPPED}", "--reuse", str(earlier))
    assert moved.returncode == 0 and " from " not in moved.stdout
    assert _rows(tmp_path / "c" / "stress.csv") != _rows(earlier)


@pytest.mark.parametrize("extra, says", [
    (("--quality", "high"), "measured with other quality"),
    (("--reuse-as", "m=linear"), "the classical methods keep their names"),
    (("--reuse-as", "m"), "give OLD=NEW"),
    (("--reuse-as", "x=m"), "has no model x"),
])
def test_other_settings_and_unsound_renames_are_refused_in_one_line(volume, earlier, tmp_path,
                                                                   extra, says):
    refused = _run(volume, tmp_path / "b", "--weights", f"m={OTHER}", "--reuse", str(earlier),
                   *extra)
    assert refused.returncode != 0 and says in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert not (tmp_path / "b" / "stress.csv").exists()


def test_a_rename_against_known_other_weights_is_refused(volume, earlier, tmp_path):
    refused = _run(volume, tmp_path / "b", "--weights", f"n={OTHER}", "--reuse", str(earlier),
                   "--reuse-as", "m=n")
    assert refused.returncode != 0 and "other weights" in refused.stderr


def test_settings_that_do_not_describe_the_table_beside_them_are_refused(volume, earlier,
                                                                        tmp_path):
    """A run stopped before its first cells leaves an older table beside newer settings."""
    with open(earlier, "a", encoding="utf-8") as f:
        f.write("phantom.nrrd,scanned,4,m,99,0.99\n")
    refused = _run(volume, tmp_path / "b", "--weights", f"m={SHIPPED}", "--reuse", str(earlier))
    assert refused.returncode != 0 and "does not describe" in refused.stderr


def test_a_missing_table_is_one_line(volume, tmp_path):
    refused = _run(volume, tmp_path / "b", "--reuse", str(tmp_path / "none.csv"))
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1


def test_a_table_of_unknown_making_gives_the_classical_methods_and_what_is_named_on_your_word(
        volume, earlier, tmp_path):
    (earlier.parent / "settings.json").unlink()
    plain = _run(volume, tmp_path / "b", "--weights", f"m={SHIPPED}", "--reuse", str(earlier))
    assert "settings.json is missing" in plain.stdout
    assert "(linear, cubic, flow from " in plain.stdout
    named = _run(volume, tmp_path / "c", "--weights", f"n={SHIPPED}", "--reuse", str(earlier),
                 "--reuse-as", "m=n")
    assert "(linear, cubic, flow, n from " in named.stdout
    record = json.loads((tmp_path / "c" / "settings.json").read_text(encoding="utf-8"))
    assert record["unverified"] == ["cubic", "flow", "linear", "n"]
    # a later run does not take n by its weights alone: it was never measured with them
    later = _run(volume, tmp_path / "d", "--weights", f"n={SHIPPED}",
                 "--reuse", str(tmp_path / "c" / "stress.csv"))
    assert "(linear, cubic, flow from " in later.stdout
