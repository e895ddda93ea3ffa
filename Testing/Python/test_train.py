"""Training: the paper's step II, loss decrease per variant, exact resume, DDP, the CLI."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import shared
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.phantom import make_phantom
from hrinet.learned.models import VARIANTS
from hrinet.learned.weights import load_weights
from hrinet.training.data import SliceSampler, step_rng
from hrinet.training.distributed import shutdown_distributed
from hrinet.training.trainer import CHECKPOINT, TrainConfig, Trainer


def volumes():
    """Two thin phantoms of different sizes, like two patients."""
    return [make_phantom(size=(80, 72, 20), spacing=(2.5, 2.5, 2.0), seed=5),
            make_phantom(size=(64, 64, 16), spacing=(3.0, 3.0, 3.0), seed=6)]


def tiny(variant: str, iterations: int, **kw) -> TrainConfig:
    base = dict(variant=variant, iterations=iterations, crop=64, batch=4, lr=1e-3, val_every=0,
                device="cpu", seed=3, checkpoint_minutes=60)
    base.update(kw)
    return TrainConfig(**base)


def test_step_ii_uses_five_targets_at_k_over_6_from_one_volume():
    vols = volumes()
    # Tag each volume's voxels so the origin of every crop is visible.
    tagged = [v.with_array(np.full_like(v.array, 100 * (i + 1))) for i, v in enumerate(vols)]
    s = SliceSampler(tagged, crop=64)
    gb = s.supervised(step_rng(0, 0, 0), n=7, batch=3)
    assert gb.targets.shape == (15, 1, 64, 64) and gb.x1.shape == (3, 1, 64, 64)
    np.testing.assert_allclose(gb.a.numpy(), np.tile([5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6], 3),
                               rtol=1e-6)
    for g in range(3):
        values = torch.cat([gb.x1[g].flatten(), gb.x2[g].flatten(),
                            gb.targets[5 * g:5 * g + 5].flatten()]).unique()
        assert len(values) == 1  # the ends and the five targets all come from one volume


def test_groups_are_consecutive_slices_in_order():
    v = make_phantom(size=(64, 64, 30), spacing=(2, 2, 2))
    v = v.with_array(np.broadcast_to(np.arange(30, dtype=np.int16)[:, None, None] * 10,
                                     (30, 64, 64)).copy())
    s = SliceSampler([v], crop=64)
    g, _ = s.groups(step_rng(1, 0, 0), 7, 8)
    z = np.round(g[:, :, 0, 0] * 4095 - 1024) / 10
    assert np.all(np.abs(np.diff(z, axis=1)) == 1)  # consecutive (either direction: flips)


def _fixed_content_loss(tr: Trainer) -> float:
    """The variant's pixel content loss on one fixed batch: interpolation of held-out group
    targets for supervised variants, reconstruction for the others."""
    G = tr.G.eval()
    with torch.no_grad():
        if tr.cfg.variant == "hrinet-flow":  # motion samples: thin and slab input, gaps 2-8
            mb = tr.sampler.motion_batch(step_rng(99, 0, 0), groups=6)
            loss = torch.nn.functional.mse_loss(G(mb.samples, mb.plain, mb.t, mb.s) / 4095,
                                                mb.targets / 4095)
            G.train()
            return loss.item()
        gb = tr.sampler.supervised(step_rng(99, 0, 0), n=7, batch=6)
        if tr.cfg.spec.supervised:
            pred = G(gb.x1, gb.x2, gb.a, reconstruct=False, repeat=5)["x_a"]
            loss = torch.nn.functional.mse_loss(pred, gb.targets)
        else:
            loss = torch.nn.functional.mse_loss(G.reconstruct(gb.x1), gb.x1)
    G.train()
    return loss.item()


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_few_steps_lower_the_content_loss(tmp_path, variant):
    tr = Trainer(tiny(variant, 40), tmp_path, volumes=volumes(), log=None)
    before = _fixed_content_loss(tr)
    tr.run()
    after = _fixed_content_loss(tr)
    assert after < before
    assert (tmp_path / f"{variant}.safetensors").is_file()
    with open(tmp_path / "log.csv") as f:
        assert len(list(csv.DictReader(f))) == 40


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


def _ddp_worker(rank, world, folder, result):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=world)
    tr = Trainer(tiny("hrinet-mse", 4, batch=2), folder / "run", volumes=volumes(),
                 rank=rank, world=world, log=None)
    before = [p.detach().clone() for p in tr.G.parameters()]
    tr.run()
    flat = torch.cat([p.detach().flatten() for p in tr.G.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        moved = any(not torch.equal(a, p) for a, p in zip(before, tr.G.parameters()))
        same = all(torch.equal(gathered[0], g) for g in gathered[1:])
        result.write_text(f"{moved} {same}")
    shutdown_distributed(tr)


@pytest.mark.slow
def test_two_gloo_processes_train_in_sync_with_ddp(tmp_path):
    result = tmp_path / "result.txt"
    torch.multiprocessing.spawn(_ddp_worker, args=(2, tmp_path, result), nprocs=2, join=True)
    assert result.read_text() == "True True"


@pytest.mark.slow
def test_cli_train_20_iterations_of_each_variant_drive_interpolate(tmp_path):
    heart = shared("heart-1p5mm.nrrd")
    thick = tmp_path / "thick.nrrd"
    from hrinet.core.io import read_volume, write_volume
    from hrinet.evaluation.evaluate import decimate

    write_volume(decimate(read_volume(heart), 4), thick)
    for variant in VARIANTS:
        run = tmp_path / variant
        r = subprocess.run([sys.executable, "-m", "hrinet.cli", "train", "--data", str(heart),
                            "--variant", variant, "--iterations", "20", "--crop", "64",
                            "--batch", "2", "--out", str(run), "--device", "cpu"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        # stderr is a pipe here, as in a log: progress comes as plain lines, not a bar
        assert f"train {variant}: 20/20 steps (100%" in r.stderr
        weights = run / f"{variant}.safetensors"
        _, meta = load_weights(weights)
        assert meta["training"]["iterations"] == 20
        assert meta["training"]["split"]["train"] == ["heart-1p5mm.nrrd"]
        out = tmp_path / f"{variant}.nrrd"
        r = subprocess.run([sys.executable, "-m", "hrinet.cli", "interpolate", str(thick),
                            str(out), "--factor", "4", "--weights", str(weights)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        assert read_volume(out).array.shape[0] == (read_volume(thick).array.shape[0] - 1) * 4 + 1


def test_export_turns_a_checkpoint_into_loadable_weights(tmp_path):
    from hrinet.cli import main

    Trainer(tiny("acai", 3), tmp_path / "run", volumes=volumes(), log=None).run(stop_at=2)
    out = tmp_path / "acai-step2.safetensors"
    assert main(["export", str(tmp_path / "run"), str(out)]) == 0
    model, meta = load_weights(out)
    assert meta["variant"] == "acai" and meta["training"]["iterations"] == 2
    assert main(["export", str(tmp_path / "run"), str(out)]) == 2  # exists: kept


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


def test_window_weight_adds_the_soft_tissue_error(tmp_path):
    plain = Trainer(tiny("hrinet-plus", 1), tmp_path / "a", volumes=volumes(), log=None)
    windowed = Trainer(tiny("hrinet-plus", 1, window_weight=0.5), tmp_path / "b",
                       volumes=volumes(), log=None)
    target = torch.full((1, 1, 8, 8), (40 + 1024) / 4095)  # soft tissue, 40 HU
    pred = target + 20 / 4095  # 20 HU off: tiny in the HU range, 5% of the window
    base = plain.content(pred, target).item()
    assert base == pytest.approx((20 / 4095) ** 2)
    assert windowed.content(pred, target).item() == pytest.approx(base + 0.5 * (20 / 400) ** 2)


def test_ssim_term_matches_the_metric_and_rewards_keeping_texture():
    from hrinet.evaluation.metrics import ssim_slice
    from hrinet.training.trainer import ssim_torch

    rng = np.random.default_rng(0)
    truth = rng.random((1, 1, 48, 48))
    noisy = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1)
    got = ssim_torch(torch.tensor(noisy), torch.tensor(truth)).item()
    assert got == pytest.approx(ssim_slice(noisy[0, 0], truth[0, 0], 1.0), abs=0.01)
    flat = np.full_like(truth, truth.mean())  # the smooth mean has no texture left
    assert ssim_torch(torch.tensor(flat), torch.tensor(truth)).item() < 0.1


def test_per_sample_ssim_is_each_images_own_ssim():
    from hrinet.training.trainer import ssim_torch

    rng = np.random.default_rng(1)
    truth = torch.tensor(rng.random((3, 1, 40, 40)))
    pred = (truth + torch.tensor(rng.normal(0, 0.05, truth.shape)) * torch.arange(3).view(3, 1, 1, 1)
            ).clamp(0, 1)
    each = ssim_torch(pred, truth, per_sample=True)
    assert each.shape == (3,)
    for i in range(3):
        assert each[i].item() == pytest.approx(ssim_torch(pred[i:i + 1], truth[i:i + 1]).item())
    assert each[0] == pytest.approx(1.0) and each[0] > each[1] > each[2]  # more noise, less alike


def test_with_log_mse_the_ssim_term_is_the_log_of_each_samples_dissimilarity():
    from hrinet.training.losses import (
        LOG_SSIM_FLOOR,
        log_dissimilarity,
        ssim_torch,
        windowed,
    )

    rng = np.random.default_rng(2)
    tissue = torch.tensor((rng.normal(40, 30, (2, 1, 32, 32)) + 1024) / 4095, dtype=torch.float32)
    pred = tissue + torch.tensor(rng.normal(0, 10 / 4095, tissue.shape), dtype=torch.float32)
    got = log_dissimilarity(pred, tissue)
    want = torch.log(1 - ssim_torch(windowed(pred), windowed(tissue), per_sample=True)
                     + LOG_SSIM_FLOOR)
    torch.testing.assert_close(got, want)
    assert got.shape == (2,) and (got > np.log(LOG_SSIM_FLOOR)).all()
    # lung against lung: below the window both are flat, identical, and give no gradient
    lung = torch.full((1, 1, 32, 32), (-800 + 1024) / 4095, requires_grad=True)
    flat = log_dissimilarity(lung + 5 / 4095, lung.detach())
    assert flat.item() == pytest.approx(np.log(LOG_SSIM_FLOOR))
    flat.sum().backward()
    assert lung.grad.abs().max().item() == 0


def test_the_ssim_weight_changes_the_log_mse_training_step(tmp_path):
    runs = {}
    for w in (0.0, 0.3):
        tr = Trainer(tiny("hrinet-flow", 1, log_mse=True, ssim_weight=w), tmp_path / str(w),
                     volumes=volumes(), log=None)
        runs[w] = tr.motion_step(step_rng(3, 0, 0))["loss_g"]
    # the same batch (same seed): the term adds 0.3 * mean log(1 - SSIM + floor), below zero
    assert runs[0.3] < runs[0.0]


def test_validation_scores_the_model_against_linear_with_the_evaluate_protocol(tmp_path):
    from hrinet.core.io import write_volume

    val = write_volume(make_phantom(size=(64, 64, 25), spacing=(3, 3, 1.5), seed=9),
                       tmp_path / "val.nrrd")
    cfg = tiny("hrinet-plus", 1, val=[str(val)], val_factors=(2, 4), val_slices=13, val_crop=64)
    tr = Trainer(cfg, tmp_path / "run", volumes=volumes(), log=None)
    (tmp_path / "run").mkdir()
    got = tr.validate()  # before any step hrinet-plus is exactly the linear blend
    for k in (2, 4):
        assert got[f"val.nrrd/x{k}/model_psnr_hu"] == pytest.approx(
            got[f"val.nrrd/x{k}/linear_psnr_hu"], abs=0.05)
        assert 0 < got[f"val.nrrd/x{k}/model_ssim_win"] <= 1
    tr.run()
    lines = (tmp_path / "run" / "val.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"step": 1' in lines[-1]


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
    import dataclasses

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
    import dataclasses

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
    from hrinet.training.trainer import export_checkpoint

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
    import hrinet.cli.train as train

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend: None)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    assert train.distributed_setup("auto") == (1, 2, "cuda:1")
    assert train.distributed_setup("cpu")[2] is None  # gloo on the CPU


@pytest.mark.slow  # two spawned worker processes import torch
def test_batches_made_ahead_by_worker_processes_train_exactly_as_without_them(tmp_path):
    runs = {}
    for workers in (0, 2):
        tr = Trainer(tiny("hrinet-flow", 3, workers=workers, samples_per_group=3, overlap=0.5),
                     tmp_path / str(workers), volumes=volumes(), log=None)
        tr.run()
        runs[workers] = {k: v.clone() for k, v in tr.G.state_dict().items()}
    assert runs[0].keys() == runs[2].keys()
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[2][k]), k
    assert any(v.abs().sum() > 0 for k, v in runs[2].items() if "head" in k)  # it did train


def test_stage_two_variants_start_from_one_stage_one_result_with_its_encoder_frozen(tmp_path):
    stage1 = Trainer(tiny("acai", 2), tmp_path / "acai", volumes=volumes(), log=None).run()
    start, _ = load_weights(stage1)
    tr = Trainer(tiny("hrinet-perceptual", 2, init_weights=str(stage1)), tmp_path / "p",
                 volumes=volumes(), log=None)
    assert tr.r["stage1_iterations"] == 0 and tr.phase() != "stage1"  # stage I is done
    logs = tr.train_step()
    assert logs["phase"] in ("step1", "step2")
    for name, w in tr.frozen.state_dict().items():  # E_I: the stage-I weights, untouched
        assert torch.equal(w, start.state_dict()[name]), name
    out = tr.run()
    model, meta = load_weights(out)
    assert meta["variant"] == "hrinet-perceptual"
    assert [s["variant"] for s in meta["lineage"]] == ["acai", "hrinet-perceptual"]
    assert meta["training"]["config"]["from_stage1"] is True


def test_stage_two_weights_continue_in_stage_two_without_a_second_stage_one(tmp_path):
    stage1 = Trainer(tiny("acai", 2), tmp_path / "acai", volumes=volumes(), log=None).run()
    mse = Trainer(tiny("hrinet-mse", 2, init_weights=str(stage1)), tmp_path / "m",
                  volumes=volumes(), log=None).run()
    more = Trainer(tiny("hrinet-mse", 4, init_weights=str(mse)), tmp_path / "m2",
                   volumes=volumes(), log=None)
    assert more.r["stage1_iterations"] == 0 and more.phase() != "stage1"
    _, meta = load_weights(more.run())
    assert [s["variant"] for s in meta["lineage"]] == ["acai", "hrinet-mse", "hrinet-mse"]


def test_perceptual_weights_are_not_continued_without_their_frozen_encoder(tmp_path):
    stage1 = Trainer(tiny("acai", 1), tmp_path / "acai", volumes=volumes(), log=None).run()
    perc = Trainer(tiny("hrinet-perceptual", 1, init_weights=str(stage1)), tmp_path / "p",
                   volumes=volumes(), log=None).run()
    with pytest.raises(HRINetError, match="frozen encoder E_I"):
        Trainer(tiny("hrinet-perceptual", 2, init_weights=str(perc)), tmp_path / "p2",
                volumes=volumes(), log=None)


def test_only_the_stage_one_result_starts_another_variant(tmp_path):
    ae = Trainer(tiny("ae", 1), tmp_path / "ae", volumes=volumes(), log=None).run()
    with pytest.raises(HRINetError, match="--init weights are variant ae"):
        Trainer(tiny("hrinet-mse", 2, init_weights=str(ae)), tmp_path / "m", volumes=volumes(),
                log=None)


def test_cpu_training_lays_the_models_out_channels_last_and_exports_plain_weights(tmp_path):
    tr = Trainer(tiny("hrinet-mse", 2), tmp_path / "run", volumes=volumes(), log=None)
    convs = [m.weight for m in tr.G.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    path = tr.run()
    model, _ = load_weights(str(path))
    reference = Trainer(tiny("hrinet-mse", 2), tmp_path / "plain", volumes=volumes(), log=None)
    reference.set_memory_format(torch.contiguous_format)
    plain, _ = load_weights(str(reference.run()))
    for (name, a), b in zip(model.state_dict().items(), plain.state_dict().values()):
        # the layout changes float rounding only, not what is learned
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)


def test_drop_context_reaches_the_sampler_and_is_recorded_in_the_stage_settings(tmp_path):
    from hrinet.training.options import CONFIG_OPTIONS

    assert CONFIG_OPTIONS["drop_context"] == "drop_context"  # --drop-context on the CLI
    tr = Trainer(tiny("hrinet-flow", 1, drop_context=0.3), tmp_path, volumes=volumes(), log=None)
    assert tr.sampler.drop_context == 0.3
    _, meta = load_weights(tr.run())
    assert meta["lineage"][-1]["settings"]["drop_context"] == 0.3


def test_augment_reaches_the_sampler_and_the_sidecar_names_data_without_paths(tmp_path):
    from hrinet.training.options import CONFIG_OPTIONS

    assert CONFIG_OPTIONS["augment"] == "augment"  # --augment on the CLI
    cfg = dataclasses.replace(tiny("hrinet-flow", 1, augment=0.5),
                              data=[str(tmp_path / "far" / "away" / "a.nrrd")])
    tr = Trainer(cfg, tmp_path / "run", volumes=volumes()[:1], log=None)
    assert tr.sampler.augment == 0.5
    _, meta = load_weights(tr.run())
    assert meta["lineage"][-1]["settings"]["augment"] == 0.5
    assert meta["training"]["config"]["data"] == ["a.nrrd"]  # the name, not the machine's path
    assert len(meta["training"]["volumes"][0]["voxel_sha256"]) == 64


@pytest.mark.parametrize("setting, value", [("lr", -1.0), ("lr", 0.0), ("ema", 1.0),
                                            ("overlap", 3.0), ("drop_context", -0.1),
                                            ("augment", 1.5), ("lr", float("nan")),
                                            ("checkpoint_minutes", float("nan")),
                                            ("ema", float("inf")), ("seed", -1),
                                            ("val_factors", (0,)), ("val_factors", (2, 99)),
                                            ("lr_final", 1.5), ("decay_start", 1.5),
                                            ("checkpoint_minutes", -1.0),
                                            ("batch", 0), ("samples_per_group", 0),
                                            ("iterations", 0)])
def test_a_setting_out_of_its_range_is_refused_before_anything_is_written(tmp_path, setting,
                                                                          value):
    option = "--" + setting.replace("_", "-")
    with pytest.raises(HRINetError, match=f"^{option} .* out of range"):
        Trainer(dataclasses.replace(tiny("hrinet-flow", 1), **{setting: value}),
                tmp_path / "run", volumes=volumes(), log=None)
    assert not (tmp_path / "run").exists()


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
    (tmp_path / "w.json").write_text("a sidecar of the user's")
    with pytest.raises(HRINetError, match="w.json exists"):
        export_checkpoint(ckpt, tmp_path / "w.safetensors")
    assert (tmp_path / "w.json").read_text() == "a sidecar of the user's"


def test_a_run_folder_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("not a folder")
    with pytest.raises(HRINetError, match="is a file"):
        Trainer(tiny("hrinet-flow", 1), tmp_path / "f", volumes=volumes(), log=None)


def test_a_variant_method_refuses_weights_of_another_variant():
    from hrinet.core.shipped import find_weights
    from hrinet.methods import create_interpolator

    with pytest.raises(HRINetError, match="variant hrinet-flow, not ae"):
        create_interpolator("ae", weights=str(find_weights()), device="cpu")



def test_a_second_run_in_the_same_folder_is_refused_while_the_first_holds_it(tmp_path):
    from hrinet.training.run_lock import run_lock

    run = tmp_path / "run"
    with run_lock(run):  # the first run, in this process
        r = subprocess.run([sys.executable, "-m", "hrinet.cli", "train", "--out", str(run),
                            "--resume"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "is in use by another run (process" in r.stderr
    with run_lock(run):  # released when the first ends: the folder is free again
        pass
