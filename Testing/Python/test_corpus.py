"""The corpus recipe: every series traceable, no patient across splits, built as recorded."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_dicom_series

tomllib = pytest.importorskip("tomllib")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "data"))
import build_corpus  # noqa: E402

RECIPE = build_corpus.load_recipe()
FIELDS = ("name", "split", "region", "vendor", "kernel", "spacing_mm", "thickness_mm", "pixel_mm",
          "padding", "licence", "commercial_use", "patient_id", "study_uid", "source",
          "voxel_sha256")


def test_every_series_records_what_it_is_and_where_it_comes_from():
    for s in RECIPE:
        missing = [f for f in FIELDS if f not in s]
        assert not missing, f"{s.get('name')}: {missing}"
        assert re.fullmatch(r"[0-9a-f]{64}", s["voxel_sha256"]), s["name"]
        assert s["split"] in ("train", "validation", "demo", build_corpus.EXCLUDED_SPLIT)
        if s["source"]["kind"] == "git":
            assert re.fullmatch(r"[0-9a-f]{40}", s["source"]["commit"]), s["name"]
    names = [s["name"] for s in RECIPE]
    assert len(names) == len(set(names))


def test_no_patient_or_study_spans_two_splits():
    for key in ("patient_id", "study_uid"):
        seen = {}
        for s in RECIPE:
            if s[key]:
                assert seen.setdefault(s[key], s["split"]) == s["split"], \
                    f"{key} {s[key]} is in {seen[s[key]]} and {s['split']} ({s['name']})"


def test_nothing_kept_for_independent_evaluation_and_nothing_non_commercial_is_trained_on():
    for s in RECIPE:
        if s["split"] in ("train", "validation", "demo"):
            assert build_corpus.excluded_source(s) is None, s["name"]
            assert s["source"].get("repo") not in build_corpus.EXCLUDED_REPOS
            assert "RICORD" not in (s["name"] + s["licence"] + str(s["source"])).upper()
        if s["split"] == "train":
            assert s["commercial_use"], f"{s['name']}: {s['licence']}"


def test_no_train_or_validation_series_comes_from_totalsegmentators_test_files():
    used = [s for s in RECIPE if s["split"] in ("train", "validation")]
    assert used
    for s in used:
        assert "totalsegmentator" not in str(s["source"]).lower() + s["licence"].lower(), s["name"]
    # the series the shipped weights saw stay recorded, for their provenance, in their own split
    excluded = {s["name"] for s in RECIPE if s["split"] == build_corpus.EXCLUDED_SPLIT}
    assert {"heart-1p5mm", "chest-1p5mm", "torso-3mm", "abdomen-2mm-dicom"} <= excluded
    for s in RECIPE:
        if s["name"] in excluded:
            assert build_corpus.excluded_source(s), s["name"]


@pytest.mark.parametrize("source", [
    {"kind": "git", "repo": "wasserth/TotalSegmentator", "commit": "0" * 40, "path": "tests"},
    {"kind": "git", "repo": "Wasserth/totalsegmentator", "commit": "0" * 40, "path": "tests"},
    {"kind": "shared", "file": "x.nrrd", "origin": "wasserth/TotalSegmentator tests/x (resampled)"},
    {"kind": "git", "repo": "neurolabusc/dcm_qa_ct", "commit": "0" * 40, "path": "."},
    {"kind": "git", "repo": "someone/ct", "commit": "0" * 40, "path": "MIDRC-RICORD-1A/x"},
])
def test_a_train_or_validation_series_from_an_excluded_source_is_refused(tmp_path, source):
    series = {"name": "x", "split": "train", "licence": "", "source": source,
              "voxel_sha256": "0" * 64}
    assert build_corpus.excluded_source(series)
    with pytest.raises(build_corpus.HRINetError, match="kept for independent evaluation"):
        build_corpus.build_one(series, tmp_path, tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_excluded_series_are_never_listed_nor_built_unless_asked(tmp_path, capsys):
    excluded = [s["name"] for s in RECIPE if s["split"] == build_corpus.EXCLUDED_SPLIT]
    for name in excluded:
        (tmp_path / f"{name}.nrrd").write_bytes(b"")
    for split in ("train", "validation", "demo"):
        build_corpus.main(["--out", str(tmp_path), "--list", split])
        assert not any(name in capsys.readouterr().out for name in excluded)
    build_corpus.main(["--sources", str(tmp_path / "none"), "--shared", str(tmp_path / "none"),
                       "--out", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert all(f"excluded {name}: " in out for name in excluded)


def _git_repo(tmp_path: Path, patient_name: str = "") -> tuple:
    repo = tmp_path / "src" / "someone+ct"
    series = repo / "ct"
    series.parent.mkdir(parents=True)
    write_dicom_series(series, [float(z) for z in range(6)], uid="1.2.3.9",
                       tags={"0010|0010": patient_name} if patient_name else None)
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True,  # noqa: E731
                                    capture_output=True, text=True).stdout.strip()
    run("init", "-q")
    run("add", ".")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ct")
    return repo, run("rev-parse", "HEAD")


def _recipe(tmp_path: Path, commit: str, digest: str) -> Path:
    r = tmp_path / "corpus.toml"
    r.write_text(f'''[[series]]
name = "tiny"
split = "train"
source = {{ kind = "git", repo = "someone/ct", commit = "{commit}", path = "ct" }}
voxel_sha256 = "{digest}"
''')
    return r


def test_a_series_builds_from_its_repository_at_its_commit_and_is_verified(tmp_path, capsys):
    _, commit = _git_repo(tmp_path)
    args = ["--sources", str(tmp_path / "src"), "--shared", str(tmp_path / "none"),
            "--out", str(tmp_path / "corpus")]
    build_corpus.main(args + ["--recipe", str(_recipe(tmp_path, commit, "0" * 64)), "--digests"])
    digest = capsys.readouterr().out.split()[2]
    assert build_corpus.main(args + ["--recipe", str(_recipe(tmp_path, commit, digest))]) == 0
    assert "built tiny" in capsys.readouterr().out
    assert (tmp_path / "corpus" / "tiny.nrrd").is_file()
    # a source whose voxels changed is refused, not silently used
    (tmp_path / "corpus" / "tiny.nrrd").unlink()
    assert build_corpus.main(args + ["--recipe", str(_recipe(tmp_path, commit, "f" * 64))]) == 1
    assert "mismatch tiny" in capsys.readouterr().out


def test_a_series_naming_its_patient_is_refused(tmp_path, capsys):
    _, commit = _git_repo(tmp_path, patient_name="Doe^Jane")
    code = build_corpus.main(["--sources", str(tmp_path / "src"), "--out", str(tmp_path / "c"),
                              "--recipe", str(_recipe(tmp_path, commit, "0" * 64))])
    out = capsys.readouterr().out
    assert code == 1 and "refused tiny: not de-identified (patient name 'Doe^Jane')" in out


def test_missing_sources_are_skipped_with_one_line_each(tmp_path, capsys):
    code = build_corpus.main(["--sources", str(tmp_path), "--shared", str(tmp_path),
                              "--out", str(tmp_path / "c")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert all(line.split()[0] in ("skipped", "excluded") for line in lines[:-1])
    assert len(lines) == len(RECIPE) + 1


def test_list_names_the_built_files_of_a_split_and_says_what_is_not_built(tmp_path, capsys):
    validation = [s["name"] for s in RECIPE if s["split"] == "validation"]
    # the trust issue asked for five; TotalSegmentator's abdomen left for independent evaluation
    assert len(validation) >= 4
    (tmp_path / f"{validation[0]}.nrrd").write_bytes(b"")
    code = build_corpus.main(["--out", str(tmp_path), "--list", "validation"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines() == [str(tmp_path / f"{validation[0]}.nrrd")]
    assert all(name in err for name in validation[1:]) and "build_corpus.py" in err
    for name in validation[1:]:
        (tmp_path / f"{name}.nrrd").write_bytes(b"")
    assert build_corpus.main(["--out", str(tmp_path), "--list", "validation"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(validation)


def test_validation_covers_several_vendors_and_regions():
    validation = [s for s in RECIPE if s["split"] == "validation"]
    assert len({s["vendor"] for s in validation}) >= 2
    # chest, liver (upper abdomen), extremity: the abdomen series is left for independent evaluation
    assert len({s["name"].split("-")[0] for s in validation}) >= 3
