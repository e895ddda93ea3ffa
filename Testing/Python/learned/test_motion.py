"""``hrinet-flow``, the motion-aware model: its classical start, exact known slices, slab input,
gradients, and the shipped default."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import shared
from hrinet.core.io import read_volume
from hrinet.core.phantom import make_phantom
from hrinet.evaluation.evaluate import evaluate_volume
from hrinet.learned.inference import make_interpolator
from hrinet.learned.models import ModelConfig
from hrinet.learned.motion import (
    BLEND_CANDIDATES,
    MotionNet,
    gate,
    grown,
    with_blend_head,
)
from hrinet.learned.networks import build_generator
from hrinet.learned.weights import load_weights, save_weights
from hrinet.methods.engine import upsample_z
from hrinet.methods.flow import ROUGHNESS_UNKNOWN


def untrained() -> MotionNet:
    return build_generator(ModelConfig.for_variant("hrinet-flow"))


def perturbed(seed: int = 0) -> MotionNet:
    """A model whose correction is not zero (as after training)."""
    m = untrained()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.head.weight.copy_(torch.randn(m.head.weight.shape, generator=g) * 0.05)
        m.head.bias.fill_(0.01)
    return m.eval()


def test_untrained_model_reproduces_the_classical_flow_method_exactly(oblique_phantom, tmp_path):
    path = save_weights(untrained(), tmp_path / "untrained.safetensors", {})
    learned = upsample_z(oblique_phantom, factor=3, method="hrinet", weights=str(path),
                         device="cpu")
    classical = upsample_z(oblique_phantom, factor=3, method="flow")
    np.testing.assert_array_equal(learned.array, classical.array)


@pytest.mark.parametrize("k", [2, 5])
def test_known_thin_slices_stay_bit_exact_whatever_the_weights(phantom, k):
    interp = make_interpolator(perturbed(), torch.device("cpu"))
    out = upsample_z(phantom, factor=k, interpolator=interp, thickness=0)
    np.testing.assert_array_equal(out.array[::k], phantom.array)
    assert not np.array_equal(out.array, upsample_z(phantom, factor=k, method="flow").array)


def test_slab_input_restores_the_known_positions_too(phantom):
    interp = make_interpolator(perturbed(), torch.device("cpu"))
    out = upsample_z(phantom, factor=3, interpolator=interp, thickness=phantom.spacing[2])
    assert out.metadata["restored_known"] is True
    assert not np.array_equal(out.array[::3], phantom.array)
    assert out.array.shape[0] == (phantom.array.shape[0] - 1) * 3 + 1


def test_the_gate_closes_at_known_thin_slices_and_opens_for_slabs():
    t = torch.tensor([0.0, 1.0, 0.5])
    assert gate(t, torch.zeros(3)).tolist() == [0.0, 0.0, 1.0]
    assert gate(t, torch.ones(3)).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("shape", [(37, 50), (64, 64), (9, 130)])
def test_any_in_plane_size_comes_back_at_its_size(shape):
    vol = make_phantom(size=(shape[1], shape[0], 4), spacing=(1, 1, 4), seed=2)
    interp = make_interpolator(perturbed(), torch.device("cpu"))
    out = upsample_z(vol, factor=2, interpolator=interp)
    assert out.array.shape == (7,) + shape


def test_gradients_reach_every_parameter():
    m = perturbed().train()
    x = torch.randn(2, 4, 32, 32) * 100
    y = m(x, x[:, 1:4], torch.tensor([0.3, 0.6]), torch.tensor([0.0, 1.0]),
          torch.tensor([1.5, 2.0]))
    y.pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_weights_from_before_the_blend_head_load_and_compute_as_they_did(tmp_path):
    """The blend head is new; weights saved without it still load (their sidecar says
    ``blend: false``), and upgraded to it for training they compute exactly the same."""
    import dataclasses

    old = MotionNet(dataclasses.replace(ModelConfig.for_variant("hrinet-flow"), blend=False,
                                        spline=False, roughness=False))
    with torch.no_grad():
        old.head.weight.normal_(0, 0.05)
    loaded, meta = load_weights(save_weights(old.eval(), tmp_path / "old.safetensors", {}))
    assert meta["config"]["blend"] is False and loaded.head.out_channels == 1
    grown = with_blend_head(loaded).eval()
    assert grown.cfg.blend and grown.head.out_channels == 1 + len(BLEND_CANDIDATES)
    x, t, s = torch.randn(2, 4, 32, 32) * 300, torch.tensor([0.3, 0.5]), torch.tensor([0.0, 1.0])
    with torch.no_grad():
        assert torch.equal(grown(x, x[:, 1:3], t, s), loaded(x, x[:, 1:3], t, s))


def test_weights_from_before_the_spline_candidate_grow_into_it_computing_as_they_did(tmp_path):
    """The 6-slice spline is a newer candidate: weights without it load (sidecar ``spline:
    false``, 4-slice context), and grown for training they ignore it until trained to use it."""
    import dataclasses

    old = MotionNet(dataclasses.replace(ModelConfig.for_variant("hrinet-flow"), spline=False,
                                        roughness=False))
    with torch.no_grad():
        old.head.weight.normal_(0, 0.05)
    loaded, meta = load_weights(save_weights(old.eval(), tmp_path / "old.safetensors", {}))
    assert meta["config"]["spline"] is False
    assert make_interpolator(loaded, torch.device("cpu")).halo == 1
    new = grown(loaded).eval()
    assert new.cfg.spline and make_interpolator(new, torch.device("cpu")).halo == 2
    x, t, s = torch.randn(2, 7, 32, 32) * 300, torch.tensor([0.3, 0.5]), torch.tensor([0.0, 1.0])
    rho = torch.tensor([1.4, 2.3])
    with torch.no_grad():
        assert torch.equal(new(x[:, :4], x[:, 4:7], t, s, rho), loaded(x[:, :4], x[:, 4:6], t, s))


def test_the_roughness_input_changes_a_trained_model_and_defaults_to_unmeasured():
    m = untrained()
    with torch.no_grad():
        m.enc[0][0].weight[:, -1].normal_(0, 0.5)  # the roughness channel comes last
        m.head.weight.normal_(0, 0.05)
    x, t, s = torch.randn(1, 7, 16, 16) * 300, torch.tensor([0.5]), torch.zeros(1)
    with torch.no_grad():
        smooth = m(x[:, :4], x[:, 4:], t, s, torch.tensor([1.4]))
        rough = m(x[:, :4], x[:, 4:], t, s, torch.tensor([2.3]))
        unknown = m(x[:, :4], x[:, 4:], t, s, torch.tensor([ROUGHNESS_UNKNOWN]))
        assert not torch.equal(smooth, rough)
        assert torch.equal(m(x[:, :4], x[:, 4:], t, s), unknown)


@pytest.mark.parametrize("which, index", [("cubic", 3), ("linear", 2), ("w3", 5), ("spline", 6)])
def test_a_blend_weight_of_one_picks_that_candidate_wherever_the_gate_is_open(which, index):
    """Weight maps, not redrawn detail: a head that outputs 1 for one candidate (and nothing
    else) turns the model into that candidate estimate at a synthesised position."""
    m = untrained()
    with torch.no_grad():
        m.head.bias[1 + index] = 1.0
    samples = torch.randn(1, 4, 16, 16) * 200
    plain = torch.randn(1, 3, 16, 16) * 200
    with torch.no_grad():
        y = m(samples, plain, torch.tensor([0.5]), torch.zeros(1))
    candidates = torch.cat([samples, plain], 1)[:, m.candidates]
    torch.testing.assert_close(y, candidates[:, index:index + 1], rtol=0, atol=1e-3)


def test_weights_round_trip_as_the_flow_variant(tmp_path):
    m = perturbed(3)
    path = save_weights(m, tmp_path / "m.safetensors", {"training": {}})
    loaded, meta = load_weights(path)
    assert meta["variant"] == "hrinet-flow" and isinstance(loaded, MotionNet)
    for k, v in m.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)


def test_the_shipped_default_loads_through_the_cli_path_and_beats_linear_on_real_ct():
    from hrinet.learned.inference import load_interpolator
    from hrinet.methods import default_method
    from hrinet.training.validation import val_subvolume

    assert default_method() == "hrinet"
    interp = load_interpolator(device="cpu")
    assert interp.metadata["variant"] == "hrinet-flow"
    vol = val_subvolume(read_volume(shared("chest-lidc-1mm.nrrd")), 41, 96)
    rows = {r.method: r for r in evaluate_volume(vol, "chest", [4], ["linear", "hrinet"],
                                                 interpolators={"hrinet": interp})}
    assert rows["hrinet"].psnr_hu > rows["linear"].psnr_hu + 0.5


def test_a_box_blurred_volume_is_restored_better_than_by_cubic():
    """A thin volume made thick with a known box profile: the default model, told the thickness,
    gets closer to the thin truth than cubic B-splines (which can only copy the slabs)."""
    from hrinet.core.slab import simulate_thick
    from hrinet.training.validation import val_subvolume

    thin = val_subvolume(read_volume(shared("thorax-2mm.nrrd")), 41, 96)
    rows = {r.method: r.psnr_hu for r in evaluate_volume(thin, "c", [4], ["cubic", "hrinet"],
                                                         device="cpu", protocol="slab")}
    assert rows["hrinet"] > rows["cubic"]
    thick = simulate_thick(thin, 4)
    assert thick.metadata["slice_thickness_mm"] == pytest.approx(4 * thin.spacing[2])


def test_learned_slices_stay_within_the_input_range(phantom):
    interp = make_interpolator(perturbed(7), torch.device("cpu"))
    with torch.no_grad():
        interp.model.head.bias.fill_(1.0)  # a correction that would overshoot by 4000 HU
    out = upsample_z(phantom, factor=3, interpolator=interp, thickness=phantom.spacing[2])
    assert out.array.min() >= phantom.array.min() and out.array.max() <= phantom.array.max()


def _slow_reference(model: MotionNet, window: np.ndarray, pairs, fractions) -> np.ndarray:
    """The model run the plain way: one slice at a time, default memory layout, features built
    straight from the flow functions (two context slices each side: a spline model)."""
    from hrinet.learned.models import pad_to_stride
    from hrinet.learned.motion import MOTION_STRIDE
    from hrinet.methods.flow import (
        PairFlows,
        estimate_flow,
        plain_estimates,
        trajectory_samples,
        z_roughness,
    )

    out = np.empty((len(pairs), len(fractions)) + window.shape[1:], np.float32)
    n = len(window)
    for i, p in enumerate(pairs):
        k0 = window[p - 1] if p >= 1 else None
        k3 = window[p + 2] if p + 2 < n else None
        far = (window[p - 2] if p >= 2 else None, window[p + 3] if p + 3 < n else None)
        k1, k2 = window[p], window[p + 1]
        flows = PairFlows(estimate_flow(k1, k2), estimate_flow(k2, k1),
                          None if k0 is None else estimate_flow(k1, k0),
                          None if k3 is None else estimate_flow(k2, k3))
        for j, t in enumerate(fractions):
            rho = torch.tensor([z_roughness([far[0], k0, k1, k2, k3, far[1]])])
            x = np.concatenate([trajectory_samples(k0, k1, k2, k3, flows, t),
                                plain_estimates(k0, k1, k2, k3, t, far)])[None]
            x, (h, w) = pad_to_stride(torch.from_numpy(x), MOTION_STRIDE)
            with torch.no_grad():
                y = model(x[:, :4], x[:, 4:], torch.tensor([t]), torch.zeros(1), rho)
            out[i, j] = y[0, 0, :h, :w].numpy()
    return np.clip(out, window.min(), window.max())


def test_the_fast_path_matches_the_plain_slice_by_slice_computation(phantom):
    """Batching, channels-last, per-batch features on a second thread: the same numbers."""
    model = perturbed(3)
    window = phantom.array[:6].astype(np.float32)
    fractions = [j / 5 for j in range(1, 5)]
    fast = make_interpolator(model, torch.device("cpu"), batch_size=3)  # batches cross pairs
    got = fast.interpolate(window, [0, 2, 4], fractions)
    want = _slow_reference(model, window, [0, 2, 4], fractions)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-2)  # HU; float reassociation only
    assert np.abs(got - fast.interpolate(window, [0, 2, 4], fractions)).max() == 0


def test_overlap_remakes_groups_as_overlapping_reconstructions_and_only_when_asked():
    from hrinet.core.volume import Volume
    from hrinet.training.data import step_rng
    from hrinet.training.motion_data import MotionSampler

    # slices alternate -1000 / +1000 HU: any thin slice is one or the other, any slab a mix
    z = np.where(np.arange(40) % 2 == 0, -1000, 1000).astype(np.int16)
    vol = Volume(np.broadcast_to(z[:, None, None], (40, 64, 64)).copy(), spacing=(1, 1, 1))
    sampler = MotionSampler([vol], crop=64)
    thin = sampler.motion_batch(step_rng(0, 0, 0), 6, gaps=(2, 3), overlap=0.0).targets
    assert set(np.unique(thin.numpy())) <= {-1000.0, 1000.0}
    remade = sampler.motion_batch(step_rng(0, 0, 0), 6, gaps=(2, 3), overlap=1.0).targets
    assert np.all(np.abs(remade.numpy()) < 990)  # every target now a 1.3-2 slice slab


@pytest.mark.parametrize("spline", [False, True])
def test_training_targets_lie_between_the_pair_the_features_are_built_from(spline):
    """On a volume that is a ramp along z the linear estimate between the bracketing known
    slices is the truth, wherever the group and its target were drawn (thin or slab input)."""
    from hrinet.core.volume import Volume
    from hrinet.training.data import step_rng
    from hrinet.training.motion_data import MotionSampler

    z = (np.arange(80) * 10 - 400).astype(np.int16)
    vol = Volume(np.broadcast_to(z[:, None, None], (80, 32, 32)).copy(), spacing=(1, 1, 1))
    sampler = MotionSampler([vol], crop=32)
    sampler.spline = spline
    mb = sampler.motion_batch(step_rng(0, 0, 1), 12, per_group=3, gaps=(2, 5, 8))
    assert mb.plain.shape[1] == (3 if spline else 2)
    torch.testing.assert_close(mb.plain[:, :1], mb.targets, rtol=0, atol=0.05)


def test_training_measures_roughness_on_whole_slices_and_overlap_makes_them_smoother():
    """Slices that share nothing read about 3; re-made as overlapping reconstructions they share
    their neighbours' anatomy and read smoother, as at inference."""
    from hrinet.core.volume import Volume
    from hrinet.training.data import step_rng
    from hrinet.training.motion_data import MotionSampler

    rng = np.random.default_rng(0)
    vol = Volume((rng.normal(0, 300, (60, 96, 96))).astype(np.int16), spacing=(1, 1, 1))
    sampler = MotionSampler([vol], crop=32)
    sampler.spline = sampler.roughness = True
    thin = sampler.motion_batch(step_rng(0, 0, 0), 8, gaps=(2,), overlap=0.0)
    remade = sampler.motion_batch(step_rng(0, 0, 0), 8, gaps=(2,), overlap=1.0)
    measured = thin.rho[(thin.s == 0) & (thin.rho != ROUGHNESS_UNKNOWN)]
    assert len(measured) and torch.all((measured > 2.5) & (measured < 3.5))
    assert remade.rho[remade.s == 0].max() < measured.min()


@pytest.mark.parametrize("flags", [dict(blend=False, spline=True),
                                   dict(spline=False, roughness=True)])
def test_inputs_come_in_the_order_they_were_added_so_that_older_weights_grow_exactly(flags):
    """Each new input's channel is appended after the last (``grown`` relies on it): a model
    with an input but without the one added before it is refused."""
    import dataclasses

    with pytest.raises(ValueError, match="needs the"):
        MotionNet(dataclasses.replace(ModelConfig.for_variant("hrinet-flow"), **flags))


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_drop_context_sets_how_often_training_groups_look_like_a_volume_end(p):
    """With every context slice dropped the outer samples repeat the bracketing pair's and the
    roughness is unmeasured (two slices); with none dropped every group has its context."""
    from hrinet.core.volume import Volume
    from hrinet.training.data import step_rng
    from hrinet.training.motion_data import MotionSampler

    rng = np.random.default_rng(1)
    vol = Volume(rng.normal(0, 300, (60, 48, 48)).astype(np.int16), spacing=(1, 1, 1))
    sampler = MotionSampler([vol], crop=32)
    sampler.spline = sampler.roughness = True
    sampler.drop_context = p
    mb = sampler.motion_batch(step_rng(0, 0, 0), 6, gaps=(2, 3))
    s = mb.samples
    ends = torch.stack([(s[:, 0] == s[:, 1]).flatten(1).all(1),
                        (s[:, 3] == s[:, 2]).flatten(1).all(1)])
    assert bool(ends.all()) == (p == 1.0) and bool(ends.any()) == (p == 1.0)
    assert bool((mb.rho == ROUGHNESS_UNKNOWN).all()) == (p == 1.0)
