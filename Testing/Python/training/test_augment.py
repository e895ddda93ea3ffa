"""Scanner re-acquisition of training groups: each part does what it says, consistently."""

from __future__ import annotations

import numpy as np
import pytest
from hrinet.core.constants import HU_MIN
from hrinet.core.phantom import make_phantom
from hrinet.training import augment
from hrinet.training.augment import Acquisition, reacquire


@pytest.fixture
def block():
    return make_phantom(size=(64, 64, 7), spacing=(3.0, 3.0, 3.0), noise=0).array.astype(np.float32)


def test_nothing_drawn_changes_nothing(block, rng=np.random.default_rng(0)):
    np.testing.assert_array_equal(reacquire(block, Acquisition(), rng), block)


def test_the_circle_fills_the_same_outside_with_air_in_every_slice(block):
    out = reacquire(block, Acquisition(circle=(0.5, 0.5, 0.4)), np.random.default_rng(0))
    outside = augment.circle_mask(block.shape[1:], (0.5, 0.5, 0.4))
    assert (out[:, outside] == HU_MIN).all()
    np.testing.assert_array_equal(out[:, ~outside], block[:, ~outside])


def test_noise_has_the_drawn_strength_and_differs_per_slice(block):
    out = reacquire(block, Acquisition(noise=20.0), np.random.default_rng(0))
    d = out - block
    assert d.std() == pytest.approx(20.0, rel=0.05)
    assert not np.allclose(d[0], d[1])


def test_sharpening_raises_and_smoothing_lowers_edge_energy(block):
    def energy(a):
        return float((np.diff(a, axis=2) ** 2).mean())
    rng = np.random.default_rng(0)
    assert energy(reacquire(block, Acquisition(kernel=1.0), rng)) > energy(block)
    assert energy(reacquire(block, Acquisition(kernel=-1.0), rng)) < energy(block)


def test_resize_block_resamples_every_slice_to_the_crop(block):
    assert augment.resize_block(block, 32).shape == (7, 32, 32)
    assert augment.resize_block(block, 96).shape == (7, 96, 96)


def test_draws_cover_every_part_and_stay_in_their_ranges():
    draws = [augment.draw(np.random.default_rng(i)) for i in range(200)]
    zooms = [d.zoom for d in draws if d.zoom != 1.0]
    assert zooms and min(zooms) >= augment.ZOOM_RANGE[0] and max(zooms) <= augment.ZOOM_RANGE[1]
    assert any(d.kernel < 0 for d in draws) and any(d.kernel > 0 for d in draws)
    assert any(d.noise > 0 for d in draws) and any(d.circle for d in draws)


def test_sharpen_max_widens_the_sharp_kernels_and_its_default_draws_as_before():
    def kernels(**kw):
        return [augment.draw(np.random.default_rng(i), **kw).kernel for i in range(400)]
    assert kernels() == kernels(sharpen_max=augment.SHARPEN_RANGE[1])
    wide = [k for k in kernels(sharpen_max=2.5) if k > 0]
    assert max(wide) <= 2.5 and max(wide) > 2.0 and min(wide) >= augment.SHARPEN_RANGE[0]
    assert max(kernels()) <= augment.SHARPEN_RANGE[1]


def test_the_run_setting_reaches_the_kernels_the_sampler_draws(monkeypatch):
    from hrinet.learned.models import ModelConfig
    from hrinet.training.config import TrainConfig
    from hrinet.training.sampling import make_sampler

    vol = make_phantom(size=(64, 64, 40), spacing=(1.0, 1.0, 1.0), noise=0)
    cfg = TrainConfig(variant="hrinet-flow", data=["p.nrrd"], crop=64, augment=1.0,
                      sharpen_max=2.5)
    asked = []
    real = augment.draw
    monkeypatch.setattr(augment, "draw", lambda rng, *a: asked.append(a) or real(rng, *a))
    make_sampler(cfg, ModelConfig(), [vol]).motion_batch(np.random.default_rng(0), 2, gaps=(2,))
    assert asked == [(2.5,), (2.5,)]


def test_sharpen_max_without_augment_or_out_of_range_is_refused():
    from hrinet.core.errors import HRINetError
    from hrinet.training.config import TrainConfig

    with pytest.raises(HRINetError, match="--augment"):
        TrainConfig(variant="hrinet-flow", data=["p.nrrd"], sharpen_max=2.5).check()
    TrainConfig(variant="hrinet-flow", data=["p.nrrd"], augment=0.25, sharpen_max=2.5).check()


def test_an_augmented_sampler_gives_targets_in_range_and_the_plain_one_is_unchanged():
    from hrinet.training.data import step_rng
    from hrinet.training.motion_data import MotionSampler

    vol = make_phantom(size=(96, 96, 40), spacing=(1.0, 1.0, 1.0))
    plain = MotionSampler([vol], crop=64)
    a = plain.motion_batch(step_rng(0, 0, 3), 2, 2)
    b = plain.motion_batch(step_rng(0, 0, 3), 2, 2)
    np.testing.assert_array_equal(a.targets.numpy(), b.targets.numpy())  # augment 0: as before
    aug = MotionSampler([vol], crop=64)
    aug.augment = 1.0
    c = aug.motion_batch(step_rng(0, 0, 3), 2, 2)
    assert c.targets.shape[-2:] == (64, 64)
    assert float(c.targets.min()) >= HU_MIN and float(c.targets.max()) <= 3071
