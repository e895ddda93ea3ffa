"""A cohort never overwrites what it did not write, and says what happened to every case
(hrinet batch; issue 40's reliability round: the batch items)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_dicom_series
from hrinet.cli import main
from hrinet.cli.signals import Terminated
from hrinet.core import cohort
from hrinet.core.errors import HRINetError
from hrinet.core.io import write_volume
from hrinet.core.lock import exclusive_lock
from hrinet.core.phantom import make_phantom






def test_a_users_file_at_an_output_path_is_refused_on_every_run_not_only_the_first(cohort_folder,
                                                                                   tmp_path,
                                                                                   read_rows,
                                                                                   linear):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.nrrd").write_text("mine\n")
    for _ in range(2):
        assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 1
        assert (out / "a.nrrd").read_text() == "mine\n"
        row = {r["input"]: r for r in read_rows(out / "results.csv")}["a.nrrd"]
        assert row["status"] == "failed" and "not an output of this batch" in row["message"]


def test_a_manifest_whose_output_is_another_rows_input_is_refused_before_any_work(cohort_folder,
                                                                                  tmp_path, linear):
    manifest = tmp_path / "m.csv"
    manifest.write_text("input,output\nvol/a.nrrd,vol/b.nrrd\nvol/b.nrrd,vol/b-iso.nrrd\n")
    before = (cohort_folder / "b.nrrd").read_bytes()
    for _ in range(2):
        with pytest.raises(HRINetError, match="inputs are never overwritten"):
            main(["--debug", "batch", str(manifest), "--out", str(tmp_path / "log"), *linear])
    assert (cohort_folder / "b.nrrd").read_bytes() == before
    assert not (cohort_folder / "b-iso.nrrd").exists()


def test_one_input_twice_with_two_outputs_is_two_rows_and_a_users_file_stays(cohort_folder,
                                                                             tmp_path, read_rows,
                                                                             linear):
    manifest = tmp_path / "m.csv"
    manifest.write_text("input,output\nvol/b.nrrd,res/b-iso.nrrd\nvol/b.nrrd,res/report.nrrd\n")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "report.nrrd").write_text("the user's report")
    for _ in range(2):
        assert main(["batch", str(manifest), "--out", str(tmp_path / "log"), *linear]) == 1
        table = {Path(r["output"]).name: r for r in read_rows(tmp_path / "log" / "results.csv")}
        assert set(table) == {"b-iso.nrrd", "report.nrrd"}  # the failed row stays too
        assert table["b-iso.nrrd"]["status"] == "ok"
        assert table["report.nrrd"]["status"] == "failed"
    assert (tmp_path / "res" / "report.nrrd").read_text() == "the user's report"


def test_two_cases_that_would_write_one_file_are_refused_naming_both(tmp_path, make_volume, linear):
    root = tmp_path / "vol"
    make_volume(root / "scan.nrrd", 1)
    make_volume(root / "scan.nii.gz", 2)
    with pytest.raises(HRINetError, match="scan.nii.gz and scan.nrrd would both write"):
        main(["--debug", "batch", str(root), "--out", str(tmp_path / "out"), *linear])
    assert not (tmp_path / "out" / "scan.nrrd").exists()


def test_outputs_differing_only_in_letter_case_are_one_file_to_some_file_systems(tmp_path):
    cases = [cohort.Case("a", str(tmp_path / "Out.nrrd")), cohort.Case("b",
                                                                       str(tmp_path / "out.nrrd"))]
    with pytest.raises(HRINetError, match="would both write"):
        cohort.check_outputs(cases)


def test_two_dicom_series_alike_in_description_and_uid_tail_get_distinct_outputs(tmp_path):
    root = tmp_path / "study"
    root.mkdir()
    write_dicom_series(root / "ct", [0.0, 3.0, 6.0], uid="1.2.3.11112222", prefix="a",
                       description="AX")
    write_dicom_series(root / "ct", [0.0, 3.0, 6.0], uid="1.2.4.11112222", prefix="b",
                       description="AX")
    cases = cohort.find_cases(root, tmp_path / "out")
    assert len({c.output for c in cases}) == 2
    cohort.check_outputs(cases)


def test_a_rerun_with_other_options_redoes_the_cases_done_with_the_old_ones(cohort_folder, tmp_path,
                                                                            read_rows, linear):
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    first = (out / "a.nrrd").read_bytes()
    assert main(["batch", str(cohort_folder), "--out", str(out), "--factor", "2",
                 "--method", "cubic"]) == 0
    assert (out / "a.nrrd").read_bytes() != first
    assert {r["method"] for r in read_rows(out / "results.csv")} == {"cubic"}
    assert main(["batch", str(cohort_folder), "--out", str(out), "--factor", "3",
                 "--method", "cubic"]) == 0
    assert {r["factor"] for r in read_rows(out / "results.csv")} == {"3"}
    stamp = (out / "a.nrrd").stat().st_mtime_ns
    assert main(["batch", str(cohort_folder), "--out", str(out), "--factor", "3",
                 "--method", "cubic"]) == 0  # the same options: nothing to do
    assert (out / "a.nrrd").stat().st_mtime_ns == stamp


def test_a_file_name_that_is_not_utf8_is_that_cases_row_only(cohort_folder, tmp_path, read_rows,
                                                             linear):
    if sys.platform == "darwin":
        pytest.skip("macOS file systems refuse names that are not UTF-8")
    bad = os.path.join(os.fsencode(cohort_folder), b"\xe9.nrrd")
    with open(bad, "wb") as f:
        f.write((cohort_folder / "a.nrrd").read_bytes())
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 1
    table = {r["input"]: r for r in read_rows(out / "results.csv")}
    assert table["a.nrrd"]["status"] == table["b.nrrd"]["status"] == "ok"
    assert table["\\xe9.nrrd"]["status"] == "failed"
    assert "not UTF-8" in table["\\xe9.nrrd"]["message"]


@pytest.mark.parametrize("env, fragment", [
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "2"}, "not one of the array's 2"),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_MAX": "7",
      "SLURM_ARRAY_TASK_COUNT": "2"}, "cannot be mapped onto shards"),
    ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}, "not a whole number"),
    ({"RANK": "0", "WORLD_SIZE": "0"}, "0 <= RANK < WORLD_SIZE"),
    ({"RANK": "0", "WORLD_SIZE": "two"}, "not a whole number"),
    ({"RANK": "4", "WORLD_SIZE": "4"}, "0 <= RANK < WORLD_SIZE"),
    ({"RANK": "0", "WORLD_SIZE": "10001"}, "more than 10000"),
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "99999999999"}, "more than 10000"),
])
def test_shard_variables_that_name_no_task_of_a_whole_array_are_refused(env, fragment):
    with pytest.raises(HRINetError, match=fragment):
        cohort.shard_from_environment(env)


def test_a_shard_count_past_any_cluster_is_one_line_and_a_merge_names_few_missing(tmp_path):
    with pytest.raises(HRINetError, match="more than 10000 shards"):
        cohort.parse_shard("1/99999999999999999999")
    assert cohort.parse_shard("10000/10000") == (9999, 10000)
    (tmp_path / "results-shard-1-of-400.csv").write_text("input,status\n")
    with pytest.raises(HRINetError) as refused:
        cohort.merge_results(tmp_path)
    assert "shard 2 of 400, 3 of 400, 4 of 400, 5 of 400, 6 of 400 and 394 more" in str(
        refused.value)


def test_a_stepped_slurm_array_maps_its_tasks_onto_every_shard_once():
    env = {"SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "15",
           "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "8"}
    shards = [cohort.shard_from_environment({**env, "SLURM_ARRAY_TASK_ID": str(t)})[:2]
              for t in range(1, 16, 2)]
    assert shards == [(i, 8) for i in range(8)]


def test_resharding_resumes_and_merge_keeps_the_earlier_rows_and_names_missing_shards(cohort_folder,
                                                                                      tmp_path,
                                                                                      make_volume,
                                                                                      read_rows,
                                                                                      linear):
    for i in range(3, 7):
        make_volume(cohort_folder / f"c{i}.nrrd", i)
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nrrd")}
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear,
                 "--shard", "1/2"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.nrrd")} == stamps  # all done
    assert all(r["status"] == "ok" for r in read_rows(out / "results-shard-1-of-2.csv"))
    with pytest.raises(HRINetError, match="shard 2 of 2 has no results table"):
        main(["--debug", "batch", str(out), "--merge"])
    assert len(read_rows(out / "results.csv")) == 6  # untouched by the refused merge
    assert main(["batch", str(out), "--merge", "--partial"]) == 0
    merged = read_rows(out / "results.csv")
    assert len(merged) == 6 and {r["status"] for r in merged} == {"ok"}


@pytest.mark.parametrize("where", ["same", "parent"])
def test_out_that_is_the_input_folder_or_holds_it_is_refused(cohort_folder, where, linear):
    out = cohort_folder if where == "same" else cohort_folder.parent
    with pytest.raises(HRINetError, match="is the input folder or holds it"):
        main(["--debug", "batch", str(cohort_folder), "--out", str(out), *linear])
    assert not (out / "results.csv").exists()


def test_out_naming_a_file_is_one_line(cohort_folder, tmp_path, linear):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(HRINetError, match="is a file"):
        main(["--debug", "batch", str(cohort_folder), "--out", str(tmp_path / "notes.txt"),
              *linear])


def test_a_second_batch_on_the_same_out_is_refused_while_the_first_runs(cohort_folder, tmp_path,
                                                                        linear):
    out = tmp_path / "out"
    out.mkdir()
    with exclusive_lock(out / ".results.csv.lock", "held by the test"):
        with pytest.raises(HRINetError, match="a batch is running on"):
            main(["--debug", "batch", str(cohort_folder), "--out", str(out), *linear])
    assert not (out / "results.csv").exists()


def test_a_batch_with_another_shard_layout_on_the_same_out_is_refused_while_it_runs(cohort_folder,
                                                                                    tmp_path,
                                                                                    linear):
    out = tmp_path / "out"
    out.mkdir()
    with exclusive_lock(out / ".results-shard-1-of-3.csv.lock", "held by the test"):
        with pytest.raises(HRINetError, match="with 3 shard"):
            main(["--debug", "batch", str(cohort_folder), "--out", str(out), *linear])
        assert main(["batch", str(cohort_folder), "--out", str(out), *linear,
                     "--shard", "2/3"]) == 0


def test_warnings_of_a_case_reach_its_row_and_stderr(tmp_path, capsys, read_rows, linear):
    root = tmp_path / "study"
    root.mkdir()
    write_dicom_series(root / "ct", [0.0, 3.0, 6.0, 9.0], uid="1.2.3.1", prefix="a")
    write_dicom_series(root / "ct", [0.0, 3.0, 6.0], uid="1.2.3.2", prefix="b")
    write_dicom_series(root / "mr", [0.0, 3.0, 6.0], uid="1.2.3.3", modality="MR")
    manifest = tmp_path / "m.csv"
    manifest.write_text("input,output\nstudy/ct,res/ct.nrrd\nstudy/mr,res/mr.nrrd\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "log"), *linear]) == 0
    err = capsys.readouterr().err
    table = {Path(r["output"]).name: r for r in read_rows(tmp_path / "log" / "results.csv")}
    assert "holds 2 series" in table["ct.nrrd"]["message"] and "holds 2 series" in err
    assert "modality is MR" in table["mr.nrrd"]["message"] and "modality is MR" in err


@pytest.mark.parametrize("damage, fragment", [
    (lambda p: p.write_text(p.read_text().replace("output_sha256", "hash")), "no column"),
    (lambda p: p.write_bytes(p.read_bytes() + b"\xff\xfe,\n"), "not UTF-8"),
    (lambda p: p.write_text(p.read_text() + "x," + "y" * 200_000 + "\n"), "field"),
])
def test_a_damaged_results_table_is_one_line_and_left_as_it_is(cohort_folder, tmp_path, damage,
                                                               fragment, linear):
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    damage(out / "results.csv")
    before = (out / "results.csv").read_bytes()
    with pytest.raises(HRINetError, match=f"results table .* is damaged .*{fragment}"):
        main(["--debug", "batch", str(cohort_folder), "--out", str(out), *linear])
    assert (out / "results.csv").read_bytes() == before


def test_a_manifest_that_is_not_utf8_is_one_line_and_an_excel_one_is_read(cohort_folder, tmp_path,
                                                                          linear):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("input,output\nvol/a.nrrd,res/\xe9.nrrd\n".encode("latin-1"))
    with pytest.raises(HRINetError, match="not UTF-8"):
        main(["--debug", "batch", str(manifest), "--out", str(tmp_path / "log"), *linear])
    manifest.write_bytes("input,output\r\nvol/a.nrrd,res/a.nrrd\r\n".encode("utf-8-sig"))
    assert main(["batch", str(manifest), "--out", str(tmp_path / "log"), *linear]) == 0
    assert (tmp_path / "res" / "a.nrrd").is_file()


def test_a_stop_between_moving_an_output_in_and_recording_it_needs_one_rerun(cohort_folder,
                                                                             tmp_path, monkeypatch,
                                                                             read_rows, linear):
    out = tmp_path / "out"
    real = cohort.write_results

    def stop_once_the_file_is_in_place(path, rows_):
        rows_ = list(rows_)
        if any(r.status == "ok" for r in rows_ if r.input == "a.nrrd"):
            raise Terminated("SIGTERM")
        real(path, rows_)

    monkeypatch.setattr(cohort, "write_results", stop_once_the_file_is_in_place)
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 143
    assert (out / "a.nrrd").is_file()
    monkeypatch.setattr(cohort, "write_results", real)
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    assert {r["status"] for r in read_rows(out / "results.csv")} == {"ok"}


def test_a_stopped_batch_says_what_it_kept(cohort_folder, tmp_path, monkeypatch, capsys, linear):
    import hrinet.cli.batch_case as batch  # where each case is interpolated

    real, calls = batch.upsample_z, []

    def stop_on_the_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise Terminated("SIGTERM")
        return real(*a, **k)

    monkeypatch.setattr(batch, "upsample_z", stop_on_the_second)
    assert main(["batch", str(cohort_folder), "--out", str(tmp_path / "out"), *linear]) == 143
    err = capsys.readouterr().err
    assert "nothing was written" not in err
    assert "1 case(s) written this run are kept" in err


def test_jsonl_stdout_is_events_only_with_one_case_event_for_every_case_failed_or_not(cohort_folder,
                                                                                      tmp_path,
                                                                                      linear):
    (cohort_folder / "bad.nrrd").write_bytes(b"NRRD0004\ngarbage")
    r = subprocess.run([sys.executable, "-m", "hrinet.cli", "--progress", "jsonl", "batch",
                        str(cohort_folder), "--out", str(tmp_path / "out"), *linear],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]  # every line parses
    cases = {e["input"]: e["status"] for e in events if e["event"] == "case"}
    assert cases == {"a.nrrd": "ok", "b.nrrd": "ok", "bad.nrrd": "failed"}
    assert "1 failed" in r.stderr


def test_every_failure_line_reaches_the_console_while_the_next_case_is_read(tmp_path, linear):
    root = tmp_path / "vol"
    for name in ("a", "b", "c"):  # three that fail while a DICOM series is read ahead
        (root / f"{name}.nrrd").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{name}.nrrd").write_bytes(b"NRRD0004\ntype: short\ndimension: 3\n")
    write_dicom_series(root / "series", [float(z) for z in range(0, 60, 3)], uid="1.2.3.9",
                       size=64)
    r = subprocess.run([sys.executable, "-m", "hrinet.cli", "batch", str(root), "--out",
                        str(tmp_path / "out"), *linear],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    for name in ("a", "b", "c"):
        assert f"{name}.nrrd: failed" in r.stderr, r.stderr


def test_a_series_already_at_the_target_is_a_skipped_row_not_a_failure(tmp_path, make_volume,
                                                                       read_rows):
    root = tmp_path / "vol"
    thin = root / "thin.nrrd"
    thin.parent.mkdir(parents=True)
    write_volume(make_phantom(size=(16, 16, 5), spacing=(1, 1, 1), seed=3), thin)
    make_volume(root / "thick.nrrd", 4)
    out = tmp_path / "out"
    assert main(["batch", str(root), "--out", str(out), "--spacing", "1", "--method",
                 "linear"]) == 0
    table = {r["input"]: r for r in read_rows(out / "results.csv")}
    assert table["thin.nrrd"]["status"] == "skipped"
    assert table["thin.nrrd"]["message"] == "already at 1.0 mm"
    assert not (out / "thin.nrrd").exists()
    assert table["thick.nrrd"]["status"] == "ok"


def test_scouts_and_dose_reports_are_listed_as_skipped_never_interpolated(tmp_path, read_rows,
                                                                          linear):
    root = tmp_path / "study"
    root.mkdir()
    write_dicom_series(root / "ct", [0.0, 3.0, 6.0], uid="1.2.3.1", prefix="a")
    write_dicom_series(root / "ct", [0.0, 3.0, 6.0], uid="1.2.3.2", prefix="b",
                       tags={"0008|0008": "ORIGINAL\\PRIMARY\\LOCALIZER"})
    out = tmp_path / "out"
    assert main(["batch", str(root), "--out", str(out), *linear]) == 0
    table = {r["series_uid"]: r for r in read_rows(out / "results.csv")}
    assert table["1.2.3.1"]["status"] == "ok"
    assert table["1.2.3.2"]["status"] == "skipped" and "not interpolated" in \
        table["1.2.3.2"]["message"]



def test_an_earlier_batchs_outputs_in_the_tree_are_listed_never_interpolated_again(tmp_path):
    """Two batches of one tree into two folders inside it: the second lists the first's outputs
    as skipped (they are interpolated already) and makes only the real case; a user's own file
    named results.csv is no batch's table and hides nothing."""
    import csv as _csv

    from hrinet.cli import main
    from hrinet.core.io import write_volume
    from hrinet.core.phantom import make_phantom

    tree = tmp_path / "in"
    tree.mkdir()
    write_volume(make_phantom(size=(16, 16, 4), spacing=(1, 1, 4)), tree / "x.nrrd")
    (tree / "results.csv").write_text("my,own,spreadsheet\n")
    for out in ("o1", "o2"):
        assert main(["batch", str(tree), "--out", str(tree / out), "--method", "linear",
                     "--factor", "2"]) == 0
    with open(tree / "o2" / "results.csv", newline="") as f:
        rows = {r["input"]: r for r in _csv.DictReader(f)}
    assert rows["x.nrrd"]["status"] == "ok"
    assert rows["o1/x.nrrd"]["status"] == "skipped"
    assert "the output of another hrinet batch" in rows["o1/x.nrrd"]["message"]
    assert not (tree / "o2" / "o1").exists()
    header = (tree / "o1" / "results.csv").read_text(encoding="utf-8").splitlines()[0]
    (tree / "results.csv").write_text(header + "\n", encoding="utf-8")  # a bare header copy
    assert not cohort.is_results_table(tree / "results.csv")
    table = tree / "o1" / "results.csv"
    table.write_text("\ufeff" + table.read_text(encoding="utf-8"),
                     encoding="utf-8")  # re-saved by a spreadsheet
    assert cohort.is_results_table(tree / "o1" / "results.csv")
