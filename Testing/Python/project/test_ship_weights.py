"""benchmarks/tools/ship_weights.py, what goes into a shipped sidecar's evaluation: a cell scored
in two metrics files is kept once when they agree and refused when they differ; only the
recipe's validation series count as the model's measured quality."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))  # the benchmarks package, as benchmarks/ship_weights.py does
from benchmarks.tools.ship_weights import _read, _validation_rows  # noqa: E402

FIELDS = ["volume", "factor", "method", "psnr_hu", "ssim_win"]


def _metrics(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        w.writerows(rows)
    return path


def test_a_cell_scored_alike_in_two_files_is_kept_once(tmp_path):
    a = _metrics(tmp_path / "a.csv", [["chest", "2", "hrinet", "50.8", "0.97"],
                                      ["head", "2", "hrinet", "38.8", "0.94"]])
    b = _metrics(tmp_path / "b.csv", [["chest", "2", "hrinet", "50.8", "0.97"],
                                      ["liver", "2", "hrinet", "41.5", "0.91"]])
    assert [(r["volume"], r["psnr_hu"]) for r in _read([a, b])] == [
        ("chest", "50.8"), ("head", "38.8"), ("liver", "41.5")]


def test_a_cell_scored_differently_in_two_files_is_refused(tmp_path):
    standard = _metrics(tmp_path / "standard.csv", [["chest", "2", "hrinet", "50.80", "0.97"]])
    high = _metrics(tmp_path / "high.csv", [["chest", "2", "hrinet", "50.91", "0.97"]])
    with pytest.raises(SystemExit, match="differently"):
        _read([standard, high])


def test_only_validation_series_of_the_method_reach_the_sidecar(capsys):
    rows = [{"volume": v, "factor": "4", "method": m, "psnr_hu": "40"}
            for v in ("chest-lungfcp-1mm", "head-ge-1p25mm", "abdomen-2mm-dicom")
            for m in ("hrinet", "flow")]
    kept = _validation_rows(rows, "hrinet", {"chest-lungfcp-1mm", "liver-crlm1004-5mm"})
    assert [(r["volume"], r["method"]) for r in kept] == [("chest-lungfcp-1mm", "hrinet")]
    assert "abdomen-2mm-dicom, head-ge-1p25mm left out" in capsys.readouterr().out
