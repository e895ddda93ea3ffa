"""``hrinet evaluate --out``: an earlier evaluation is replaced only once a new one is complete,
and only the files an evaluation wrote (recorded with their sha256) are replaced or removed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import cli, one_line_error
from hrinet.core.io import write_volume
from hrinet.core.phantom import make_phantom


def _tree(folder) -> dict:
    """Every file under ``folder`` (relative name -> sha256 of its bytes)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- evaluate --overwrite: replaced only on success, and only what evaluate wrote ------------

def _evaluate(src, out, *extra):
    return cli("evaluate", src, "--methods", "linear", "--factors", "2", "--out", out, *extra)


@pytest.fixture
def evaluated(tmp_path):
    """A thin phantom and a finished evaluation of it in ``ev`` (linear at x2)."""
    src = write_volume(make_phantom(size=(48, 48, 25), spacing=(3, 3, 1.5)),
                       tmp_path / "thin.nrrd")
    out = tmp_path / "ev"
    r = _evaluate(src, out)
    assert r.returncode == 0, r.stderr
    return src, out


def test_evaluate_stopped_midway_leaves_the_earlier_evaluation_whole(tmp_path, evaluated):
    _, out = evaluated
    big = write_volume(make_phantom(size=(160, 160, 121), spacing=(1, 1, 1)),
                       tmp_path / "big.nrrd")
    before = _tree(out)
    proc = subprocess.Popen([sys.executable, "-m", "hrinet.cli", "evaluate", str(big),
                             "--methods", "linear,cubic,flow", "--factors", "2,3,4,5,6",
                             "--out", str(out), "--overwrite"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # the work starts once this line is out
            if line.startswith("evaluating"):
                break
        time.sleep(1.5)
        assert proc.poll() is None, "the evaluation ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
    assert proc.returncode == 143, rest
    assert _tree(out) == before  # the earlier tables and figures, as they were
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_evaluate_overwrite_replaces_only_the_files_an_earlier_evaluation_wrote(tmp_path,
                                                                                evaluated):
    src, out = evaluated
    (out / "notes.txt").write_text("my notes")
    (out / "figure-mine-x2.png").write_bytes(b"my own figure")
    r = _evaluate(src, out, "--factors", "4", "--overwrite")  # the last --factors counts
    assert r.returncode == 0, r.stderr
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "figure-mine-x2.png").read_bytes() == b"my own figure"
    assert not (out / "figure-thin-x2.png").exists() and (out / "figure-thin-x4.png").exists()
    record = json.loads((out / "provenance.json").read_text())
    assert set(record["outputs"]) == {"metrics.csv", "metrics.md", "sharpness.csv",
                                      "figure-thin-x4.png"}
    for name, digest in record["outputs"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("name", ["metrics.csv", "figure-thin-x2.png", "provenance.json"])
def test_evaluate_refuses_even_with_overwrite_a_file_it_did_not_write(tmp_path, name):
    src = write_volume(make_phantom(size=(48, 48, 25), spacing=(3, 3, 1.5)),
                       tmp_path / "thin.nrrd")
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("the user's own")
    r = _evaluate(src, out, "--overwrite")
    one_line_error(r, f"holds {name}, which hrinet evaluate did not write")
    assert [p.name for p in out.iterdir()] == [name]
    assert (out / name).read_text() == "the user's own"


def test_evaluate_refuses_a_table_of_its_own_that_was_changed_since(evaluated):
    src, out = evaluated
    (out / "metrics.md").write_text("my edited table")
    r = _evaluate(src, out, "--overwrite")
    one_line_error(r, "holds metrics.md, was changed since hrinet evaluate wrote it")
    assert (out / "metrics.md").read_text() == "my edited table"


def test_an_evaluation_recorded_before_its_files_were_listed_is_replaced_by_name(evaluated):
    """provenance.json without ``outputs`` (older versions): its tables and the figures of the
    volumes and factors it names are its own; other figures stay."""
    src, out = evaluated
    record = json.loads((out / "provenance.json").read_text())
    del record["outputs"]
    (out / "provenance.json").write_text(json.dumps(record))
    (out / "figure-other-x2.png").write_bytes(b"not named by the record")
    r = _evaluate(src, out, "--factors", "4")
    one_line_error(r, "--overwrite")
    r = _evaluate(src, out, "--factors", "4", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert not (out / "figure-thin-x2.png").exists()
    assert (out / "figure-other-x2.png").read_bytes() == b"not named by the record"


def test_a_stop_while_the_results_are_moved_in_waits_until_they_are_all_in(evaluated,
                                                                          monkeypatch, capsys):
    import hrinet.cli.evaluate as ev
    from hrinet.cli import main

    src, out = evaluated
    move = ev._move_into_place

    def stopped_while_moving(work, dest, earlier):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives between the moves
        move(work, dest, earlier)

    monkeypatch.setattr(ev, "_move_into_place", stopped_while_moving)
    assert main(["evaluate", str(src), "--methods", "linear", "--factors", "4", "--out",
                 str(out), "--overwrite"]) == 143
    assert "stopped (SIGTERM) once the results were complete" in capsys.readouterr().err
    record = json.loads((out / "provenance.json").read_text())
    assert record["factors"] == [4] and not (out / "figure-thin-x2.png").exists()
    for name, digest in record["outputs"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
