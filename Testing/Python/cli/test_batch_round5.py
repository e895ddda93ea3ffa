"""A fifth adversarial round on ``hrinet batch``, each finding now a specification: bad settings
(fp16 off a CUDA GPU, weights that are no .safetensors file, a factor beyond the shared cap) are
refused before any work and before --out is made; a manifest output no writer supports is
refused naming its line; a second input tree into one --out is refused, the first still
resuming; a user's volume at an output name is left alone and its row says so; ``--progress
jsonl`` reports each case's plan and written file as ``hrinet interpolate`` does."""

from __future__ import annotations

import json

import pytest
from hrinet.cli import main
from hrinet.core.constants import MAX_FACTOR
from hrinet.core.events import EVENTS
from hrinet.methods.registry import learned_available

needs_torch = pytest.mark.skipif(not learned_available(), reason="needs PyTorch")


def _one_line_error(capsys, fragment: str) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("hrinet: error:")]
    assert len(errors) == 1 and fragment in errors[0] and "Traceback" not in err, err
    return errors[0]


# ---- 1. bad settings: refused before any work and before --out is made ----------------------

@needs_torch
@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_fp16_off_a_cuda_gpu_is_refused_before_out_is_made(cohort_folder, tmp_path, capsys,
                                                           device):
    import torch

    if device == "auto" and torch.cuda.is_available():
        pytest.skip("auto picks the GPU here, where fp16 runs")
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), "--factor", "2", "--method",
                 "hrinet", "--precision", "fp16", "--device", device]) == 2
    _one_line_error(capsys, "precision fp16 runs on a CUDA GPU only, not on cpu")
    assert not out.exists()


@pytest.mark.parametrize("name, content, fragment", [
    ("w.bin", b"\x80\x04junk", "--weights {w} is not a .safetensors file"),
    ("model.pt", b"PK\x03\x04", "--weights {w} is not a .safetensors file"),
    ("missing.safetensors", None, "--weights {w} does not exist"),
    pytest.param("w.safetensors", b"junk", "{w} is not a safetensors file",
                 marks=needs_torch),
])
def test_weights_that_are_no_safetensors_file_are_refused_before_out_is_made(
        cohort_folder, tmp_path, capsys, name, content, fragment):
    weights = tmp_path / name
    if content is not None:
        weights.write_bytes(content)
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), "--factor", "2", "--weights",
                 str(weights)]) == 2
    _one_line_error(capsys, fragment.format(w=weights))
    assert not out.exists()


def test_a_factor_beyond_the_cap_is_refused_naming_it_by_batch_and_interpolate(
        cohort_folder, tmp_path, capsys):
    out = tmp_path / "out"
    too_large = str(MAX_FACTOR + 1)
    assert main(["batch", str(cohort_folder), "--out", str(out), "--factor", too_large,
                 "--method", "linear"]) == 2
    line = _one_line_error(capsys, f"--factor {too_large} is above the largest factor, "
                                   f"{MAX_FACTOR}")
    assert f"give an integer from 2 to {MAX_FACTOR}" in line
    assert not out.exists()
    one = tmp_path / "one.nrrd"
    assert main(["interpolate", str(cohort_folder / "a.nrrd"), str(one), "--factor", too_large,
                 "--method", "linear"]) == 2
    _one_line_error(capsys, f"factor {too_large} is above the largest factor, {MAX_FACTOR}")
    assert not one.exists()
    assert main(["batch", str(cohort_folder), "--out", str(out), "--factor", str(MAX_FACTOR),
                 "--method", "linear"]) == 0  # the cap itself runs


# ---- 2. a manifest output no writer supports ---------------------------------------------------

def test_a_manifest_output_no_writer_supports_is_refused_naming_its_line(cohort_folder,
                                                                         tmp_path, capsys,
                                                                         linear):
    manifest = tmp_path / "m.csv"
    manifest.write_text("input,output\nvol/a.nrrd,res/a.nrrd\nvol/b.nrrd,res/b.txt\n")
    log = tmp_path / "log"
    assert main(["batch", str(manifest), "--out", str(log), *linear]) == 2
    line = _one_line_error(capsys, f"manifest {manifest} line 3: output 'res/b.txt' has an "
                                   "extension no writer supports")
    assert ".nrrd, .nii, .nii.gz, .mha" in line and ".partial" not in line
    assert not log.exists() and not (tmp_path / "res").exists()


# ---- 3. two input trees into one --out -------------------------------------------------------

def test_a_second_input_into_the_same_out_is_refused_and_the_first_still_resumes(
        cohort_folder, tmp_path, make_volume, capsys, read_rows, linear):
    out = tmp_path / "out"
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    other = tmp_path / "other"
    make_volume(other / "a.nrrd", seed=9)  # same name, another scan
    make_volume(other / "c.nrrd", seed=10)
    capsys.readouterr()
    assert main(["batch", str(other), "--out", str(out), *linear]) == 2
    _one_line_error(capsys, f"results table {out / 'results.csv'} in --out was written for "
                            f"the input {cohort_folder}, not {other}; give another --out")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing changed
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 0
    assert "0 done, 2 already done" in capsys.readouterr().out
    assert {r["input_root"] for r in read_rows(out / "results.csv")} == {str(cohort_folder)}


# ---- 4. a user's volume at an output name ------------------------------------------------------

def test_a_users_volume_at_an_output_name_is_left_alone_and_its_row_says_so(
        cohort_folder, tmp_path, make_volume, capsys, read_rows, linear):
    out = tmp_path / "out"
    mine = make_volume(out / "a.nrrd", seed=5)
    kept = mine.read_bytes(), mine.stat().st_mtime_ns
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 1
    row = {r["input"]: r for r in read_rows(out / "results.csv")}["a.nrrd"]
    assert row["status"] == "failed"
    assert row["message"].startswith(f"{mine} exists and is not an output of this batch")
    assert "left alone, not replaced" in row["message"]
    assert "left alone, not replaced" in capsys.readouterr().err
    assert (mine.read_bytes(), mine.stat().st_mtime_ns) == kept
    assert main(["batch", str(cohort_folder), "--out", str(out), *linear]) == 1  # every run
    assert (mine.read_bytes(), mine.stat().st_mtime_ns) == kept


# ---- 5. --progress jsonl: plan and wrote for each case ------------------------------------------

def test_jsonl_reports_each_cases_plan_and_written_file_as_interpolate_does(
        cohort_folder, tmp_path, capsys, linear):
    one = tmp_path / "one.nrrd"
    assert main(["--progress", "jsonl", "interpolate", str(cohort_folder / "a.nrrd"), str(one),
                 *linear]) == 0
    single = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    out = tmp_path / "out"
    assert main(["--progress", "jsonl", "batch", str(cohort_folder), "--out", str(out),
                 *linear]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {e["event"] for e in events} <= set(EVENTS)  # no new names
    plans = [e for e in events if e["event"] == "plan"]
    wrote = [e["path"] for e in events if e["event"] == "wrote"]
    assert [p["description"].split(":")[0] for p in plans] == ["a.nrrd", "b.nrrd"]
    (plan_one,) = [e for e in single if e["event"] == "plan"]
    assert all(set(p) == set(plan_one) for p in plans)  # the same fields
    assert plans[0]["output_slices"] == plan_one["output_slices"] == 9
    assert wrote == [str(out / "a.nrrd"), str(out / "b.nrrd"), str(out / "results.csv")]
    order = [(e["event"], e.get("input") or e.get("path", "")) for e in events
             if e["event"] in ("wrote", "case")]
    assert order[:2] == [("wrote", str(out / "a.nrrd")), ("case", "a.nrrd")]  # before its case
    assert main(["--progress", "jsonl", "batch", str(cohort_folder), "--out", str(out),
                 *linear]) == 0  # nothing to do: no plan, no output written
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in again if e["event"] in ("plan", "wrote")] == ["wrote"]
