"""The reliability issue's low items: each message says what is true, in one line, found before
any work; nothing is left behind that a later command could pick up."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import cli, one_line_error
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.io import read_volume, write_volume
from hrinet.core.phantom import make_phantom
from hrinet.evaluation.evaluate import decimate, ordinal
from hrinet.methods.planning import make_plan, resolve_factor, resolve_thickness


def test_weights_that_are_a_folder_or_a_device_are_called_so_not_missing(tmp_path):
    from hrinet.learned.weights import read_metadata

    with pytest.raises(HRINetError, match="is a folder; give the .safetensors file in it"):
        read_metadata(tmp_path)
    with pytest.raises(HRINetError, match="not a regular file"):
        read_metadata("/dev/zero")


def test_a_target_spacing_that_is_no_number_or_absurdly_fine_is_one_line():
    with pytest.raises(HRINetError, match="is not a number of mm"):
        resolve_factor(2.5, 0.7, target_spacing=float("inf"))
    with pytest.raises(HRINetError, match="would need a factor above 64"):
        resolve_factor(2.5, 0.7, target_spacing=1e-320)  # was an internal error (overflow)


def test_messages_count_in_english():
    assert [ordinal(k) for k in (1, 2, 3, 4, 11, 12, 13, 21, 22, 102)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "102nd"]
    with pytest.raises(HRINetError, match="every 2nd slice"):  # was "2th"
        decimate(make_phantom(size=(8, 8, 2), spacing=(1, 1, 1)), 2)


def test_a_thickness_at_the_limit_of_a_rounded_spacing_is_accepted_and_minus_zero_is_zero():
    assert resolve_thickness(2.4999998, 25.0)[0] == 25.0  # the limit is 10 spacings
    thickness, _source, ratio = resolve_thickness(2.5, -0.0)
    assert str(thickness) == "0.0" and ratio == 0
    assert "-0" not in make_plan(10, (1, 1, 2.5), 2, None, "linear", -0.0).describe()


def test_a_line_break_in_a_path_stays_within_the_one_line(tmp_path):
    r = cli("info", tmp_path / "we\nird.nrrd")
    one_line_error(r, "we\\nird.nrrd does not exist")
    assert len(r.stderr.strip().splitlines()) == 1


def test_nan_voxels_are_refused_before_the_plan_is_shown_or_a_model_loaded(tmp_path, phantom):
    array = phantom.array.astype(np.float32)
    array[2, 3, 4] = np.nan
    src = tmp_path / "nan.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(src))
    r = cli("interpolate", src, tmp_path / "o.nrrd")
    one_line_error(r, "NaN or infinite voxels")
    assert " with hrinet" not in r.stderr and "model" not in r.stderr


def test_evaluate_checks_methods_factors_and_names_before_it_writes(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")
    for methods, factors, fragment in ((",", "2", "--methods names no method"),
                                       ("linear,nope", "2", "unknown method 'nope'"),
                                       ("linear", "50", "every 50th slice")):
        out = tmp_path / f"e-{len(fragment)}"
        one_line_error(cli("evaluate", src, "--methods", methods, "--factors", factors,
                           "--out", out), fragment)
        assert not out.exists()  # no empty --out left behind
    (tmp_path / "b").mkdir()
    write_volume(phantom, tmp_path / "b" / "v.nrrd")
    r = cli("evaluate", src, tmp_path / "b" / "v.nrrd", "--methods", "linear,linear",
            "--factors", "2,2", "--out", tmp_path / "e")
    assert r.returncode == 0, r.stderr
    rows = (tmp_path / "e" / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == 2  # one row per volume: the factor and the method given twice, once
    assert {p.name for p in (tmp_path / "e").glob("figure-*")} == {"figure-v-x2.png",
                                                                   "figure-v-2-x2.png"}


def test_a_killed_runs_hidden_partial_file_is_removed_by_the_next_run(tmp_path, phantom,
                                                                       left_by_a_kill):
    src = write_volume(phantom, tmp_path / "v.nrrd")
    stale = left_by_a_kill(tmp_path, "o.nrrd", ".partial.nrrd")  # a SIGKILLed atomic write's
    stale.write_bytes(b"half a volume")
    users = tmp_path / ".o.nrrd.x1y2z3ab.partial.nrrd"  # named alike, but no writer's tag
    users.write_bytes(b"the user's")
    r = cli("interpolate", src, tmp_path / "o.nrrd", "--method", "linear", "--factor", "2")
    assert r.returncode == 0 and not stale.exists()
    assert users.read_bytes() == b"the user's"


@pytest.mark.parametrize("compress", [True, False])
def test_a_cut_metaimage_says_cut_off_not_no_such_file(tmp_path, compress):
    image = sitk.GetImageFromArray(make_phantom(size=(32, 32, 8), spacing=(1, 1, 2)).array)
    sitk.WriteImage(image, str(tmp_path / "v.mha"), useCompression=compress)
    data = (tmp_path / "v.mha").read_bytes()
    (tmp_path / "cut.mha").write_bytes(data[: len(data) - len(data) // 3])
    with pytest.raises(HRINetError, match="is cut off: its header describes .* bytes"):
        read_volume(tmp_path / "cut.mha")
    assert read_volume(tmp_path / "v.mha").array.shape == (8, 32, 32)


def test_stop_at_names_the_checkpoint_it_wrote(tmp_path):
    src = write_volume(make_phantom(size=(64, 64, 30), spacing=(1, 1, 2), seed=1),
                       tmp_path / "t.nrrd")
    r = cli("train", "--data", src, "--iterations", "5", "--stop-at", "2", "--crop", "64",
            "--batch", "1", "--device", "cpu", "--val-every", "0", "--from-scratch", "--out",
            tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert "stopped at step 2: wrote" in r.stdout and "continue with --resume" in r.stdout
    assert "checkpoint.json" not in r.stdout


def test_a_stopped_adaptation_says_so_and_no_unguarded_weights_stay_behind(tmp_path):
    from hrinet.training.adapt import adapt
    from hrinet.training.checkpoint import CHECKPOINT, PREVIOUS

    thick = make_phantom(size=(64, 64, 26), spacing=(1, 1, 4), seed=1)
    with pytest.raises(Cancelled, match="adaptation stopped; nothing was kept"):
        adapt(thick, tmp_path / "a", iterations=50, device="cpu", cancel=lambda: True, log=None)
    assert not (tmp_path / "a" / CHECKPOINT).exists()
    adapt(thick, tmp_path / "b", iterations=2, device="cpu", log=None)
    for name in (CHECKPOINT, PREVIOUS):  # `hrinet export` could extract the unguarded weights
        assert not (tmp_path / "b" / name).exists()


def test_adapt_out_naming_a_file_is_one_line_and_the_file_untouched(tmp_path):
    src = write_volume(make_phantom(size=(64, 64, 26), spacing=(1, 1, 4), seed=1),
                       tmp_path / "t.nrrd")
    (tmp_path / "afile").write_text("the user's")
    one_line_error(cli("adapt", src, "--out", tmp_path / "afile"), "--out")
    assert (tmp_path / "afile").read_text() == "the user's"


def test_output_piped_into_a_reader_that_stops_early_is_no_error(tmp_path, phantom):
    """`hrinet info x | head -1`: the reader closing the pipe is no internal error."""
    import subprocess
    import sys

    src = write_volume(phantom, tmp_path / "v.nrrd")
    proc = subprocess.Popen([sys.executable, "-m", "hrinet.cli", "info", str(src)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(60) in (0, 141) and "error" not in err, err
