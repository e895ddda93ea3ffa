"""What an adversarial try of ``hrinet batch`` found, each now a specification: a changed input
is made again, links never make two outputs one file or hide a user's link, a DICOM output
folder's fingerprint covers every entry, cleaning half-written files touches nothing else;
impossible options are refused once before any work, a volume of the user's inside --out is
listed, a manifest's name is kept exactly, a moved project and a linked --out are the same
batch, a rerun removes only what a killed run half-wrote, and an edited output is reported the
same way on every rerun."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hrinet.cli import main
from hrinet.core import cohort
from hrinet.core.cohort.partials import stale_partials
from hrinet.core.errors import HRINetError


def test_an_input_replaced_since_is_made_again_not_taken_as_done(cohort_folder, tmp_path,
                                                                 make_volume, linear):
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    first = (out / "a.nrrd").read_bytes()
    (cohort_folder / "a.nrrd").unlink()
    make_volume(cohort_folder / "a.nrrd", seed=7)  # another scan under the same name
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    assert (out / "a.nrrd").read_bytes() != first


def test_two_outputs_that_are_one_file_through_a_linked_folder_are_refused(cohort_folder, tmp_path,
                                                                           linear):
    (tmp_path / "oc").mkdir()
    (tmp_path / "ocl").symlink_to(tmp_path / "oc")
    manifest = tmp_path / "m.csv"
    manifest.write_text("input,output\nvol/a.nrrd,oc/a.nrrd\nvol/b.nrrd,ocl/a.nrrd\n")
    with pytest.raises(HRINetError, match="would both write"):
        main(["--debug", "batch", str(manifest), "--out", str(tmp_path / "log"), *linear])


def test_a_users_link_at_an_output_path_is_kept(cohort_folder, tmp_path, linear):
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    (tmp_path / "keep").mkdir()
    (out / "a.nrrd").rename(tmp_path / "keep" / "a.nrrd")
    (out / "a.nrrd").symlink_to(tmp_path / "keep" / "a.nrrd")
    assert main(["batch", str(cohort_folder), "--out", str(out), "--factor", "3",
                 "--method", "linear"]) == 1
    assert (out / "a.nrrd").is_symlink()


def test_cleaning_a_half_written_file_touches_only_that_outputs_partials(tmp_path,
                                                                         left_by_a_kill):
    from hrinet.core.io.atomic import remove_stale_partials

    (tmp_path / ".sa.nrrd.notes.partial").write_text("mine")
    (tmp_path / ".s[ab].nrrd.abcdefgh.partial.nrrd").write_text("mine, named like a leftover")
    outer = left_by_a_kill(tmp_path, "s[ab].nrrd", ".partial.nrrd")
    left_by_a_kill(tmp_path, outer.name, ".partial.nrrd")  # the writer's own, nested
    assert remove_stale_partials(tmp_path / "s[ab].nrrd") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s[ab].nrrd.abcdefgh.partial.nrrd",
                                                          ".sa.nrrd.notes.partial"]


def test_a_dead_writers_tag_in_a_name_the_writer_never_makes_is_no_proof(tmp_path, dead_pid):
    from hrinet.core.io.atomic import remove_stale_partials
    from hrinet.core.io.temp_names import writer_tag

    tag = writer_tag(dead_pid)
    mine = [tmp_path / f".a.nrrd.{tag}.my notes.partial.txt",
            tmp_path / f".a.nrrd.{tag}.abcdefgh.partial.nrrd.bak"]
    for p in mine:
        p.write_text("the user's")
    left = tmp_path / f".a.nrrd.{tag}.abcdefgh.partial.nrrd"  # exactly a killed write's name
    left.write_text("half")
    assert remove_stale_partials(tmp_path / "a.nrrd") == 1
    assert all(p.read_text() == "the user's" for p in mine) and not left.exists()


def test_leftovers_of_an_upper_case_output_and_of_a_nifti_rewrite_are_removed(tmp_path,
                                                                             left_by_a_kill):
    from hrinet.core.io.atomic import remove_stale_partials

    upper = left_by_a_kill(tmp_path, "OUT.NRRD", ".partial.nrrd")  # writers lower-case it
    nifti = left_by_a_kill(tmp_path, "b.nii.gz", ".partial.nii.gz")
    rewrite = nifti.with_name(nifti.name + ".ext")  # killed while adding provenance
    rewrite.write_text("half")
    assert remove_stale_partials(tmp_path / "OUT.NRRD") == 1 and not upper.exists()
    assert remove_stale_partials(tmp_path / "b.nii.gz") == 2 and not rewrite.exists()


def test_a_temporary_name_with_a_trailing_newline_is_a_users_file(tmp_path, left_by_a_kill):
    from hrinet.core.cohort.partials import stale_partials
    from hrinet.core.io.atomic import remove_stale_partials

    real = left_by_a_kill(tmp_path, "a.nrrd", ".partial.nrrd")
    mine = real.with_name(real.name + "\n")
    real.rename(mine)
    assert remove_stale_partials(tmp_path / "a.nrrd") == 0 and mine.exists()
    assert mine not in stale_partials(tmp_path / "a.nrrd")


def test_a_write_still_running_is_never_taken_for_a_leftover(tmp_path):
    import tempfile

    from hrinet.core.io.atomic import remove_stale_partials
    from hrinet.core.io.temp_names import temp_prefix

    fd, running = tempfile.mkstemp(prefix=temp_prefix("a.nrrd"), suffix=".partial.nrrd",
                                   dir=tmp_path)  # this process's own: alive
    os.close(fd)
    assert remove_stale_partials(tmp_path / "a.nrrd") == 0 and Path(running).exists()


def test_out_below_a_file_is_one_line(cohort_folder, tmp_path, linear):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HRINetError, match="cannot make the --out folder"):
        main(["--debug", "batch", str(cohort_folder), "--out", str(tmp_path / "f" / "x"),
              *linear])


def test_a_dicom_output_folders_fingerprint_covers_every_entry_subfolders_too(tmp_path):
    from hrinet.core.io import folder_sha256

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "1.dcm").write_bytes(b"x")
    before = folder_sha256(tmp_path / "s")
    (tmp_path / "s" / "my-annotations").mkdir()
    assert folder_sha256(tmp_path / "s") != before
    (tmp_path / "s" / "my-annotations" / "roi.json").write_text("precious")
    changed = folder_sha256(tmp_path / "s")
    (tmp_path / "s" / "my-annotations" / "roi.json").write_text("other")
    assert folder_sha256(tmp_path / "s") != changed


@pytest.mark.parametrize("options, fragment", [
    (["--factor", "1", "--method", "linear"], "--factor 1 leaves nothing to interpolate"),
    (["--factor", "0", "--method", "linear"], "--factor 0 is not positive"),
    (["--spacing", "0", "--method", "linear"], "--spacing 0 is not a positive number"),
    (["--spacing", "nan", "--method", "linear"], "--spacing nan is not a positive number"),
    (["--thickness", "-1", "--factor", "2", "--method", "linear"], "--thickness -1 is not"),
    (["--weights", "no-such-model.safetensors", "--factor", "2"], "does not exist"),
    (["--method", "bicubic", "--factor", "2"], "--method bicubic is not a method"),
])
def test_impossible_options_are_refused_once_before_any_work(cohort_folder, tmp_path, capsys,
                                                             options, fragment):
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *options]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("hrinet: error:")]
    assert len(errors) == 1 and fragment in errors[0], err
    assert "a.nrrd" not in err and not out.exists()  # no case was tried, nothing was made


def test_a_model_that_cannot_be_loaded_stops_the_batch_once_not_every_case(cohort_folder,
                                                                          tmp_path, capsys):
    pytest.importorskip("torch")
    weights = tmp_path / "broken.safetensors"
    weights.write_bytes(b"not a weights file")
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), "--weights", str(weights),
                 "--factor", "2"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("hrinet: error:")]
    assert len(errors) == 1 and "model cannot be loaded" in errors[0], err
    assert not [r for r in cohort.read_results(out / "results.csv").values()
                if r.status == "failed"]


def test_a_users_volume_inside_out_in_the_input_tree_is_a_skipped_row_never_dropped(
        cohort_folder, tmp_path, make_volume, read_rows, linear, capsys):
    out = cohort_folder / "iso"  # --out inside the input tree
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    mine = make_volume(out / "mine.nrrd", seed=9)
    before = mine.read_bytes()
    capsys.readouterr()
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    err = capsys.readouterr().err
    table = {r["input"]: r for r in read_rows(out / "results.csv")}
    assert set(table) == {"a.nrrd", "b.nrrd", "iso/mine.nrrd"}  # the outputs are no inputs
    assert table["iso/mine.nrrd"]["status"] == "skipped"
    assert "inside --out" in table["iso/mine.nrrd"]["message"]
    assert "iso/mine.nrrd: skipped (it lies inside --out" in err
    assert mine.read_bytes() == before and not (out / "iso").exists()


def test_a_line_break_inside_a_quoted_manifest_name_is_kept_exactly(tmp_path, make_volume,
                                                                   read_rows, linear):
    make_volume(tmp_path / "vol" / "a\nb.nrrd", 1)
    make_volume(tmp_path / "vol" / "b.nrrd", 2)
    manifest = tmp_path / "m.csv"
    manifest.write_text('input,output\n"vol/a\nb.nrrd","res/a\nb.nrrd"\nvol/b.nrrd,res/b.nrrd\n')
    assert [c.input for c in cohort.read_manifest(manifest)] == ["vol/a\nb.nrrd", "vol/b.nrrd"]
    assert main(["batch", str(manifest), "--out", str(tmp_path / "log"), *linear]) == 0
    assert (tmp_path / "res" / "a\nb.nrrd").is_file()
    assert {r["input"] for r in read_rows(tmp_path / "log" / "results.csv")} == {
        "vol/a\nb.nrrd", "vol/b.nrrd"}
    manifest.write_text('input,output\n"vol/a\nb.nrrd","res/x.nrrd"\nvol/b.nrrd,\n')
    with pytest.raises(HRINetError, match="line 4 lacks an input or an output"):
        cohort.read_manifest(manifest)  # a row is named by the line it starts on


@pytest.mark.parametrize("kind", ["tree", "manifest"])
def test_a_project_moved_elsewhere_still_owns_its_outputs_and_redoes_nothing(
        tmp_path, make_volume, read_rows, linear, kind):
    def argv(project):
        if kind == "tree":
            return ["batch", str(project / "vol"), "--out", str(project / "out"), *linear]
        return ["batch", str(project / "m.csv"), "--out", str(project / "log"), *linear]

    first = tmp_path / "site1" / "project"
    make_volume(first / "vol" / "a.nrrd", 1)
    make_volume(first / "vol" / "sub" / "b.nrrd", 2)
    (first / "m.csv").write_text("input,output\nvol/a.nrrd,res/a.nrrd\n"
                                 "vol/sub/b.nrrd,res/b.nrrd\n")
    assert main(argv(first)) == 0
    moved = tmp_path / "site2" / "deeper" / "project"
    moved.parent.mkdir(parents=True)
    shutil.move(str(first), str(moved))
    outputs = {p: p.stat().st_mtime_ns for p in moved.rglob("*.nrrd") if "vol" not in p.parts}
    assert len(outputs) == 2
    assert main(argv(moved)) == 0
    assert {p: p.stat().st_mtime_ns for p in outputs} == outputs  # nothing made again
    table = read_rows(moved / ("out" if kind == "tree" else "log") / "results.csv")
    assert [r["status"] for r in table] == ["ok", "ok"]
    assert all(r["output"].startswith(str(moved)) for r in table)


def test_out_given_through_a_link_is_the_same_batch(cohort_folder, tmp_path, read_rows,
                                                    linear):
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.nrrd")}
    (tmp_path / "link").symlink_to(out)
    assert main(["batch", str(cohort_folder), "--out", str(tmp_path / "link"), *linear]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.nrrd")} == stamps  # nothing redone
    assert sorted(r["input"] for r in read_rows(out / "results.csv")) == ["a.nrrd", "b.nrrd"]


def test_a_rerun_removes_what_a_killed_run_half_wrote_and_nothing_else(
        cohort_folder, tmp_path, make_volume, read_rows, linear, capsys, left_by_a_kill):
    make_volume(cohort_folder / "p" / "c.nrrd", 3)
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    stamp = (out / "p" / "c.nrrd").stat().st_mtime_ns
    outer = left_by_a_kill(out / "p", "c.nrrd", ".partial.nrrd")
    left = [outer, left_by_a_kill(out / "p", outer.name, ".partial.nrrd"),  # nested
            left_by_a_kill(out, "results.csv"), left_by_a_kill(out, "a.nrrd", ".partial.nrrd")]
    users = [out / "p" / ".c.nrrd.notes.partial", out / ".results.csv.backup.partial",
             out / "p" / ".c.nrrd.abcdefgh.partial.txt", out / ".a.nrrd.abcdefgh.partial.nrrd",
             out / ".results.csv.abcdefgh.partial"]
    for path in users:
        path.write_text("the user's")
    capsys.readouterr()
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    assert "removed 4 half-written file(s)" in capsys.readouterr().err
    assert not [p for p in left if p.exists()]
    assert all(p.read_text() == "the user's" for p in users)
    assert (out / "p" / "c.nrrd").stat().st_mtime_ns == stamp  # not made again
    assert [r["status"] for r in read_rows(out / "results.csv")] == ["ok"] * 3


def test_a_half_written_series_folder_is_ours_only_when_it_holds_only_series_files(
        tmp_path, left_by_a_kill):
    ours = left_by_a_kill(tmp_path, "ct", is_folder=True)
    (ours / "IMG00001.dcm").write_bytes(b"x")
    theirs = left_by_a_kill(tmp_path, "ct", is_folder=True)
    (theirs / "notes.txt").write_text("the user's")
    untagged = Path(tempfile.mkdtemp(prefix=".ct.", suffix=".partial", dir=tmp_path))
    (untagged / "IMG00001.dcm").write_bytes(b"the user's")
    assert stale_partials(tmp_path / "ct") == [ours]


def test_a_first_batch_into_a_folder_removes_none_of_the_users_files_named_like_leftovers(
        cohort_folder, tmp_path, linear):
    out = tmp_path / "out"
    out.mkdir()
    users = [out / ".b.nrrd.abcdefgh.partial", out / ".results.csv.abcdefgh.partial",
             out / ".a.nrrd.abcdefgh.partial.nrrd", out / ".b.nrrd.abcdefgh.old"]
    for path in users:
        path.write_text("the user's")
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    assert all(p.read_text() == "the user's" for p in users)


def test_the_batch_lock_never_replaces_a_users_file_and_is_gone_after_the_run(
        cohort_folder, tmp_path, linear, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    assert not list(out.glob(".*.lock"))
    users = out / ".results.csv.lock"
    users.write_text("my notes")
    capsys.readouterr()
    assert main(["batch", str(cohort_folder), "--out", str(out), "--method", "cubic",
                 "--factor", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a lock file of hrinet" in err[0], err
    assert users.read_text() == "my notes"


def test_an_edited_output_is_reported_the_same_way_on_every_rerun(cohort_folder, tmp_path,
                                                                  read_rows, linear):
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    edited = out / "a.nrrd"
    edited.write_bytes(edited.read_bytes() + b"the user's edit")
    before = edited.read_bytes()
    for _ in range(3):
        assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 1
        row = {r["input"]: r for r in read_rows(out / "results.csv")}["a.nrrd"]
        assert row["status"] == "failed"
        assert "changed since this batch wrote it" in row["message"], row["message"]
    assert edited.read_bytes() == before


@pytest.mark.parametrize("kind", ["link", "folder", "pipe"])
def test_a_link_folder_or_pipe_at_the_lock_path_is_refused_untouched(cohort_folder, tmp_path,
                                                                    linear, capsys, kind):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    lock = out / ".results.csv.lock"
    if kind == "link":
        lock.symlink_to(elsewhere / "new")
    elif kind == "folder":
        lock.mkdir()
        (lock / "x").write_text("the user's")
    else:
        os.mkfifo(lock)
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a lock file of hrinet" in err[0], err
    assert not list(elsewhere.iterdir()) and os.path.lexists(lock)


def test_a_writer_tag_with_an_impossible_pid_is_no_proof_and_no_crash(tmp_path):
    from hrinet.core.io.atomic import remove_stale_partials
    from hrinet.core.io.temp_names import host_name

    odd = tmp_path / f".a.nrrd.hrinet-99999999999999999999-{host_name()}.abcdefgh.partial.nrrd"
    odd.write_text("the user's")
    assert remove_stale_partials(tmp_path / "a.nrrd") == 0 and odd.exists()
