"""The training losses: window weight and the SSIM term, as the metric defines them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hrinet.core.constants import HU_MIN, HU_SCALE
from hrinet.training.data import step_rng
from hrinet.training.trainer import Trainer
from training_cases import tiny, volumes


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
    from hrinet.training.losses import ssim_torch

    rng = np.random.default_rng(0)
    truth = rng.random((1, 1, 48, 48))
    noisy = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1)
    got = ssim_torch(torch.tensor(noisy), torch.tensor(truth)).item()
    assert got == pytest.approx(ssim_slice(noisy[0, 0], truth[0, 0], 1.0), abs=0.01)
    flat = np.full_like(truth, truth.mean())  # the smooth mean has no texture left
    assert ssim_torch(torch.tensor(flat), torch.tensor(truth)).item() < 0.1


def test_per_sample_ssim_is_each_images_own_ssim():
    from hrinet.training.losses import ssim_torch

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


def test_the_energy_weight_changes_the_training_step(tmp_path):
    runs = {}
    for w in (0.0, 1.0):
        tr = Trainer(tiny("hrinet-flow", 1, log_mse=True, energy_weight=w), tmp_path / str(w),
                     volumes=volumes(), log=None)
        runs[w] = tr.motion_step(step_rng(3, 0, 0))["loss_g"]
    # the same batch (same seed): the term adds a squared log ratio, never below zero
    assert runs[1.0] > runs[0.0]


def test_the_ssim_weight_changes_the_log_mse_training_step(tmp_path):
    runs = {}
    for w in (0.0, 0.3):
        tr = Trainer(tiny("hrinet-flow", 1, log_mse=True, ssim_weight=w), tmp_path / str(w),
                     volumes=volumes(), log=None)
        runs[w] = tr.motion_step(step_rng(3, 0, 0))["loss_g"]
    # the same batch (same seed): the term adds 0.3 * mean log(1 - SSIM + floor), below zero
    assert runs[0.3] < runs[0.0]


def test_a_motion_batch_records_each_samples_gap():
    from hrinet.core.phantom import make_phantom
    from hrinet.training.motion_data import MotionSampler

    vol = make_phantom(size=(64, 64, 40), spacing=(1.0, 1.0, 1.0))
    mb = MotionSampler([vol], crop=64).motion_batch(np.random.default_rng(0), 8, 2, gaps=(2, 5))
    assert len(mb.gap) == len(mb.t) and set(mb.gap.tolist()) == {2.0, 5.0}
    # each target lies a whole number of thin slices into its gap
    steps = mb.t * mb.gap
    assert torch.allclose(steps, torch.round(steps), atol=1e-5)


def test_in_a_mixed_batch_only_the_x2_samples_get_the_x2_ssim_weight():
    from hrinet.training.losses import ssim_weights

    weights = ssim_weights(torch.tensor([2.0, 5.0, 2.0, 3.0]), 0.3, 0.7)
    assert torch.allclose(weights, torch.tensor([1.0, 0.3, 1.0, 0.3]))


def test_the_x2_ssim_weight_changes_the_training_step_on_x2_samples(tmp_path):
    def first_loss(x2_weight: float) -> float:
        cfg = tiny("hrinet-flow", 1, log_mse=True, ssim_weight=0.3, ssim_x2_weight=x2_weight,
                   group_sizes=[3])  # every sample x2
        tr = Trainer(cfg, tmp_path / str(x2_weight), volumes=volumes(), log=None)
        return tr.motion_step(step_rng(3, 0, 0))["loss_g"]

    # the same batch: 0.7 * mean log(1 - SSIM + floor) more, below zero (the samples at other
    # gaps keep --ssim-weight alone: the mixed-batch test above)
    assert first_loss(0.7) < first_loss(0.0) - 0.1


def test_the_x2_ssim_weight_needs_the_log_scale_ssim_term():
    from hrinet.core.errors import HRINetError
    from hrinet.training.config import TrainConfig

    with pytest.raises(HRINetError, match="--ssim-x2-weight .* give --log-mse"):
        TrainConfig(data=["a.nrrd"], variant="hrinet-flow", ssim_x2_weight=0.7).check()
    with pytest.raises(HRINetError, match="--gaps 3,4 never draws; add 2"):
        TrainConfig(data=["a.nrrd"], variant="hrinet-flow", log_mse=True, ssim_x2_weight=0.7,
                    group_sizes=[4, 5]).check()

def test_the_gradient_difference_is_zero_for_the_truth_and_grows_as_edges_blur():
    import torch.nn.functional as F

    from hrinet.training.losses import gradient_difference, log_gradient_difference

    blocks = (torch.arange(32) // 8) % 2  # 8-pixel squares: edges a blur softens
    truth = (blocks[:, None] ^ blocks[None, :]).float().expand(2, 1, 32, 32)
    def blur(x, centre):  # a separable 3-tap blur keeping `centre` of each pixel
        k = torch.tensor([(1 - centre) / 2, centre, (1 - centre) / 2])
        x = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="replicate"), k.view(1, 1, 1, 3))
        return F.conv2d(F.pad(x, (0, 0, 1, 1), mode="replicate"), k.view(1, 1, 3, 1))

    blur1, blur2 = blur(truth, 0.5), blur(truth, 1 / 3)
    d0, d1, d2 = (gradient_difference(p, truth) for p in (truth, blur1, blur2))
    assert d0.shape == (2,) and torch.all(d0 == 0)
    assert torch.all(d1 > 0) and torch.all(d2 > d1)
    assert torch.all(log_gradient_difference(blur1, truth) > log_gradient_difference(truth, truth))


def test_the_energy_gap_sees_every_pixel_of_blur_and_invented_edges_alike():
    import torch.nn.functional as F

    from hrinet.training.losses import gradient_difference, log_energy_gap

    blocks = (torch.arange(32) // 8) % 2
    truth = (blocks[:, None] ^ blocks[None, :]).float().expand(2, 1, 32, 32) * 0.1 + 0.2
    box = torch.ones(1, 1, 3, 3) / 9
    blur1 = F.conv2d(F.pad(truth, (1, 1, 1, 1), mode="replicate"), box)
    blur2 = F.conv2d(F.pad(blur1, (1, 1, 1, 1), mode="replicate"), box)
    e0, e1, e2 = (log_energy_gap(p, truth) for p in (truth, blur1, blur2))
    assert e0.shape == (2,) and torch.all(e0 == 0)
    # a second blur costs clearly more energy; the gradient difference barely moves
    assert torch.all(e2 > 1.5 * e1)
    d1, d2 = gradient_difference(blur1, truth), gradient_difference(blur2, truth)
    assert torch.all(d2 < 1.5 * d1)
    # edges twice as strong as the truth's (structure not there) cost as much as half of them
    sharp, soft = 0.2 + (truth - 0.2) * 2, 0.2 + (truth - 0.2) / 2
    torch.testing.assert_close(log_energy_gap(sharp, truth), log_energy_gap(soft, truth),
                               rtol=1e-3, atol=0)  # up to the floor that keeps flat crops finite


def test_the_balanced_weight_sets_the_extra_gradient_to_a_share_of_the_contents():
    from hrinet.training.losses import balanced_weight

    out = torch.linspace(0, 1, 64).view(1, 1, 8, 8).requires_grad_(True)
    content = ((out - 0.3) ** 2).mean()
    extra = 1e-6 * out.sin().sum()  # a term on another scale altogether
    w = balanced_weight(content, extra, out, 0.1)
    assert not w.requires_grad
    (gc,) = torch.autograd.grad(content, out, retain_graph=True)
    (ge,) = torch.autograd.grad(w * extra, out)
    assert ge.norm().item() == pytest.approx(0.1 * gc.norm().item(), rel=1e-5)


def test_the_adversarial_weight_trains_the_patchgan_on_synthesised_against_acquired_slices(tmp_path):
    runs = {}
    for w in (0.0, 0.2):
        tr = Trainer(tiny("hrinet-flow", 1, log_mse=True, adversarial_weight=w), tmp_path / str(w),
                     volumes=volumes(), log=None)
        d2 = [p.detach().clone() for p in tr.D2.parameters()]
        g = [p.detach().clone() for p in tr.G.parameters()]
        runs[w] = tr.motion_step(step_rng(3, 0, 0))
        runs[w]["d2_moved"] = any(not torch.equal(a, b) for a, b in zip(d2, tr.D2.parameters()))
        runs[w]["g_moved"] = any(not torch.equal(a, b) for a, b in zip(g, tr.G.parameters()))
    off, on = runs[0.0], runs[0.2]
    # off: the critic is neither trained nor consulted; on: it learns, and the generator's loss
    # is the same content (same batch) plus the adversarial term
    assert not off["d2_moved"] and "loss_d2" not in off and off["g_moved"]
    assert on["d2_moved"] and on["g_moved"] and np.isfinite(on["loss_d2"]) and on["loss_d2"] > 0
    assert on["content"] == pytest.approx(off["content"])
    assert on["loss_g"] != pytest.approx(off["loss_g"])


def test_the_adversarial_weight_is_refused_by_the_paper_variants(tmp_path):
    from hrinet.core.errors import HRINetError

    with pytest.raises(HRINetError, match="--adversarial-weight trains the flow models only"):
        Trainer(tiny("hrinet-mse", 1, adversarial_weight=0.1), tmp_path / "m", volumes=volumes(),
                log=None)


def test_the_conditional_critic_judges_each_slice_beside_the_two_nearest_known_slices(tmp_path):
    from hrinet.training.losses import critic_context, with_context

    samples = torch.stack([torch.full((8, 8), hu) for hu in (-1000.0, 0.0, 40.0, 3000.0)])[None]
    context = critic_context(samples)
    # w1 and w2 (the nearest known slices), in the models' [0, 1] range
    assert context.shape == (1, 2, 8, 8)
    assert context[0, 0, 0, 0].item() == pytest.approx((0.0 - HU_MIN) / HU_SCALE)
    assert context[0, 1, 0, 0].item() == pytest.approx((40.0 - HU_MIN) / HU_SCALE)
    judged = torch.rand(1, 1, 8, 8)
    assert torch.equal(with_context(None, judged), judged)
    assert torch.equal(with_context(context, judged)[:, 2:], judged)

    tr = Trainer(tiny("hrinet-flow", 1, log_mse=True, adversarial_weight=0.2,
                      adversarial_context=True), tmp_path / "c", volumes=volumes(), log=None)
    assert tr.D2.net[0].in_channels == 3
    logs = tr.motion_step(step_rng(3, 0, 0))
    assert np.isfinite(logs["loss_d2"]) and logs["loss_d2"] > 0


def test_the_conditional_critic_without_an_adversarial_weight_is_refused(tmp_path):
    from hrinet.core.errors import HRINetError

    with pytest.raises(HRINetError, match="--adversarial-context .* give --adversarial-weight"):
        Trainer(tiny("hrinet-flow", 1, adversarial_context=True), tmp_path / "c",
                volumes=volumes(), log=None)


def test_a_resumed_run_cannot_turn_the_conditional_critic_on_or_off(tmp_path):
    """Its checkpoint holds a PatchGAN for one input size: one line, not a shape error."""
    from hrinet.core.errors import HRINetError
    from hrinet.training.resume import resume_run

    tr = Trainer(tiny("hrinet-flow", 1, log_mse=True, adversarial_weight=0.2), tmp_path,
                 volumes=volumes(), log=None)
    tr.run()
    with pytest.raises(HRINetError, match="cannot change adversarial_context"):
        resume_run(tmp_path, {"adversarial_context": True}, log=None)
