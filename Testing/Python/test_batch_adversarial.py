"""What an adversarial try of ``hrinet batch`` found, each now a specification: a changed input
is made again, links never make two outputs one file or hide a user's link, a DICOM output
folder's fingerprint covers every entry, cleaning half-written files touches nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hrinet.cli import main
from hrinet.core.errors import HRINetError
from hrinet.core.io import write_volume
from hrinet.core.phantom import make_phantom

LINEAR = ["--factor", "2", "--method", "linear"]


def volume(path, seed=0, slices=5):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_volume(make_phantom(size=(16, 16, slices), spacing=(1, 1, 3), seed=seed), path)
    return Path(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "vol"
    volume(root / "a.nrrd", 1)
    volume(root / "b.nrrd", 2)
    return root


def test_an_input_replaced_since_is_made_again_not_taken_as_done(folder, tmp_path):
    out = tmp_path / "out"
    assert main(["batch", str(folder), "--out", str(out), *LINEAR]) == 0
    first = (out / "a.nrrd").read_bytes()
    (folder / "a.nrrd").unlink()
    volume(folder / "a.nrrd", seed=7)  # another scan under the same name
    assert main(["batch", str(folder), "--out", str(out), *LINEAR]) == 0
    assert (out / "a.nrrd").read_bytes() != first


def test_two_outputs_that_are_one_file_through_a_linked_folder_are_refused(folder, tmp_path):
    (tmp_path / "oc").mkdir()
    (tmp_path / "ocl").symlink_to(tmp_path / "oc")
    manifest = tmp_path / "m.csv"
    manifest.write_text("input,output\nvol/a.nrrd,oc/a.nrrd\nvol/b.nrrd,ocl/a.nrrd\n")
    with pytest.raises(HRINetError, match="would both write"):
        main(["--debug", "batch", str(manifest), "--out", str(tmp_path / "log"), *LINEAR])


def test_a_users_link_at_an_output_path_is_kept(folder, tmp_path):
    out = tmp_path / "out"
    assert main(["batch", str(folder), "--out", str(out), *LINEAR]) == 0
    (tmp_path / "keep").mkdir()
    (out / "a.nrrd").rename(tmp_path / "keep" / "a.nrrd")
    (out / "a.nrrd").symlink_to(tmp_path / "keep" / "a.nrrd")
    assert main(["batch", str(folder), "--out", str(out), "--factor", "3",
                 "--method", "linear"]) == 1
    assert (out / "a.nrrd").is_symlink()


def test_cleaning_a_half_written_file_touches_only_that_outputs_partials(tmp_path):
    from hrinet.core.atomic import remove_stale_partials

    (tmp_path / ".sa.nrrd.notes.partial").write_text("mine")
    (tmp_path / ".s[ab].nrrd.x1.partial.nrrd").write_text("left by a kill")
    (tmp_path / "..s[ab].nrrd.x1.partial.nrrd.y2.partial.nrrd").write_text("left by a kill")
    assert remove_stale_partials(tmp_path / "s[ab].nrrd") == 2
    assert (tmp_path / ".sa.nrrd.notes.partial").read_text() == "mine"


def test_out_below_a_file_is_one_line(folder, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HRINetError, match="cannot make the --out folder"):
        main(["--debug", "batch", str(folder), "--out", str(tmp_path / "f" / "x"), *LINEAR])


def test_a_dicom_output_folders_fingerprint_covers_every_entry_subfolders_too(tmp_path):
    from hrinet.core.dicom_export import folder_sha256

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "1.dcm").write_bytes(b"x")
    before = folder_sha256(tmp_path / "s")
    (tmp_path / "s" / "my-annotations").mkdir()
    assert folder_sha256(tmp_path / "s") != before
    (tmp_path / "s" / "my-annotations" / "roi.json").write_text("precious")
    changed = folder_sha256(tmp_path / "s")
    (tmp_path / "s" / "my-annotations" / "roi.json").write_text("other")
    assert folder_sha256(tmp_path / "s") != changed
