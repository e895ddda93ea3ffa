"""Training: sampling, steps, stages, settings, several processes, the CLI (phantoms, CPU)."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import shared
from hrinet.core.errors import HRINetError
from hrinet.core.phantom import make_phantom
from hrinet.core.variants import VARIANTS
from hrinet.learned.weights import load_weights
from hrinet.training.data import SliceSampler, step_rng
from hrinet.training.distributed import shutdown_distributed
from hrinet.training.trainer import Trainer
from training_cases import tiny, volumes


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
    g = s.groups(step_rng(1, 0, 0), 7, 8)
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
    from hrinet.core.io import read_volume, write_volume
    from hrinet.evaluation.evaluate import decimate
    from hrinet.training.validation import val_subvolume

    chest = tmp_path / "chest.nrrd"  # a central block of a real chest CT (skips without it)
    write_volume(val_subvolume(read_volume(shared("chest-rider-0p8mm.nrrd")), 95, 128), chest)
    thick = tmp_path / "thick.nrrd"
    write_volume(decimate(read_volume(chest), 4), thick)
    for variant in VARIANTS:
        run = tmp_path / variant
        r = subprocess.run([sys.executable, "-m", "hrinet.cli", "train", "--data", str(chest),
                            "--variant", variant, "--iterations", "20", "--crop", "64",
                            "--batch", "2", "--out", str(run), "--device", "cpu"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        # stderr is a pipe here, as in a log: progress comes as plain lines, not a bar
        assert f"train {variant}: 20/20 steps (100%" in r.stderr
        weights = run / f"{variant}.safetensors"
        _, meta = load_weights(weights)
        assert meta["training"]["iterations"] == 20
        assert meta["training"]["split"]["train"] == ["chest.nrrd"]
        out = tmp_path / f"{variant}.nrrd"
        r = subprocess.run([sys.executable, "-m", "hrinet.cli", "interpolate", str(thick),
                            str(out), "--factor", "4", "--weights", str(weights)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        assert read_volume(out).array.shape[0] == (read_volume(thick).array.shape[0] - 1) * 4 + 1


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
    assert tr.resolved.stage1_iterations == 0 and tr.phase() != "stage1"  # stage I is done
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
    assert more.resolved.stage1_iterations == 0 and more.phase() != "stage1"
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


def test_bf16_training_runs_the_network_in_bf16_and_keeps_the_loss_and_weights_fp32(tmp_path):
    from hrinet.training.options import CONFIG_OPTIONS

    assert CONFIG_OPTIONS["precision"] == "precision"  # --precision on hrinet train
    tr = Trainer(tiny("hrinet-flow", 3, precision="bf16"), tmp_path, volumes=volumes(), log=None)
    seen = []
    tr.G.enc[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    logs = tr.train_step()
    assert seen == [torch.bfloat16]  # the convolutions ran under bf16 autocast
    assert np.isfinite(logs["loss_g"])
    assert all(p.dtype == torch.float32 for p in tr.G.parameters())
    _, meta = load_weights(tr.run())
    assert meta["lineage"][-1]["settings"]["precision"] == "bf16"


def test_bf16_training_is_refused_in_one_line_for_the_paper_variants(tmp_path):
    with pytest.raises(HRINetError, match="--precision bf16 trains the flow models only"):
        Trainer(tiny("acai", 1, precision="bf16"), tmp_path, volumes=volumes(), log=None)


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


def test_a_run_folder_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("not a folder")
    with pytest.raises(HRINetError, match="is a file"):
        Trainer(tiny("hrinet-flow", 1), tmp_path / "f", volumes=volumes(), log=None)


def test_a_variant_method_refuses_weights_of_another_variant():
    from hrinet.core.models.shipped import find_weights
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


def test_a_run_folder_that_cannot_be_made_is_one_line_and_leaves_nothing(tmp_path):
    from hrinet.core.phantom import make_phantom
    from hrinet.core.io import write_volume

    (tmp_path / "a file").write_text("the user's")
    data = write_volume(make_phantom(size=(32, 32, 30)), tmp_path / "p.nrrd")
    for command in (["train", "--data", str(data), "--variant", "hrinet-flow"], ["adapt", str(data)]):
        r = subprocess.run([sys.executable, "-m", "hrinet.cli", *command, "--out",
                            str(tmp_path / "a file" / "run" / "deeper"), "--device", "cpu"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().count("\n") == 0 and "cannot make the --out folder" in r.stderr
    assert (tmp_path / "a file").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file", "p.nrrd"]


def test_a_new_run_fine_tunes_the_shipped_weights_of_its_variant_unless_from_scratch(tmp_path,
                                                                                     capsys):
    import json

    from hrinet.cli import main
    from hrinet.cli.train import starting_weights
    from hrinet.core.io import write_volume

    data = write_volume(volumes()[0], tmp_path / "v.nrrd")
    base = ["train", "--data", str(data), "--iterations", "1", "--crop", "64", "--batch", "2",
            "--device", "cpu", "--val-every", "0"]
    assert main(base + ["--out", str(tmp_path / "default")]) == 0
    assert "starting from the shipped weights hrinet-default.safetensors" in capsys.readouterr().out
    sidecar = json.loads((tmp_path / "default" / "hrinet-flow.json").read_text())
    assert sidecar["lineage"][-1]["started_from"] == "hrinet-default.safetensors"
    assert len(sidecar["lineage"]) > 1  # the shipped model's own stages come along
    assert main(base + ["--from-scratch", "--out", str(tmp_path / "scratch")]) == 0
    assert "starting from random weights" in capsys.readouterr().out
    sidecar = json.loads((tmp_path / "scratch" / "hrinet-flow.json").read_text())
    assert sidecar["lineage"][-1]["started_from"] is None and len(sidecar["lineage"]) == 1
    assert main(base + ["--from-scratch", "--init", str(starting_weights(tiny("hrinet-flow", 1))),
                        "--out", str(tmp_path / "both")]) == 2
    assert "contradict" in capsys.readouterr().err
    # the perceptual variant's frozen encoder is not in its weights: it starts at stage I's result
    assert starting_weights(tiny("hrinet-perceptual", 1)).name == "hrinet-variant-acai.safetensors"
    assert starting_weights(tiny("hrinet-mse", 1)).name == "hrinet-variant-hrinet-mse.safetensors"
