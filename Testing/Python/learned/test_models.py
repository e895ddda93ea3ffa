"""The paper's model family: shapes, mixing, losses, safe weights."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from hrinet.core.errors import HRINetError
from hrinet.core.variants import VARIANTS
from hrinet.learned.models import (
    ACAICritic,
    Generator,
    ModelConfig,
    PatchGAN,
    table1_mix_channels,
)
from hrinet.learned.weights import load_weights, save_weights, sidecar_of
from hrinet.training.losses import acai_critic_loss, generator_adversarial


@pytest.mark.parametrize("size, shapes", [
    (256, [(16, 16, 16), (8, 8, 8), (8, 4, 4)]),  # Table 1: 16x16x16, 8x8x8, 4x4x8 (C, H, W)
    (512, [(16, 32, 32), (8, 16, 16), (4, 8, 8)]),  # Table 1: 32x32x16, 16x16x8, 8x8x4
])
@pytest.mark.parametrize("variant", ["ae", "acai", "hrinet-patchgan", "hrinet-mse",
                                     "hrinet-perceptual"])
def test_mixed_maps_have_table1_shapes(variant, size, shapes):
    g = Generator(ModelConfig.for_variant(variant, design_size=size))
    with torch.no_grad():
        z = g.encode(torch.zeros(1, 1, size, size))
    assert [tuple(t.shape[1:]) for t in z] == shapes
    assert table1_mix_channels(size) == tuple(s[0] for s in shapes)


def test_fully_convolutional_on_crops():
    g = Generator(ModelConfig.for_variant("hrinet-mse"))
    x = torch.rand(2, 1, 128, 192)
    assert g.interpolate(x, x, torch.tensor([0.3, 0.7])).shape == x.shape


@pytest.mark.parametrize("variant", ["acai", "hrinet-mse"])
def test_mixing_at_a_1_and_0_decodes_each_input_alone(variant):
    torch.manual_seed(0)
    g = Generator(ModelConfig.for_variant(variant)).eval()
    x1, x2 = torch.rand(2, 1, 1, 128, 128)
    with torch.no_grad():
        at1 = g.interpolate(x1, x2, torch.ones(1))
        at0 = g.interpolate(x1, x2, torch.zeros(1))
        torch.testing.assert_close(at1, g.decode(g.encode(x1)))
        torch.testing.assert_close(at0, g.decode(g.encode(x2)))
        torch.testing.assert_close(at1, g.reconstruct(x1))
        assert not torch.equal(at1, at0)  # the two inputs really decode differently


def test_hrinet_plus_reproduces_the_known_slices_exactly_even_when_trained():
    torch.manual_seed(0)
    g = Generator(ModelConfig.for_variant("hrinet-plus")).eval()
    for p in g.head.parameters():  # pretend training moved the head away from zero
        torch.nn.init.normal_(p, std=0.1)
    x1, x2 = torch.rand(2, 1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(g.interpolate(x1, x2, torch.ones(1)), x1)
        torch.testing.assert_close(g.interpolate(x1, x2, torch.zeros(1)), x2)
        mid = g.interpolate(x1, x2, torch.tensor([0.5]))
    assert not torch.allclose(mid, (x1 + x2) / 2)


def test_hrinet_plus_is_symmetric_in_its_inputs():
    torch.manual_seed(1)
    g = Generator(ModelConfig.for_variant("hrinet-plus")).eval()
    for p in g.head.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x1, x2 = torch.rand(2, 1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(g.interpolate(x1, x2, torch.tensor([0.3])),
                                   g.interpolate(x2, x1, torch.tensor([0.7])), atol=1e-5, rtol=0)


def test_critic_loss_is_paper_equation_2():
    d_mix = torch.tensor([0.2, 0.9])
    a = torch.tensor([0.5, 0.1])
    d_blend = torch.tensor([0.3, -0.1])
    expected = ((0.2 - 0.5) ** 2 + (0.9 - 0.1) ** 2) / 2 + (0.3 ** 2 + 0.1 ** 2) / 2
    assert acai_critic_loss(d_mix, a, d_blend).item() == pytest.approx(expected)


def test_generator_adversarial_terms():
    d1 = torch.tensor([0.5, -0.5])
    logits = torch.tensor([[0.0]])
    # lambda * mean(D1^2) + beta * log(1 - sigmoid(0)) = 0.5 * 0.25 + 0.1 * log(0.5)
    got = generator_adversarial(d1, logits, lam=0.5, beta=0.1).item()
    assert got == pytest.approx(0.125 + 0.1 * np.log(0.5), rel=1e-5)


def test_critics_output_shapes():
    x = torch.rand(3, 1, 128, 128)
    assert ACAICritic()(x).shape == (3,)
    patches = PatchGAN(16)(x)
    assert patches.shape[:2] == (3, 1) and patches.shape[-1] > 1  # one logit per patch


# ---- weights --------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    g = Generator(ModelConfig.for_variant("hrinet-mse"))
    return save_weights(g, tmp_path / "m.safetensors", {"training": {"note": "test"}}), g


def test_weights_round_trip_with_metadata(saved):
    path, g = saved
    model, meta = load_weights(path)
    assert meta["variant"] == "hrinet-mse" and meta["sha256"]
    for k, v in g.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_pickle_is_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    p = tmp_path / "evil.safetensors"
    p.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(HRINetError, match="pickle"):
        load_weights(p)
    torch.save({"w": torch.zeros(1)}, tmp_path / "model.pt")
    with pytest.raises(HRINetError, match="pickle"):
        load_weights(tmp_path / "model.pt")
    assert not marker.exists()


def test_sha256_mismatch_is_refused(saved):
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(HRINetError, match="sha256"):
        load_weights(path)


def test_missing_sidecar_is_refused(saved):
    path, _ = saved
    sidecar_of(path).unlink()
    with pytest.raises(HRINetError, match="no sidecar"):
        load_weights(path)


def test_weights_of_another_variant_than_the_sidecar_says_are_refused(saved, tmp_path):
    path, _ = saved
    meta = json.loads(sidecar_of(path).read_text())
    meta["variant"] = meta["config"]["variant"] = "hrinet-plus"
    meta["config"]["channels"] = [16, 24, 32, 48, 64, 64, 64]
    sidecar_of(path).write_text(json.dumps(meta))
    with pytest.raises(HRINetError, match="was changed"):
        load_weights(path)


def test_other_normalisation_is_refused(saved):
    path, _ = saved
    meta = json.loads(sidecar_of(path).read_text())
    meta["normalisation"]["hu_min"] = -1000
    sidecar_of(path).write_text(json.dumps(meta))
    with pytest.raises(HRINetError, match="normalisation"):
        load_weights(path)


def test_every_variant_is_known():
    assert set(VARIANTS) == {"ae", "acai", "hrinet-patchgan", "hrinet-mse",
                             "hrinet-perceptual", "hrinet-plus", "hrinet-flow"}
