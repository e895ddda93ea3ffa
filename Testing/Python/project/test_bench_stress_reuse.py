"""benchmarks/bench_stress.py --reuse: cells an earlier run measured with the same settings (and,
for a model, the same weights) are copied, not measured again, and come out as they went in;
other settings are refused, a model whose weights changed is measured again; --reuse-as takes
the named models renamed, and only the classical methods and those from a table of unknown
making."""

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


def _run(volume: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(volume), "--no-default",
                           "--factors", "2", "--conditions", "scanned,noise-20", "--slices", "9",
                           "--out", str(out), *extra], cwd=REPO / "benchmarks",
                          capture_output=True, text=True, timeout=600)


def _rows(path: Path) -> list:
    with open(path, newline="", encoding="utf-8") as f:
        return sorted(tuple(r.values()) for r in csv.DictReader(f))


@pytest.fixture
def volume(tmp_path):
    path = tmp_path / "phantom.nrrd"
    write_volume(make_phantom(size=(48, 48, 12), spacing=(1.0, 1.0, 2.0), noise=5), path)
    return path


def test_a_second_run_copies_every_cell_and_writes_the_same_table(volume, tmp_path):
    first = _run(volume, tmp_path / "a")
    assert first.returncode == 0, first.stderr
    second = _run(volume, tmp_path / "b", "--reuse", str(tmp_path / "a" / "stress.csv"))
    assert second.returncode == 0, second.stderr
    assert "(linear, cubic, flow from " in second.stdout
    assert _rows(tmp_path / "b" / "stress.csv") == _rows(tmp_path / "a" / "stress.csv")


def test_other_settings_are_refused(volume, tmp_path):
    assert _run(volume, tmp_path / "a").returncode == 0
    other = _run(volume, tmp_path / "b", "--reuse", str(tmp_path / "a" / "stress.csv"),
                 "--quality", "high")
    assert other.returncode != 0 and "measure again instead" in other.stderr
    assert not (tmp_path / "b" / "stress.csv").exists()


def test_a_model_whose_weights_changed_is_measured_again(volume, tmp_path):
    shipped = REPO / "Resources" / "weights" / "hrinet-default.safetensors"
    other = REPO / "benchmarks" / "candidates" / "clean2.safetensors"
    assert _run(volume, tmp_path / "a", "--weights", f"m={shipped}").returncode == 0
    same = _run(volume, tmp_path / "b", "--weights", f"m={shipped}",
                "--reuse", str(tmp_path / "a" / "stress.csv"))
    assert "(linear, cubic, flow, m from " in same.stdout
    changed = _run(volume, tmp_path / "c", "--weights", f"m={other}",
                   "--reuse", str(tmp_path / "a" / "stress.csv"))
    assert changed.returncode == 0, changed.stderr
    assert "(linear, cubic, flow from " in changed.stdout
    taken = _run(volume, tmp_path / "d", "--weights", f"m={other}", "--reuse",
                 str(tmp_path / "a" / "stress.csv"), "--reuse-as", "m=m")
    assert taken.returncode != 0 and "other weights" in taken.stderr


def test_reuse_as_takes_the_classical_methods_and_the_named_ones_renamed(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_stress import reused

    table = tmp_path / "stress.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["volume", "condition", "factor", "method", "psnr_hu", "ssim_win"])
        for method, psnr in (("linear", 40), ("cubic", 41), ("flow", 42), ("hrinet", 43),
                             ("new", 44)):
            w.writerow(["a.nrrd", "scanned", 2, method, psnr, 0.9])
    settings = {"slices": 49, "quality": "standard", "padding_guard": True, "precision": "fp32",
                "weights": {"hrinet": "b" * 64}}
    # no settings.json: a table of unknown making gives the classical methods and what is named
    assert {key[3] for key in reused(table, "", settings)} == {"linear", "cubic", "flow"}
    rows = reused(table, "new=hrinet", settings)
    assert {key[3]: r["psnr_hu"] for key, r in rows.items()} == {
        "linear": 40.0, "cubic": 41.0, "flow": 42.0, "hrinet": 44.0}
    # its settings.json says which weights each model had: only the same are taken
    made = dict(settings, weights={"hrinet": "a" * 64, "new": "b" * 64})
    (tmp_path / "settings.json").write_text(json.dumps(made), encoding="utf-8")
    assert {key[3] for key in reused(table, "", settings)} == {"linear", "cubic", "flow"}
    assert {key[3] for key in reused(table, "new=hrinet", settings)} == {
        "linear", "cubic", "flow", "hrinet"}
