"""Training runs and weights under faults: stops, kills, foreign or edited weights, and every
refusal from the command line in one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import SimpleITK as sitk
import torch
from helpers import cli, one_line_error, write_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume, write_volume
from hrinet.core.phantom import make_phantom


def _train_cmd(data, out, *extra):
    return [sys.executable, "-m", "hrinet.cli", "train", "--data", str(data), "--variant",
            "hrinet-plus", "--iterations", "12", "--crop", "64", "--batch", "2", "--out",
            str(out), "--device", "cpu", "--seed", "4", *extra]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_ends_with_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    data = write_volume(make_phantom(size=(64, 64, 24), spacing=(3, 3, 2)), tmp_path / "d.nrrd")
    r = subprocess.run(_train_cmd(data, tmp_path / "whole"), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    # Checkpoint every step, kill -9 once a few steps are saved.
    proc = subprocess.Popen(_train_cmd(data, tmp_path / "killed", "--checkpoint-minutes", "0"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 200
    while time.time() < deadline and not (tmp_path / "killed" / "checkpoint.safetensors").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "hrinet-plus.safetensors").exists(), "killed too late"
    r = subprocess.run(_train_cmd(data, tmp_path / "killed", "--resume"), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    a = load_file(str(tmp_path / "whole" / "hrinet-plus.safetensors"))
    b = load_file(str(tmp_path / "killed" / "hrinet-plus.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    data = write_volume(make_phantom(size=(64, 64, 24), spacing=(3, 3, 2)), tmp_path / "d.nrrd")
    cmd = _train_cmd(data, tmp_path / "run")
    cmd[cmd.index("12")] = "100000"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 200
    while time.time() < deadline and not (tmp_path / "run" / "log.csv").exists():
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "--resume" in err and "Traceback" not in err
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_stops_a_run_with_workers_cleanly(tmp_path):
    """`timeout`, a job scheduler or a closed terminal signal the process group: the data
    workers leave the stop to the training process, which saves a checkpoint as for Ctrl-C."""

    data = write_volume(make_phantom(size=(64, 64, 24), spacing=(3, 3, 2)), tmp_path / "d.nrrd")
    cmd = _train_cmd(data, tmp_path / "run", "--workers", "1")
    cmd[cmd.index("hrinet-plus")] = "hrinet-flow"
    cmd[cmd.index("12")] = "100000"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 200
    while time.time() < deadline and not (tmp_path / "run" / "log.csv").exists():
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "--resume" in err, err[-1500:]
    assert "internal error" not in err and "Traceback" not in err
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()


def test_init_weights_of_another_variant_are_refused(tmp_path):
    from hrinet.learned.models import Generator, ModelConfig
    from hrinet.learned.weights import save_weights
    from hrinet.training.trainer import TrainConfig, Trainer

    w = save_weights(Generator(ModelConfig.for_variant("acai")), tmp_path / "acai.safetensors", {})
    cfg = TrainConfig(variant="hrinet-plus", init_weights=str(w), crop=64, device="cpu")
    with pytest.raises(HRINetError, match="--init weights are variant acai, not hrinet-plus"):
        Trainer(cfg, tmp_path / "run", volumes=[make_phantom(size=(64, 64, 8))], log=None)


def _flow_weights(tmp_path):
    from hrinet.learned.models import ModelConfig
    from hrinet.learned.networks import build_generator
    from hrinet.learned.weights import save_weights

    return save_weights(build_generator(ModelConfig.for_variant("hrinet-flow")),
                        tmp_path / "w.safetensors", {})


def _edit_sidecar(path, channels):
    import json

    from hrinet.learned.weights import sidecar_of

    side = sidecar_of(path)
    meta = json.loads(side.read_text())
    meta["config"]["channels"] = channels
    side.write_text(json.dumps(meta))


def test_an_edited_sidecar_is_refused_by_the_checksum_it_is_covered_by(tmp_path):
    from hrinet.learned.weights import load_weights

    w = _flow_weights(tmp_path)
    _edit_sidecar(w, [16, 32, 48, 96])
    with pytest.raises(HRINetError, match="sidecar w.json was changed"):
        load_weights(w)


def test_absurd_channel_counts_are_refused_before_any_model_is_built(tmp_path):
    """Even for weights saved before the sidecar checksum existed: shapes are checked first."""
    import json
    import resource

    from hrinet.core.io.atomic import file_sha256
    from hrinet.learned.weights import load_weights, sidecar_of
    from safetensors.torch import load_file, save_file

    w = _flow_weights(tmp_path)
    save_file(load_file(str(w)), str(w), metadata={"format": "hrinet-weights/1"})  # old style
    meta = json.loads(sidecar_of(w).read_text())
    meta["sha256"] = file_sha256(w)
    meta["config"]["channels"] = [40000, 40000, 40000, 40000]  # ~100 GB of parameters
    sidecar_of(w).write_text(json.dumps(meta))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(HRINetError, match="do not fit the hrinet-flow architecture"):
        load_weights(w)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KB


def test_too_few_slices_for_a_training_group_names_an_option_that_exists(phantom):
    from hrinet.training.data import SliceSampler

    with pytest.raises(HRINetError, match="--gaps"):
        SliceSampler([phantom], crop=64)._eligible(40)


def test_a_training_checkpoint_given_as_weights_says_to_use_the_exported_weights(tmp_path):
    from hrinet.learned.weights import load_weights
    from hrinet.training.checkpoint import write_checkpoint

    path = write_checkpoint(tmp_path / "run", {"generator.x": torch.zeros(2)}, {"step": 1})
    with pytest.raises(HRINetError, match="is a training checkpoint, not weights; .*hrinet "
                                          "export"):
        load_weights(path)


def test_train_defaults_to_the_shipped_default_variant(tmp_path, phantom):
    src = write_volume(make_phantom(size=(64, 64, 20), spacing=(2.0, 2.0, 2.0), seed=4),
                       tmp_path / "v.nrrd")
    r = cli("train", "--data", src, "--iterations", "1", "--crop", "64", "--batch", "1",
            "--device", "cpu", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "hrinet-flow.safetensors").is_file()


def _sheared(tmp_path, phantom):
    img = sitk.GetImageFromArray(phantom.array)
    img.SetDirection((1, 0, 0, 0, 1, 0, 0.3, 0, 0.954))
    sitk.WriteImage(img, str(tmp_path / "s.nrrd"))
    return ["interpolate", tmp_path / "s.nrrd", tmp_path / "o.nrrd", "--method", "linear"]


def _spacing(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")  # 6 mm slices
    return ["interpolate", src, tmp_path / "o.nrrd", "--spacing", "4.5", "--method", "linear"]


def _checkpoint_as_weights(tmp_path, phantom):
    from hrinet.training.checkpoint import write_checkpoint

    ckpt = write_checkpoint(tmp_path / "run", {"generator.x": torch.zeros(2)}, {"step": 1})
    src = write_volume(phantom, tmp_path / "v.nrrd")
    return ["interpolate", src, tmp_path / "o.nrrd", "--weights", ckpt, "--device", "cpu"]


def _edited_sidecar(tmp_path, phantom):
    w = _flow_weights(tmp_path)
    _edit_sidecar(w, [16, 32, 48, 96])
    src = write_volume(phantom, tmp_path / "v.nrrd")
    return ["interpolate", src, tmp_path / "o.nrrd", "--weights", w, "--device", "cpu"]


def _absurd_channels(tmp_path, phantom):
    import json

    from hrinet.core.io.atomic import file_sha256
    from hrinet.learned.weights import sidecar_of
    from safetensors.torch import load_file, save_file

    w = _flow_weights(tmp_path)
    save_file(load_file(str(w)), str(w), metadata={"format": "hrinet-weights/1"})  # old style
    meta = json.loads(sidecar_of(w).read_text())
    meta["sha256"] = file_sha256(w)
    meta["config"]["channels"] = [40000, 40000, 40000, 40000]
    sidecar_of(w).write_text(json.dumps(meta))
    src = write_volume(phantom, tmp_path / "v.nrrd")
    return ["interpolate", src, tmp_path / "o.nrrd", "--weights", w, "--device", "cpu"]


def _crop(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")  # 64 x 64 slices
    return ["train", "--data", src, "--crop", "128", "--iterations", "1", "--out", tmp_path / "r"]


def _setting(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")
    return ["train", "--data", src, "--crop", "64", "--ema", "1", "--out", tmp_path / "r"]


def _series(tmp_path, phantom):
    write_dicom_series(tmp_path / "d", [0.0, 3.0, 6.0])
    return ["info", tmp_path / "d", "--series", "9"]


def test_a_sheared_volume_says_sheared_and_how_to_fix_it(tmp_path, phantom):
    _sheared(tmp_path, phantom)
    with pytest.raises(HRINetError, match="is sheared: its axes are .* degrees from perp"):
        read_volume(tmp_path / "s.nrrd")


@pytest.mark.parametrize("case, fragment", [
    (_sheared, "is sheared"), (_spacing, "nearest reachable spacings"),
    (_checkpoint_as_weights, "is a training checkpoint, not weights"),
    (_edited_sidecar, "was changed"), (_absurd_channels, "do not fit the hrinet-flow"),
    (_crop, "training would see padding"), (_setting, "--ema 1.0 is out of range"),
    (_series, "give a number from 1 to 1")], ids=lambda c: getattr(c, "__name__", "")[1:])
def test_each_new_refusal_is_one_line_from_the_command_line(tmp_path, phantom, case, fragment):
    r = cli(*case(tmp_path, phantom))
    one_line_error(r, fragment)
    assert not (tmp_path / "o.nrrd").exists()


@pytest.mark.parametrize("content", ["[1, 2]", '"weights"', "3"])
def test_a_sidecar_that_is_no_json_object_is_one_line(tmp_path, content):
    from hrinet.learned.weights import read_metadata

    weights = _flow_weights(tmp_path)
    weights.with_suffix(".json").write_text(content)
    with pytest.raises(HRINetError, match="not an HRINet weights description .*not an object"):
        read_metadata(weights)
