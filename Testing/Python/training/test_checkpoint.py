"""Checkpoints, resuming, exporting weights and their lineage: a run survives stops, damage and
changes of machine, and its weights say where they came from."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys

import pytest
import torch
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.phantom import make_phantom
from hrinet.learned.weights import load_weights
from hrinet.training.trainer import CHECKPOINT, Trainer
from training_cases import tiny, volumes


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [3, 6])
def test_resume_after_a_stop_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, stop_at):
    # stage I -> II at step 4 (frozen encoder, D1 and D2), weight averaging, lr decay from 4
    cfg = tiny("hrinet-perceptual", 8, ema=0.9, lr_final=0.1, decay_start=0.5)
    whole = Trainer(cfg, tmp_path / "whole", volumes=volumes(), log=None)
    whole.run()
    part = Trainer(cfg, tmp_path / "part", volumes=volumes(), log=None)
    part.run(stop_at=stop_at)
    assert (tmp_path / "part" / CHECKPOINT).is_file()
    del part
    resumed = Trainer(cfg, tmp_path / "part", resume=True, volumes=volumes(), log=None)
    assert resumed.step == stop_at
    resumed.run()
    for name in ("G", "D1", "D2", "ema_G"):
        a, b = getattr(whole, name).state_dict(), getattr(resumed, name).state_dict()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    with open(tmp_path / "part" / "log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, 9))


def test_cancel_saves_a_checkpoint_that_resumes(tmp_path):
    calls = []
    tr = Trainer(tiny("hrinet-plus", 10), tmp_path, volumes=volumes(), log=None,
                 cancel=lambda: calls.append(1) or len(calls) > 4)
    with pytest.raises(Cancelled, match="--resume"):
        tr.run()
    again = Trainer(tiny("hrinet-plus", 10), tmp_path, resume=True, volumes=volumes(), log=None)
    assert again.step == 4


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    Trainer(tiny("ae", 2), tmp_path, volumes=volumes(), log=None).run()
    with pytest.raises(HRINetError, match="--resume"):
        Trainer(tiny("ae", 2), tmp_path, volumes=volumes(), log=None)


def test_a_new_run_never_replaces_files_it_did_not_write(tmp_path):
    """A folder holding files with a run's names (the user's, or a finished run's whose
    checkpoint was removed) is refused before anything is written; other files stay too."""
    (tmp_path / "log.csv").write_text("the user's log")
    (tmp_path / "notes.txt").write_text("the user's notes")
    with pytest.raises(HRINetError, match="holds log.csv, which a new run would replace"):
        Trainer(tiny("ae", 2), tmp_path, volumes=volumes(), log=None)
    assert (tmp_path / "log.csv").read_text() == "the user's log"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "notes.txt"]
    finished = tmp_path / "finished"
    Trainer(tiny("ae", 2), finished, volumes=volumes(), log=None).run()
    for name in ("checkpoint.safetensors", "checkpoint.prev.safetensors"):
        (finished / name).unlink(missing_ok=True)
    with pytest.raises(HRINetError, match="config.json"):
        Trainer(tiny("ae", 2), finished, volumes=volumes(), log=None)
    for name in ("ae.safetensors", "ae.json"):  # a run that died before it saved anything
        (finished / name).unlink()
    log = (finished / "log.csv").read_bytes()
    (finished / "log.csv").unlink()  # a run's config beside a plot of the user's: not a run's
    (finished / "loss.png").write_bytes(b"the user's plot")
    with pytest.raises(HRINetError, match="loss.png"):
        Trainer(tiny("ae", 2), finished, volumes=volumes(), log=None)
    assert (finished / "loss.png").read_bytes() == b"the user's plot"
    (finished / "log.csv").write_bytes(log)
    Trainer(tiny("ae", 2), finished, volumes=volumes(), log=None).run()  # starts anew
    assert (finished / "ae.safetensors").is_file()


def test_a_users_config_json_is_never_taken_for_a_run_that_died_early(tmp_path):
    (tmp_path / "config.json").write_text('{"project": "lung study"}')
    (tmp_path / "log.csv").write_text("date,note\n")
    with pytest.raises(HRINetError, match="holds config.json, log.csv, which a new run"):
        Trainer(tiny("ae", 2), tmp_path, volumes=volumes(), log=None)
    assert (tmp_path / "config.json").read_text() == '{"project": "lung study"}'
    assert (tmp_path / "log.csv").read_text() == "date,note\n"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    tr = Trainer(tiny("hrinet-plus", 6), tmp_path, volumes=volumes(), log=None)
    tr.run(stop_at=2)
    good = (tmp_path / CHECKPOINT).read_bytes()
    tr = Trainer(tiny("hrinet-plus", 6), tmp_path, resume=True, volumes=volumes(), log=None)
    with torch.no_grad():
        tr.G.head.weight.fill_(float("nan"))
    with pytest.raises(HRINetError, match="diverged.*last good checkpoint"):
        tr.run()
    assert (tmp_path / CHECKPOINT).read_bytes() == good


def test_export_turns_a_checkpoint_into_loadable_weights(tmp_path):
    from hrinet.cli import main

    Trainer(tiny("acai", 3), tmp_path / "run", volumes=volumes(), log=None).run(stop_at=2)
    out = tmp_path / "acai-step2.safetensors"
    assert main(["export", str(tmp_path / "run"), str(out)]) == 0
    model, meta = load_weights(out)
    assert meta["variant"] == "acai" and meta["training"]["iterations"] == 2
    assert main(["export", str(tmp_path / "run"), str(out)]) == 2  # exists: kept


@pytest.mark.slow  # 11-15 s on two busy workers
def test_weight_average_and_cosine_decay_shape_the_exported_model(tmp_path):
    tr = Trainer(tiny("hrinet-plus", 10, ema=0.5, lr_final=0.1, decay_start=0.5), tmp_path,
                 volumes=volumes(), log=None)
    lrs = [tr.learning_rate(s) for s in range(11)]
    assert lrs[:5] == [1e-3] * 5 and lrs[10] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    path = tr.run()
    model, _ = load_weights(path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, tr.ema_G.state_dict()[k])
    assert any(not torch.equal(v, tr.G.state_dict()[k]) for k, v in model.state_dict().items())


def test_resume_can_shorten_or_extend_the_run_but_not_below_its_step(tmp_path):
    Trainer(tiny("ae", 6), tmp_path, volumes=volumes(), log=None).run(stop_at=4)
    with pytest.raises(HRINetError, match="past --iterations 3"):
        Trainer(tiny("ae", 6), tmp_path, resume=True, volumes=volumes(), log=None,
                overrides={"iterations": 3})
    longer = Trainer(tiny("ae", 6), tmp_path, resume=True, volumes=volumes(), log=None,
                     overrides={"iterations": 8})
    assert longer.cfg.iterations == 8 and longer.step == 4


def test_a_continuation_is_validated_before_its_first_step(tmp_path):
    from hrinet.core.io import write_volume

    val = write_volume(make_phantom(size=(64, 64, 25), spacing=(3, 3, 1.5), seed=9),
                       tmp_path / "val.nrrd")
    first = Trainer(tiny("hrinet-plus", 2), tmp_path / "a", volumes=volumes(), log=None).run()
    cfg = tiny("hrinet-plus", 2, val=[str(val)], val_factors=(2,), val_slices=13, val_crop=64,
               val_every=2, init_weights=str(first))
    Trainer(cfg, tmp_path / "b", volumes=volumes(), log=None).run()
    steps = [int(line.split('"step": ')[1].split(",")[0])
             for line in (tmp_path / "b" / "val.jsonl").read_text().splitlines()]
    assert steps == [0, 2]  # the curve starts where the --init weights stand


def test_weights_record_the_whole_lineage_of_runs_started_from_other_weights(tmp_path):
    first = Trainer(tiny("hrinet-flow", 2), tmp_path / "a", volumes=volumes(), log=None).run()
    again = Trainer(tiny("hrinet-flow", 3, init_weights=str(first), lr=5e-4), tmp_path / "b",
                    volumes=volumes(), log=None).run()
    _, meta = load_weights(again)
    stages = meta["lineage"]
    assert [s["iterations"] for s in stages] == [2, 3]
    assert stages[1]["started_from"] == first.name and stages[0]["started_from"] is None
    assert stages[1]["settings"]["lr"] == 5e-4
    assert all(s["seconds"] > 0 for s in stages)  # how long each stage trained


def test_weights_from_before_the_blend_head_are_continued_with_it(tmp_path):
    """--init with older hrinet-flow weights: training goes on with today's blend head and
    spline candidate, which start at zero, so step 0 is the older model exactly."""

    from hrinet.learned.models import ModelConfig
    from hrinet.learned.motion import MotionNet
    from hrinet.learned.weights import save_weights

    old = MotionNet(dataclasses.replace(ModelConfig.for_variant("hrinet-flow"), blend=False,
                                        spline=False, roughness=False))
    path = save_weights(old.eval(), tmp_path / "old.safetensors", {})
    tr = Trainer(tiny("hrinet-flow", 1, init_weights=str(path)), tmp_path / "run",
                 volumes=volumes(), log=None)
    assert tr.mcfg.blend and tr.mcfg.spline and tr.mcfg.roughness and tr.G.head.out_channels > 1
    _, meta = load_weights(tr.run())
    assert all(meta["config"][k] is True for k in ("blend", "spline", "roughness"))


def test_a_run_checkpointed_before_the_blend_head_resumes_with_its_own_architecture(
        tmp_path, monkeypatch):
    """A resume rebuilds the model the checkpoint holds, not today's default layout."""

    from hrinet.learned.models import ModelConfig

    today = ModelConfig.for_variant.__func__
    monkeypatch.setattr(ModelConfig, "for_variant", classmethod(
        lambda cls, *a, **k: dataclasses.replace(today(cls, *a, **k), blend=False,
                                                 spline=False, roughness=False)))
    Trainer(tiny("hrinet-flow", 4), tmp_path / "run", volumes=volumes(), log=None).run(stop_at=2)
    monkeypatch.undo()
    weights = Trainer(tiny("hrinet-flow", 4), tmp_path / "run", resume=True, volumes=volumes(),
                      log=None).run()
    _, meta = load_weights(weights)
    assert meta["config"]["blend"] is False and meta["config"]["spline"] is False


def test_training_time_adds_up_over_a_resume(tmp_path):
    tr = Trainer(tiny("hrinet-mse", 4), tmp_path / "run", volumes=volumes(), log=None)
    tr.run(stop_at=2)
    before = tr.train_seconds
    resumed = Trainer(tiny("hrinet-mse", 4), tmp_path / "run", resume=True, volumes=volumes(),
                      log=None)
    assert resumed.train_seconds == pytest.approx(before)
    _, meta = load_weights(resumed.run())
    assert meta["lineage"][-1]["seconds"] > before > 0


def _flip_a_tensor_byte(path):
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # inside the last tensor's data, the header untouched
    path.write_bytes(bytes(data))


def test_a_damaged_checkpoint_resumes_from_the_one_before_it_and_says_so(tmp_path):
    from hrinet.training.checkpoint import PREVIOUS

    tr = Trainer(tiny("hrinet-flow", 6), tmp_path, volumes=volumes(), log=None)
    tr.run(stop_at=2)
    tr = Trainer(tiny("hrinet-flow", 6), tmp_path, resume=True, volumes=volumes(), log=None)
    tr.run(stop_at=4)
    assert (tmp_path / PREVIOUS).is_file()
    _flip_a_tensor_byte(tmp_path / CHECKPOINT)
    said = []
    again = Trainer(tiny("hrinet-flow", 6), tmp_path, resume=True, volumes=volumes(),
                    log=said.append)
    assert again.step == 2
    assert "checksum" in said[0] and "step 2" in said[0]


def test_after_a_fallback_resume_the_next_save_never_replaces_the_good_checkpoint(tmp_path):
    from hrinet.training.checkpoint import PREVIOUS, read_checkpoint, write_checkpoint

    tr = Trainer(tiny("hrinet-flow", 6), tmp_path, volumes=volumes(), log=None)
    tr.run(stop_at=2)
    Trainer(tiny("hrinet-flow", 6), tmp_path, resume=True, volumes=volumes(),
            log=None).run(stop_at=4)
    _flip_a_tensor_byte(tmp_path / CHECKPOINT)
    good = (tmp_path / PREVIOUS).read_bytes()
    tensors, state = read_checkpoint(tmp_path / PREVIOUS)
    write_checkpoint(tmp_path, tensors, dict(state, step=3))  # the resumed run's next save
    assert (tmp_path / PREVIOUS).read_bytes() == good  # the damaged one did not move over it
    assert read_checkpoint(tmp_path / CHECKPOINT)[1]["step"] == 3


def test_an_edited_training_state_is_recognised(tmp_path):
    import json

    from hrinet.training.checkpoint import read_checkpoint
    from safetensors.torch import load_file, save_file

    Trainer(tiny("hrinet-flow", 4), tmp_path, volumes=volumes(), log=None).run(stop_at=2)
    ckpt = tmp_path / CHECKPOINT
    _, state = read_checkpoint(ckpt)
    save_file(load_file(str(ckpt)), str(ckpt), metadata={"state": json.dumps(dict(state, step=1))})
    with pytest.raises(HRINetError, match="training state"):
        read_checkpoint(ckpt)


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_a_damaged_checkpoint_without_an_earlier_one_is_one_line_not_an_internal_error(
        tmp_path, damage):
    Trainer(tiny("hrinet-flow", 4), tmp_path / "run", volumes=volumes(), log=None).run(stop_at=2)
    ckpt = tmp_path / "run" / CHECKPOINT
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    else:
        _flip_a_tensor_byte(ckpt)
    r = subprocess.run([sys.executable, "-m", "hrinet.cli", "train", "--out",
                        str(tmp_path / "run"), "--resume"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "internal" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("hrinet: error:")
    assert "damaged" in r.stderr and "start a new run" in r.stderr


def test_export_of_a_finished_run_keeps_what_the_run_exported(tmp_path):
    """The final validation scores and the training volumes' geometry, as in the run's own
    sidecar."""
    import json

    from hrinet.core.io import write_volume
    from hrinet.learned.weights import sidecar_of
    from hrinet.training.lineage import export_checkpoint

    data = [write_volume(v, tmp_path / f"v{i}.nrrd") for i, v in enumerate(volumes())]
    cfg = tiny("hrinet-flow", 3, data=[str(p) for p in data], val=[str(data[0])],
               val_every=100, val_factors=(2,), val_slices=6, val_crop=64)
    run_weights = Trainer(cfg, tmp_path / "run", log=None).run()
    exported = export_checkpoint(tmp_path / "run", tmp_path / "again.safetensors")
    a = json.loads(sidecar_of(run_weights).read_text())
    b = json.loads(sidecar_of(exported).read_text())
    assert a["validation_metrics"] and b["validation_metrics"] == a["validation_metrics"]
    assert b["training"]["volumes"] == a["training"]["volumes"]


def _cli_run(tmp_path, *extra):
    from hrinet.cli import main
    from hrinet.core.io import write_volume

    data = tmp_path / "v0.nrrd"
    if not data.exists():
        write_volume(volumes()[0], data)
    return main(["train", "--data", str(data), "--variant", "hrinet-flow", "--iterations", "4",
                 "--crop", "64", "--batch", "2", "--device", "cpu", "--out",
                 str(tmp_path / "run"), *map(str, extra)])


def test_resume_honours_the_options_given_and_records_the_change(tmp_path):
    import json

    from hrinet.learned.weights import sidecar_of
    from hrinet.training.checkpoint import read_checkpoint

    assert _cli_run(tmp_path, "--stop-at", "2", "--lr", "1e-3") == 0
    from hrinet.cli import main

    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--lr", "5e-4"]) == 0
    _, state = read_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert state["config"]["lr"] == 5e-4 and state["config"]["batch"] == 2  # the rest: saved
    change = {"step": 2, "changed": {"lr": [1e-3, 5e-4]}}
    assert state["resume_changes"] == [change]
    meta = json.loads(sidecar_of(tmp_path / "run" / "hrinet-flow.safetensors").read_text())
    assert meta["lineage"][-1]["resume_changes"] == [change]


def test_a_run_saved_for_cuda_resumes_on_the_cpu_when_asked(tmp_path):
    from hrinet.cli import main
    from hrinet.training.checkpoint import read_checkpoint, write_checkpoint

    assert _cli_run(tmp_path, "--stop-at", "2") == 0
    tensors, state = read_checkpoint(tmp_path / "run" / CHECKPOINT)
    state["config"]["device"] = "cuda"  # as if trained on a GPU machine
    write_checkpoint(tmp_path / "run", tensors, state)
    if not torch.cuda.is_available():
        assert main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 2  # one line
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--device", "cpu"]) == 0
    _, state = read_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert state["step"] == 4 and state["config"]["device"] == "cpu"


def test_a_resumed_run_cannot_change_its_architecture(tmp_path):
    from hrinet.cli import main

    assert _cli_run(tmp_path, "--stop-at", "2") == 0
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--variant",
                 "hrinet-plus"]) == 2


def test_under_torchrun_each_rank_resumes_on_its_own_gpu(monkeypatch):
    """NCCL ranks take the GPU of their LOCAL_RANK whatever the checkpoint saved (no GPU here:
    the distributed calls are stood in for)."""
    from hrinet.training.distributed import distributed_setup

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend: None)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    assert distributed_setup("auto") == (1, 2, "cuda:1")
    assert distributed_setup("cpu")[2] is None  # gloo on the CPU


def test_a_resumed_run_is_checked_with_the_settings_given_on_resume(tmp_path):
    Trainer(tiny("hrinet-flow", 1), tmp_path, volumes=volumes(), log=None).run()
    with pytest.raises(HRINetError, match="^--ema 1.5 is out of range"):
        Trainer(tiny("hrinet-flow", 2), tmp_path, resume=True, volumes=volumes(), log=None,
                overrides={"ema": 1.5, "iterations": 2})


def test_export_never_destroys_the_checkpoint_or_replaces_a_sidecar_unasked(tmp_path):
    from hrinet.training.lineage import export_checkpoint

    Trainer(tiny("hrinet-flow", 2), tmp_path / "run", volumes=volumes(), log=None).run(stop_at=1)
    ckpt = tmp_path / "run" / CHECKPOINT
    data = ckpt.read_bytes()
    with pytest.raises(HRINetError, match="is the checkpoint itself"):
        export_checkpoint(ckpt, ckpt, overwrite=True)
    assert ckpt.read_bytes() == data
    named_json = tmp_path / "ck.json"  # a checkpoint whose name is the export's sidecar name
    named_json.write_bytes(data)
    with pytest.raises(HRINetError, match="ck.json is the checkpoint itself"):
        export_checkpoint(named_json, tmp_path / "ck.safetensors", overwrite=True)
    assert named_json.read_bytes() == data
    (tmp_path / "w.json").write_text("a sidecar of the user's")
    with pytest.raises(HRINetError, match="w.json exists"):
        export_checkpoint(ckpt, tmp_path / "w.safetensors")
    assert (tmp_path / "w.json").read_text() == "a sidecar of the user's"
