"""Cohorts: found in a tree or a manifest, sharded by identity, resumable, one bad case never
stopping the rest (hrinet.core.cohort, hrinet batch)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
from helpers import write_dicom_series
from hrinet.cli import main
from hrinet.core import cohort
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume, write_volume
from hrinet.core.phantom import make_phantom


@pytest.fixture
def tree(tmp_path):
    """Two patients: one with two NRRD volumes, one with a DICOM series."""
    root = tmp_path / "study"
    (root / "p1").mkdir(parents=True)
    for i in (1, 2):
        write_volume(make_phantom(size=(32, 32, 4 + i), spacing=(1, 1, 3), seed=i),
                     root / "p1" / f"v{i}.nrrd")
    (root / "p2").mkdir()
    write_dicom_series(root / "p2" / "ct", [0.0, 3.0, 6.0, 9.0], uid="1.2.3.77")
    return root



def test_every_volume_and_series_of_a_tree_is_a_case_with_a_mirrored_output(tree, tmp_path):
    cases = cohort.find_cases(tree, tmp_path / "out")
    assert [(c.input, c.series_uid) for c in cases] == [
        ("p1/v1.nrrd", ""), ("p1/v2.nrrd", ""), ("p2/ct", "1.2.3.77")]
    assert cases[0].output == str(tmp_path / "out" / "p1" / "v1.nrrd")
    assert cases[2].output.startswith(str(tmp_path / "out" / "p2" / "ct"))


def test_shards_are_disjoint_cover_everything_and_ignore_discovery_order():
    cases = [cohort.Case(f"p{i}/ct", f"o{i}.nrrd", f"1.2.{i}") for i in range(50)]
    shuffled = random.Random(1).sample(cases, len(cases))
    for n in (1, 3, 8):
        parts = [{c.identity for c in cases if cohort.shard_of(c, n) == i} for i in range(n)]
        assert sum(map(len, parts)) == 50 and set().union(*parts) == {c.identity for c in cases}
        assert all(cohort.shard_of(c, n) == cohort.shard_of(c, n) for c in shuffled)


def test_the_shard_comes_from_slurm_or_torchrun():
    assert cohort.shard_from_environment({"SLURM_ARRAY_TASK_ID": "5",
                                          "SLURM_ARRAY_TASK_MIN": "1",
                                          "SLURM_ARRAY_TASK_MAX": "8"}) == (4, 8, -1)
    assert cohort.shard_from_environment({"SLURM_ARRAY_TASK_ID": "0",
                                          "SLURM_ARRAY_TASK_COUNT": "4"}) == (0, 4, -1)
    assert cohort.shard_from_environment({"RANK": "3", "WORLD_SIZE": "4",
                                          "LOCAL_RANK": "1"}) == (3, 4, 1)
    assert cohort.shard_from_environment({}) == (0, 1, -1)


def test_a_cohort_runs_then_a_rerun_skips_what_is_done_and_redoes_what_was_removed(tree, tmp_path,
                                                                                   read_rows):
    out = tmp_path / "out"
    args = ["batch", str(tree), "--out", str(out), "--factor", "2", "--method", "linear"]
    assert main(args) == 0
    table = read_rows(out / "results.csv")
    assert [r["status"] for r in table] == ["ok"] * 3 and all(r["output_sha256"] for r in table)
    first = read_volume(out / "p1" / "v1.nrrd")
    assert first.array.shape[0] == 2 * 5 - 1
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.nrrd")}
    assert main(args) == 0  # nothing to do
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.nrrd")} == stamps
    changed = out / "p1" / "v2.nrrd"
    changed.write_bytes(changed.read_bytes()[:100])  # changed since: maybe someone's edit
    assert main(args) == 1
    assert len(changed.read_bytes()) == 100
    assert "changed since this batch wrote it" in {r["input"]: r for r in read_rows(
        out / "results.csv")}["p1/v2.nrrd"]["message"]
    changed.unlink()  # moved aside: made again
    assert main(args) == 0
    assert read_volume(changed).array.shape[0] == 2 * 6 - 1


def test_one_bad_case_is_recorded_and_the_cohort_goes_on(tree, tmp_path, capsys, read_rows):
    bad = tree / "p1" / "v3.nrrd"
    bad.write_bytes((tree / "p1" / "v1.nrrd").read_bytes()[:300])
    out = tmp_path / "out"
    assert main(["batch", str(tree), "--out", str(out), "--factor", "2",
                 "--method", "linear"]) == 1
    table = {r["input"]: r for r in read_rows(out / "results.csv")}
    assert table["p1/v3.nrrd"]["status"] == "failed" and table["p1/v3.nrrd"]["message"]
    assert sum(r["status"] == "ok" for r in table.values()) == 3
    assert "1 failed" in capsys.readouterr().out


def test_shards_write_their_own_tables_and_merge_into_one(tree, tmp_path, read_rows):
    out = tmp_path / "out"
    for shard in ("1/2", "2/2"):
        assert main(["batch", str(tree), "--out", str(out), "--factor", "2", "--method",
                     "linear", "--shard", shard]) == 0
    assert main(["batch", str(out), "--merge"]) == 0
    assert sorted(r["input"] for r in read_rows(out / "results.csv")) == [
        "p1/v1.nrrd", "p1/v2.nrrd", "p2/ct"]


def test_a_manifest_names_inputs_and_outputs_and_a_users_file_is_never_replaced(tree, tmp_path,
                                                                                read_rows):
    manifest = tmp_path / "cases.csv"
    manifest.write_text("input,output\nstudy/p1/v1.nrrd,res/one.nrrd\nstudy/p1/v2.nrrd,"
                        "res/two.nrrd\n")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "two.nrrd").write_text("the user's own file")
    code = main(["batch", str(manifest), "--out", str(tmp_path / "log"), "--factor", "2",
                 "--method", "linear"])
    assert code == 1
    assert read_volume(tmp_path / "res" / "one.nrrd").array.shape[0] == 9
    assert (tmp_path / "res" / "two.nrrd").read_text() == "the user's own file"
    table = {r["output"]: r for r in read_rows(tmp_path / "log" / "results.csv")}
    assert "not an output of this batch" in table[str(tmp_path / "res" / "two.nrrd")]["message"]


def test_three_slurm_array_tasks_run_side_by_side_each_case_once(tmp_path, read_rows):
    """Six cases (a DICOM series, NRRD, NIfTI, a corrupt file, a 2D image, one more NRRD)
    processed by three concurrent processes that know only their SLURM array variables."""
    import os
    import subprocess
    import sys

    import numpy as np
    import SimpleITK as sitk

    root = tmp_path / "study"
    (root / "a").mkdir(parents=True)
    write_dicom_series(root / "a" / "series", [0.0, 3.0, 6.0, 9.0], uid="1.2.3.55")
    vol = make_phantom(size=(32, 32, 5), spacing=(1, 1, 3))
    write_volume(vol, root / "a" / "one.nrrd")
    write_volume(vol, root / "b.nii.gz")
    write_volume(vol, root / "c.nrrd")
    (root / "bad.nrrd").write_bytes((root / "c.nrrd").read_bytes()[:200])
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((16, 16), np.int16)), str(root / "flat.nrrd"))
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-m", "hrinet.cli", "batch", str(root), "--out",
                               str(out), "--factor", "2", "--method", "linear"],
                              env=dict(os.environ, SLURM_ARRAY_TASK_ID=str(i),
                                       SLURM_ARRAY_TASK_COUNT="3"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    codes = [p.wait(timeout=300) for p in procs]
    assert sorted(codes)[-1] == 1 and set(codes) <= {0, 1}  # the bad cases' shards say so
    tables = [read_rows(out / f"results-shard-{i}-of-3.csv") for i in (1, 2, 3)
              if (out / f"results-shard-{i}-of-3.csv").exists()]
    seen = [r["input"] for t in tables for r in t]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 6  # each case by one shard
    assert main(["batch", str(out), "--merge"]) == 0
    merged = {r["input"]: r for r in read_rows(out / "results.csv")}
    assert {k for k, r in merged.items() if r["status"] == "failed"} == {"bad.nrrd", "flat.nrrd"}
    assert "2D" in merged["flat.nrrd"]["message"]
    for r in merged.values():
        if r["status"] == "ok":
            assert cohort.file_sha256(out / r["output"].split(str(out) + "/", 1)[1]) == \
                r["output_sha256"]
    assert not list(out.rglob(".*partial*"))



def test_a_shard_killed_mid_case_then_rerun_completes_without_partial_files(tmp_path, read_rows):
    import os
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "study"
    root.mkdir()
    for i in range(3):
        write_volume(make_phantom(size=(192, 192, 24), spacing=(1, 1, 4), seed=i),
                     root / f"v{i}.nrrd")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "hrinet.cli", "batch", str(root), "--out", str(out),
            "--factor", "6", "--method", "flow"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "results.csv").exists() and \
                any(r["status"] == "ok" for r in read_rows(out / "results.csv")):
            break  # a "writing" row alone: the output may not be in place yet
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-way through the second case, most likely
    proc.wait()
    first = [r for r in read_rows(out / "results.csv") if r["status"] == "ok"]
    assert 1 <= len(first) < 3  # killed with work left
    done = {r["input"]: (out / Path(r["output"]).name).stat().st_mtime_ns for r in first}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    table = read_rows(out / "results.csv")
    assert [t["status"] for t in table] == ["ok"] * 3
    assert not [p for p in out.rglob("*") if ".partial" in p.name]
    for name, stamp in done.items():  # nothing done before the kill was computed again
        assert (out / Path(name).name).stat().st_mtime_ns == stamp



def _doc_block(heading: str) -> str:
    text = (Path(__file__).resolve().parents[3] / "docs" / "cluster.md").read_text()
    block = text.split(heading, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    # the same script, on a small cohort: the fast method instead of the model
    return block.replace("--spacing 1.0 --device cpu", "--factor 2 --method linear")


def test_the_documented_slurm_script_and_torchrun_line_run_as_written(tree, tmp_path, read_rows):
    import os
    import subprocess
    import sys

    venv = Path(sys.executable).parent.parent
    env = dict(os.environ, VENV=str(venv), STUDY=str(tree), OUT=str(tmp_path / "slurm"))
    script = tmp_path / "job.sh"
    script.write_text(_doc_block("## SLURM job array"))
    for task in ("1", "2"):  # what sbatch --array=1-2 sets for each task
        r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=300,
                           env=dict(env, SLURM_ARRAY_TASK_ID=task, SLURM_ARRAY_TASK_MIN="1",
                                    SLURM_ARRAY_TASK_MAX="2"))
        assert r.returncode == 0, r.stderr
    assert main(["batch", str(tmp_path / "slurm"), "--merge"]) == 0
    assert len(read_rows(tmp_path / "slurm" / "results.csv")) == 3
    lines = _doc_block("## torchrun").replace("--out \"$OUT\"", "--out \"$OUT\" --factor 2 "
                                                 "--method linear").replace("4", "2")
    env["OUT"] = str(tmp_path / "torchrun")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    r = subprocess.run(["bash", "-c", lines], capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert [t["status"] for t in read_rows(tmp_path / "torchrun" / "results.csv")] == ["ok"] * 3


def test_the_next_case_is_read_while_the_current_one_is_computed_in_order_errors_its_own():
    import threading

    from hrinet.core.cohort import Case, read_ahead

    cases = [Case(f"in{i}", f"out{i}") for i in range(4)]
    started = {c.input: threading.Event() for c in cases}

    def read(case):
        started[case.input].set()
        if case.input == "in2":
            raise HRINetError("in2 is damaged")
        return case.input.upper()

    got = []
    for case, volume_of in read_ahead(cases, read):
        i = int(case.input[-1])
        if i + 1 < len(cases):  # the next read runs while this case is being worked on
            assert started[f"in{i + 1}"].wait(10)
        try:
            got.append(volume_of())
        except HRINetError as exc:
            got.append(str(exc))
    assert got == ["IN0", "IN1", "in2 is damaged", "IN3"]
    assert list(read_ahead([], read)) == []


def test_an_unexpected_error_on_one_case_is_its_row_and_the_cohort_goes_on(tmp_path, monkeypatch):
    """A bug that shows on one case (an internal error) fails that case, not the cohort."""
    import hrinet.cli.batch as batch

    src = tmp_path / "cohort"
    src.mkdir()
    for name in ("a", "b", "c"):
        write_volume(make_phantom(size=(32, 32, 6), spacing=(1, 1, 3)), src / f"{name}.nrrd")
    real = batch.read_case

    def read(case):
        if case.input == "b.nrrd":
            raise KeyError("sizes")  # as a header check once did
        return real(case)

    monkeypatch.setattr(batch, "read_case", read)  # as batch calls it
    assert main(["batch", str(src), "--out", str(tmp_path / "out"), "--method", "linear",
                 "--factor", "2", "--shard", "1/1"]) == 1
    rows = {r["input"]: r for r in csv.DictReader(open(tmp_path / "out" / "results.csv"))}
    assert [rows[n]["status"] for n in ("a.nrrd", "b.nrrd", "c.nrrd")] == ["ok", "failed", "ok"]
    assert rows["b.nrrd"]["message"].startswith("internal error: KeyError")


def test_a_case_in_a_batch_is_planned_and_made_as_interpolate_makes_it(tmp_path):
    """A volume file that records no slice thickness has it estimated from its voxels by both
    commands: the same input gives the same output and the same record either way."""
    import numpy as np
    from hrinet.core.io import read_provenance

    from hrinet.core.slab import simulate_thick

    (tmp_path / "in").mkdir()
    slabs = simulate_thick(make_phantom(size=(64, 64, 33), spacing=(1.0, 1.0, 1.0), seed=5), 4)
    slabs.metadata.pop("slice_thickness_mm", None)  # a file that lost its thickness
    write_volume(slabs, tmp_path / "in" / "p.nrrd")
    assert main(["interpolate", str(tmp_path / "in" / "p.nrrd"), str(tmp_path / "one.nrrd"),
                 "--factor", "2", "--method", "linear"]) == 0
    assert main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "b"), "--factor", "2",
                 "--method", "linear"]) == 0
    made = tmp_path / "b" / "p.nrrd"
    np.testing.assert_array_equal(read_volume(made).array,
                                  read_volume(tmp_path / "one.nrrd").array)
    a, b = read_provenance(tmp_path / "one.nrrd"), read_provenance(made)
    for key in ("slab_thickness_mm", "acquired_restored", "acquired_slices", "synthesised_count"):
        assert a[key] == b[key], key
    assert float(a["slab_thickness_mm"]) > 0  # estimated a slab, as it is
