"""The hrinet command line: results, refusals, and never a traceback."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hrinet.cli import main
from hrinet.core.io import read_volume, write_volume
from hrinet.core.phantom import make_phantom


def run(*args):
    """Run the real console entry point in a subprocess (what a user sees)."""
    return subprocess.run([sys.executable, "-m", "hrinet.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def thick(tmp_path, phantom):
    return write_volume(phantom, tmp_path / "thick.nrrd")


def test_interpolate_writes_the_upsampled_volume(tmp_path, thick, phantom):
    out = tmp_path / "iso.nrrd"
    r = run("interpolate", thick, out, "--factor", 3, "--method", "linear")
    assert r.returncode == 0, r.stderr
    vol = read_volume(out)
    assert vol.array.shape[0] == (phantom.array.shape[0] - 1) * 3 + 1
    assert vol.spacing[2] == pytest.approx(2.0)
    assert "wrote" in r.stdout


def test_interpolate_with_spacing_picks_the_factor(tmp_path, thick):
    out = tmp_path / "iso.nrrd"
    assert main(["interpolate", str(thick), str(out), "--spacing", "2", "--method", "cubic"]) == 0
    assert read_volume(out).spacing[2] == pytest.approx(2.0)


def _assert_one_line_error(r, *fragments):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("hrinet: error:")
    for f in fragments:
        assert f in lines[0]


@pytest.mark.parametrize("extra, fragment", [
    (["--factor", "0"], "not positive"), (["--factor", "-3"], "not positive"),
    (["--factor", "1.5"], "whole number"), (["--spacing", "100"], "not finer"),
])
def test_bad_factor_or_spacing_exits_with_one_line_and_no_output(tmp_path, thick, extra, fragment):
    out = tmp_path / "o.nrrd"
    r = run("interpolate", thick, out, *extra, "--method", "linear")
    _assert_one_line_error(r, fragment)
    assert not out.exists()


def test_missing_input(tmp_path):
    out = tmp_path / "o.nrrd"
    r = run("interpolate", tmp_path / "nope.nrrd", out)
    _assert_one_line_error(r, "does not exist")
    assert not out.exists()


def test_single_slice_input(tmp_path, phantom):
    p = write_volume(phantom.with_array(phantom.array[:1].copy()), tmp_path / "one.nrrd")
    r = run("interpolate", p, tmp_path / "o.nrrd", "--factor", 2, "--method", "linear")
    _assert_one_line_error(r, "at least 2 slices")


def test_out_equal_to_in_is_refused_even_with_overwrite(thick):
    before = thick.read_bytes()
    r = run("interpolate", thick, thick, "--factor", 2, "--overwrite")
    _assert_one_line_error(r, "is the input")
    assert thick.read_bytes() == before


def test_existing_output_is_kept_unless_overwrite(tmp_path, thick):
    out = tmp_path / "o.nrrd"
    out.write_bytes(b"keep me")
    r = run("interpolate", thick, out, "--factor", 2, "--method", "linear")
    _assert_one_line_error(r, "--overwrite")
    assert out.read_bytes() == b"keep me"
    r = run("interpolate", thick, out, "--factor", 2, "--method", "linear", "--overwrite")
    assert r.returncode == 0 and read_volume(out).array.shape[0] == 23


def test_usage_errors_are_one_line_too(tmp_path):
    r = run("interpolate")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_info_prints_geometry(thick):
    r = run("info", thick)
    assert r.returncode == 0
    assert "64 x 64 x 12" in r.stdout and "int16" in r.stdout


def test_evaluate_writes_csv_table_and_figure(tmp_path, phantom):
    from hrinet.core.phantom import make_phantom

    thin = write_volume(make_phantom(size=(48, 48, 25), spacing=(3, 3, 1.5)), tmp_path / "thin.nrrd")
    out = tmp_path / "ev"
    r = run("evaluate", thin, "--factors", "2,4", "--methods", "linear,cubic", "--out", out)
    assert r.returncode == 0, r.stderr
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[0]["volume"] == "thin"
    assert (out / "metrics.md").read_text().startswith("| volume")
    png = out / "figure-thin-x4.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_records_what_it_scored_and_never_mixes_with_an_earlier_run(tmp_path):
    import json

    from hrinet.core.phantom import make_phantom
    from hrinet.core.volume import voxel_sha256

    vol = make_phantom(size=(48, 48, 25), spacing=(3, 3, 1.5))
    thin = write_volume(vol, tmp_path / "thin.nrrd")
    out = tmp_path / "ev"
    assert main(["evaluate", str(thin), "--factors", "2,4", "--methods", "linear,hrinet",
                 "--device", "cpu", "--out", str(out)]) == 0
    record = json.loads((out / "provenance.json").read_text())
    assert record["factors"] == [2, 4] and record["protocol"] == "decimate"
    assert record["weights"]["hrinet"]["file"] == "hrinet-default.safetensors"
    assert len(record["weights"]["hrinet"]["sha256"]) == 64
    assert record["volumes"] == [{"name": "thin", "voxel_sha256": voxel_sha256(vol.array)}]
    r = run("evaluate", thin, "--factors", "2", "--methods", "linear", "--out", out)
    assert r.returncode == 2 and "--overwrite" in r.stderr  # refused; nothing replaced
    assert (out / "figure-thin-x4.png").exists()
    r = run("evaluate", thin, "--factors", "2", "--methods", "linear", "--out", out,
            "--overwrite")
    assert r.returncode == 0 and not (out / "figure-thin-x4.png").exists()  # no stale figure


def test_models_lists_the_paper_variants_under_their_own_heading_with_quality(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "default:" and "hrinet-flow" in lines[1] and "x4 PSNR_HU" in lines[1]
    paper = lines.index("paper variants (research):")
    assert lines.index("ours:") < paper
    rows = [ln.split() for ln in lines[paper + 1:] if not ln.strip().startswith("--")]
    # each row: the model's name (as in a release's catalog), then its variant
    assert [r[1] for r in rows] == ["ae", "acai", "hrinet-patchgan", "hrinet-mse",
                                    "hrinet-perceptual"]
    assert [r[0] for r in rows] == [f"hrinet-variant-{r[1]}" for r in rows]
    assert out.count("--weights ") == len(rows) + 2  # each one usable as shown
    # the columns line up: in every model row the variant starts at the same place
    model_rows = [ln for ln in lines if ln.startswith("  ") and not ln.strip().startswith("--")]
    assert len({ln.index(" " + ln.split()[1] + " ", len(ln.split()[0]) + 2)
                for ln in model_rows}) == 1


def test_a_download_in_a_log_counts_megabytes_not_bs(capsys):
    from hrinet.cli.progress import BYTE, PlainProgress

    PlainProgress(10 * 2 ** 20, "downloading m.safetensors", BYTE).update(5 * 2 ** 20)
    assert capsys.readouterr().err.startswith("downloading m.safetensors: 5.0/10.0 MB (50%")


def test_version_names_the_package_version():
    import hrinet

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"hrinet {hrinet.__version__}"


def test_the_default_model_answers_to_its_variant_name_too(tmp_path, thick):
    a, b = tmp_path / "a.nrrd", tmp_path / "b.nrrd"
    assert main(["interpolate", str(thick), str(a), "--factor", "2", "--device", "cpu"]) == 0
    assert main(["interpolate", str(thick), str(b), "--factor", "2", "--device", "cpu",
                 "--method", "hrinet-flow"]) == 0
    assert (read_volume(a).array == read_volume(b).array).all()


def test_help_lists_every_method_and_evaluate_scores_the_shipped_model_by_default(capsys):
    from hrinet.cli.app import build_parser, default_evaluation_methods
    from hrinet.methods import available_methods

    interpolate = build_parser()._subparsers._group_actions[0].choices["interpolate"]
    method = next(a for a in interpolate._actions if a.dest == "method")
    assert all(m in method.help for m in available_methods())
    assert default_evaluation_methods() == ["linear", "cubic", "flow", "hrinet"]


def test_validation_is_reported_in_words_not_as_a_dict():
    from hrinet.training.validation import describe_validation

    text = describe_validation({"chest.nrrd/x2/model_psnr_hu": 48.486,
                                "chest.nrrd/x2/model_ssim_win": 0.95,
                                "chest.nrrd/x2/linear_psnr_hu": 43.8})
    assert text == "chest.nrrd x2 48.49 dB (linear 43.80)"


def test_progress_jsonl_prints_machine_readable_events_beside_the_human_lines(tmp_path, thick):
    import json

    r = run("--progress", "jsonl", "interpolate", thick, tmp_path / "o.nrrd", "--factor", 2,
            "--method", "linear")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "wrote" and "progress" in kinds
    last = [e for e in events if e["event"] == "progress"][-1]
    assert last["done"] == last["total"] == events[0]["input_slices"] - 1
    r = run("--progress", "jsonl", "interpolate", tmp_path / "missing.nrrd", tmp_path / "p.nrrd")
    error = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 2 and error["event"] == "error" and "does not exist" in error["message"]


def test_every_option_of_every_command_says_its_default():
    from hrinet.cli.app import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for name, parser in commands.items():
        for action in parser._actions:
            if not action.option_strings or action.dest == "help" or action.nargs == 0 or \
                    action.required:
                continue  # positionals, --help, on/off flags and required options
            assert "default" in (action.help or ""), f"hrinet {name} {action.option_strings[0]}"


@pytest.mark.slow  # 11-15 s on two busy workers
def test_evaluate_and_train_say_which_model_runs_on_which_device(tmp_path, phantom):
    """Two weight files must not give indistinguishable runs: each command names the model,
    its weights, the device and the precision before it starts."""
    import subprocess
    import sys

    from hrinet.core.io import write_volume
    from hrinet.core.phantom import make_phantom

    src = write_volume(phantom, tmp_path / "v.nrrd")
    r = subprocess.run([sys.executable, "-m", "hrinet.cli", "evaluate", str(src), "--factors",
                        "2", "--methods", "linear,hrinet", "--device", "cpu", "--precision",
                        "fp32", "--out", str(tmp_path / "e")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "hrinet: model hrinet-flow (hrinet-default.safetensors) on cpu, fp32" in r.stderr
    data = write_volume(make_phantom(size=(64, 64, 30), spacing=(1, 1, 2), seed=1),
                        tmp_path / "t.nrrd")
    r = subprocess.run([sys.executable, "-m", "hrinet.cli", "train", "--data", str(data),
                        "--iterations", "1", "--crop", "64", "--batch", "1", "--device", "cpu",
                        "--val-every", "0", "--out", str(tmp_path / "run")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "training hrinet-flow on cpu" in r.stdout


def test_main_called_in_process_leaves_the_callers_signal_handlers_as_they_were(tmp_path,
                                                                                phantom):
    import signal

    from hrinet.cli import main
    from hrinet.core.io import write_volume

    src = write_volume(phantom, tmp_path / "v.nrrd")
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    assert main(["info", str(src)]) == 0
    assert main(["adapt", str(src), "--out", str(tmp_path / "a")]) == 2  # too few slices
    assert {s: signal.getsignal(s) for s in before} == before


def test_quality_high_averages_mirrored_views_and_the_output_says_so(tmp_path, thick, capsys):
    from hrinet.core.io import read_provenance
    from hrinet.methods import create_interpolator
    from hrinet.methods.engine import upsample_z

    std, high = tmp_path / "std.nrrd", tmp_path / "high.nrrd"
    common = ["--factor", "3", "--device", "cpu", "--precision", "fp32", "--thickness", "0"]
    assert main(["interpolate", str(thick), str(std), *common]) == 0
    assert main(["interpolate", str(thick), str(high), *common, "--quality", "high"]) == 0
    err = capsys.readouterr().err
    assert "4 mirrored views averaged (--quality high)" in err
    a, b = read_volume(std).array, read_volume(high).array
    np.testing.assert_array_equal(a[::3], b[::3])  # acquired slices kept as they were
    assert not np.array_equal(a, b)  # the flow model is not mirror-symmetric: the views differ
    # the same as the library's views over the same plan (nothing else changed)
    interp = create_interpolator("hrinet", device="cpu", precision="fp32", quality="high")
    want = upsample_z(read_volume(thick), factor=3, interpolator=interp, thickness=0.0)
    np.testing.assert_array_equal(b, want.array)
    assert read_provenance(high)["model"].endswith(", 4 mirrored views averaged")
    assert "mirrored" not in read_provenance(std)["model"]


def test_quality_with_a_classical_method_is_a_warning_not_four_runs(tmp_path, thick):
    r = run("interpolate", thick, tmp_path / "o.nrrd", "--factor", 2, "--method", "cubic",
            "--quality", "high")
    assert r.returncode == 0, r.stderr
    assert "--quality is not used by the cubic method" in r.stderr
    # a cohort says so too, once; an evaluation of classical methods only records standard
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    shutil.copy(thick, cohort / "a.nrrd")
    r = run("batch", cohort, "--out", tmp_path / "iso", "--factor", 2, "--method", "cubic",
            "--quality", "high")
    assert r.returncode == 0 and r.stderr.count("--quality is not used by the cubic") == 1, \
        r.stderr
    r = run("evaluate", thick, "--factors", 2, "--methods", "linear,cubic", "--quality", "high",
            "--out", tmp_path / "ev")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "ev" / "provenance.json").read_text())["quality"] == "standard"


@pytest.mark.parametrize("command", ["train", "evaluate", "export"])
def test_progress_jsonl_reports_progress_and_what_was_written_for_long_commands(
        tmp_path, command):
    """Not only interpolate and batch: train (and adapt, as train), evaluate and export emit
    their progress and the file they wrote, so a program can follow them."""
    import json

    thin = tmp_path / "thin.nrrd"
    write_volume(make_phantom(size=(72, 72, 12), spacing=(1, 1, 1), seed=5), thin)
    run_dir = tmp_path / "run"
    argv = {
        "train": ["train", "--variant", "ae", "--data", thin, "--iterations", 2, "--crop", 64,
                  "--batch", 1, "--device", "cpu", "--out", run_dir],
        "evaluate": ["evaluate", thin, "--factors", 2, "--methods", "linear,cubic", "--out",
                     tmp_path / "ev"],
        "export": ["export", run_dir / "checkpoint.safetensors", tmp_path / "w.safetensors"],
    }
    if command == "export":
        assert run(*argv["train"]).returncode == 0
    r = run("--progress", "jsonl", *argv[command])
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]  # stdout: events only
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "wrote" and os.path.exists(events[-1]["path"])
    if command != "export":
        last = [e for e in events if e["event"] == "progress"][-1]
        assert last["done"] == last["total"] > 0


def test_export_of_a_folder_without_a_checkpoint_names_the_folder_and_what_to_give(tmp_path):
    r = run("export", tmp_path, tmp_path / "w.safetensors")
    _assert_one_line_error(r, f"{tmp_path.resolve()} holds no checkpoint.safetensors; name a "
                              "training run's folder")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    r = run("export", tmp_path / "junk.safetensors", tmp_path / "w.safetensors")
    _assert_one_line_error(r, "is damaged or not an HRINet training checkpoint; name the "
                              "checkpoint.safetensors")
    assert not (tmp_path / "w.safetensors").exists()


def test_export_refuses_a_missing_folder_like_interpolate(tmp_path):
    (tmp_path / "checkpoint.safetensors").write_bytes(b"unread: the output is checked first")
    r = run("export", tmp_path, tmp_path / "missing" / "w.safetensors")
    _assert_one_line_error(r, f"folder {tmp_path / 'missing'} does not exist")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("method, warned", [("hrinet", True), ("linear", False)])
def test_a_gap_beyond_what_the_model_was_measured_on_is_said(tmp_path, method, warned):
    src = tmp_path / "far.nrrd"
    write_volume(make_phantom(size=(32, 32, 3), spacing=(1, 1, 70)), src)  # 70 mm gaps
    r = run("interpolate", src, tmp_path / "o.nrrd", "--factor", 2, "--method", method)
    assert r.returncode == 0, r.stderr
    assert ("beyond what the learned model was measured on" in r.stderr) == warned
    if warned:  # hrinet info's plan line (the default method, isotropic: x13) says it too
        write_volume(make_phantom(size=(16, 16, 3), spacing=(1, 1, 13)), tmp_path / "x13.nrrd")
        assert "(warning: x13 across 13 mm gaps is beyond" in run("info", tmp_path /
                                                                  "x13.nrrd").stdout
