"""A sixth adversarial round on ``hrinet batch``, each finding now a specification: a results
table saved by a spreadsheet (with a byte-order mark) still resumes; a merge refuses a shard
still running, a shard table cut off or edited into a row of no known status, and options it
would ignore; a file of the user's where a case's output folder goes fails that case in one
line (not a bug report); 'strasse' and 'straße' are two outputs, NFC and NFD one; a manifest
reached through a link reads its inputs beside the real manifest; an output a manifest puts in
a DICOM series' folder does not make the series look changed; a bad ``HRINET_CHUNK_MB`` is one
line before any work."""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata

import pytest
from helpers import write_dicom_series
from hrinet.cli import main
from hrinet.core.lock import exclusive_lock


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hrinet: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _batch(source, out, *more) -> int:
    return main(["batch", str(source), "--out", str(out), "--method", "linear", "--factor", "2",
                 *map(str, more)])


def test_a_results_table_saved_with_a_byte_order_mark_still_resumes(cohort_folder, tmp_path,
                                                                    capsys):
    out = tmp_path / "out"
    assert _batch(cohort_folder, out) == 0
    table = out / "results.csv"
    table.write_text(table.read_text(encoding="utf-8"), encoding="utf-8-sig")
    capsys.readouterr()
    assert _batch(cohort_folder, out) == 0
    assert "0 done, 2 already done" in capsys.readouterr().out


@pytest.fixture
def shards(cohort_folder, tmp_path):
    out = tmp_path / "out"
    for shard in ("1/2", "2/2"):
        assert _batch(cohort_folder, out, "--shard", shard) == 0
    return out


def test_a_merge_refuses_a_shard_still_running(shards, capsys):
    with exclusive_lock(shards / ".results-shard-1-of-2.csv.lock", "busy"):
        assert main(["batch", str(shards), "--merge"]) == 2
        assert "shard 1 of 2 is still running" in _error(capsys)
        assert not (shards / "results.csv").exists()
        assert main(["batch", str(shards), "--merge", "--partial"]) == 0  # asked for


@pytest.mark.parametrize("keep", [0, 2])
def test_a_merge_refuses_a_shard_table_cut_off(shards, capsys, keep):
    table = max(shards.glob("results-shard-*.csv"), key=lambda t: t.stat().st_size)
    text = table.read_text(encoding="utf-8")
    end = text.rindex(",ok,") + keep  # the last row cut before its status, or inside it
    table.write_text(text[:end], encoding="utf-8")
    assert main(["batch", str(shards), "--merge"]) == 2
    assert f"{table.name} is damaged (line 3" in _error(capsys)  # its status, or fields missing
    assert not (shards / "results.csv").exists()


@pytest.mark.parametrize("extra", [["--out", "elsewhere"], ["--shard", "1/2"],
                                   ["--method", "cubic"], ["--format", "dicom"]])
def test_a_merge_refuses_the_options_it_would_ignore(shards, capsys, extra):
    assert main(["batch", str(shards), "--merge", *extra]) == 2
    assert f"{extra[0]} do(es) not apply" in _error(capsys)
    assert not (shards / "results.csv").exists()


def test_a_users_file_where_an_output_folder_goes_fails_that_case_in_one_line(tmp_path,
                                                                             make_volume,
                                                                             read_rows):
    make_volume(tmp_path / "in" / "g0" / "a.nrrd")
    make_volume(tmp_path / "in" / "b.nrrd", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "g0").write_text("mine")
    assert _batch(tmp_path / "in", out) == 1
    rows = {r["input"]: r for r in read_rows(out / "results.csv")}
    assert rows["b.nrrd"]["status"] == "ok" and rows["g0/a.nrrd"]["status"] == "failed"
    assert "g0 is a file there; move it" in rows["g0/a.nrrd"]["message"]
    assert "internal error" not in rows["g0/a.nrrd"]["message"]
    assert (out / "g0").read_text() == "mine"


def test_names_one_only_by_unicode_folding_are_two_outputs_and_nfc_nfd_one(tmp_path,
                                                                          make_volume, capsys):
    make_volume(tmp_path / "de" / "straße.nrrd")
    make_volume(tmp_path / "de" / "strasse.nrrd", 2)
    assert _batch(tmp_path / "de", tmp_path / "out-de") == 0
    cafe = "café.nrrd"
    make_volume(tmp_path / "fr" / unicodedata.normalize("NFC", cafe))
    make_volume(tmp_path / "fr" / unicodedata.normalize("NFD", cafe), 2)
    if len(os.listdir(tmp_path / "fr")) < 2:
        pytest.skip("this file system makes the two forms one name")
    capsys.readouterr()
    assert _batch(tmp_path / "fr", tmp_path / "out-fr") == 2
    assert "would both write" in _error(capsys)


def test_a_manifest_through_a_link_reads_inputs_beside_the_real_manifest(tmp_path, make_volume,
                                                                        read_rows):
    make_volume(tmp_path / "man" / "sub" / "b.nrrd")
    (tmp_path / "man" / "m.csv").write_text("input,output\nsub/b.nrrd,o/b.nrrd\n")
    (tmp_path / "lk").mkdir()
    (tmp_path / "lk" / "m.csv").symlink_to(tmp_path / "man" / "m.csv")
    make_volume(tmp_path / "lk" / "sub" / "b.nrrd", 7)  # another volume under the same name
    assert _batch(tmp_path / "man" / "m.csv", tmp_path / "res") == 0
    assert _batch(tmp_path / "lk" / "m.csv", tmp_path / "res") == 0
    (row,) = read_rows(tmp_path / "res" / "results.csv")
    assert row["output"].endswith(os.path.join("man", "o", "b.nrrd"))
    assert not (tmp_path / "lk" / "o").exists()


def test_an_output_beside_a_dicom_series_does_not_make_it_look_changed(tmp_path, capsys):
    write_dicom_series(tmp_path / "s1", [0.0, 3.0, 6.0, 9.0])
    (tmp_path / "m.csv").write_text("input,output\ns1,s1/out.nrrd\n")
    for _ in range(2):
        assert _batch(tmp_path / "m.csv", tmp_path / "res") == 0
    assert "0 done, 1 already done" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["abc", "0", "-5", "2.5"])
def test_a_bad_chunk_size_in_the_environment_is_one_line_before_any_work(tmp_path, value,
                                                                         make_volume):
    src = make_volume(tmp_path / "a.nrrd")
    env = dict(os.environ, HRINET_CHUNK_MB=value)
    run = subprocess.run([sys.executable, "-m", "hrinet.cli", "interpolate", str(src),
                          str(tmp_path / "o.nrrd"), "--method", "linear"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("hrinet: error: HRINET_CHUNK_MB=")
    assert not (tmp_path / "o.nrrd").exists()
