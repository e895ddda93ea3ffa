"""Cross-view training groups (``--cross-view``): planes of z and an in-plane axis, square pixels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hrinet.core.errors import HRINetError
from hrinet.core.phantom import make_phantom
from hrinet.core.volume import Volume
from hrinet.learned.models import HU_MAX, HU_MIN, HU_SCALE
from hrinet.training import cross_view
from hrinet.training.config import TrainConfig
from hrinet.training.cross_view import PlaneCrop, plane_crop
from hrinet.training.motion_data import MotionSampler
from training_cases import tiny, volumes


def recording(monkeypatch):
    """Record every cross-view block drawn: ``(normalised block, PlaneCrop)``."""
    drawn, draw = [], cross_view.draw

    def record(*args, **kw):
        drawn.append(draw(*args, **kw))
        return drawn[-1]
    monkeypatch.setattr(cross_view, "draw", record)
    return drawn


def direct(vol: Volume, where: PlaneCrop, n: int, size: int, rows: int = 0) -> np.ndarray:
    """The planes sliced straight from the array (``rows`` slices of z, default ``size``)."""
    zs, bs = slice(where.z0, where.z0 + (rows or size)), slice(where.b0, where.b0 + size)
    if where.axis == 1:
        return np.stack([vol.array[zs, where.a0 + i, bs] for i in range(n)]).astype(np.float32)
    return np.stack([vol.array[zs, bs, where.a0 + i] for i in range(n)]).astype(np.float32)


def orientations(block: np.ndarray):
    """The block as :func:`cross_view.draw` may transpose, flip and reverse it."""
    for t, fx, fy, fz in itertools.product((0, 1), repeat=4):
        b = block.transpose(0, 2, 1) if t else block
        b = b[:, :, ::-1] if fx else b
        b = b[:, ::-1] if fy else b
        yield b[::-1] if fz else b


def test_cross_view_zero_never_enters_the_cross_view_draws(monkeypatch):
    # the default takes not one number more from the generator: the z draws stay the same
    # (checked once against the code before the option: identical batches, seeds 0-2, with and
    # without spline, roughness, augment and overlap)
    vols = [make_phantom(size=(64, 64, 40), spacing=(1.0, 1.0, 1.0), seed=1)]
    plain = MotionSampler(vols, crop=32)
    a = plain.motion_batch(np.random.default_rng(4), 3, 2)
    after_a = np.random.default_rng(4)
    plain.motion_batch(after_a, 3, 2)

    def refuse(*args, **kw):
        raise AssertionError("a cross-view draw with cross_view = 0")
    for name in ("draw", "eligible", "whole_planes"):
        monkeypatch.setattr(cross_view, name, refuse)
    zero = MotionSampler(vols, crop=32)
    zero.cross_view = 0.0
    rng = np.random.default_rng(4)
    b = zero.motion_batch(rng, 3, 2)
    for f in ("samples", "plain", "t", "s", "rho", "targets"):
        np.testing.assert_array_equal(getattr(a, f).numpy(), getattr(b, f).numpy())
    assert rng.random() == after_a.random()


@pytest.mark.parametrize("axis", [1, 2])
def test_a_linear_volume_gives_planes_with_square_pixels(axis):
    # value = 2 z + 3 y + 5 x (mm): the cubic reproduces it, so the steps show each pixel's size
    nz, ny, nx = 20, 24, 28
    sx, sy, sz = 0.5, 0.8, 2.0
    z, y, x = np.meshgrid(np.arange(nz) * sz, np.arange(ny) * sy, np.arange(nx) * sx,
                          indexing="ij")
    vol = Volume((2 * z + 3 * y + 5 * x).astype(np.float32), spacing=(sx, sy, sz))
    p = sx if axis == 1 else sy  # the plane's in-plane axis: x when stacked along y
    where = PlaneCrop(axis, a0=1, z0=2, b0=0, step=p / sz)
    block = plane_crop(vol, where, 4, 16)
    assert block.shape == (4, 16, 16)
    np.testing.assert_allclose(np.diff(block, axis=1), 2 * p, atol=1e-3)  # z rows: p mm apart
    np.testing.assert_allclose(np.diff(block, axis=2), (5 if axis == 1 else 3) * p, atol=1e-3)
    np.testing.assert_allclose(np.diff(block, axis=0), 3 * sy if axis == 1 else 5 * sx,
                               atol=1e-3)
    assert block[0, 0, 0] == pytest.approx(2 * 2 * sz + (3 * sy if axis == 1 else 5 * sx))


def test_anisotropic_planes_are_the_volumes_slices_every_pixel_size():
    vol = make_phantom(size=(48, 40, 24), spacing=(0.8, 0.8, 3.2), seed=2)
    assert cross_view.rows(vol, 1) == 23 * 4 + 1  # 3.2 mm slices: 4 rows of 0.8 mm each
    block, where = cross_view.draw(np.random.default_rng(0), vol, 1, 5, 32)
    assert block.shape == (5, 32, 32) and where.step == pytest.approx(0.25)
    planes = plane_crop(vol, where, 5, 32)
    # every 4th row is a real slice row; the rows between are interpolated within its range
    np.testing.assert_array_equal(planes[:, ::4], direct(vol, where, 5, 32, rows=8))
    assert planes.min() >= vol.array.min() - 200 and planes.max() <= vol.array.max() + 200


def test_cross_view_groups_have_the_right_shapes_and_real_planes_as_targets(monkeypatch):
    vol = make_phantom(size=(48, 40, 36), spacing=(1.0, 1.0, 1.0), seed=3)
    drawn = recording(monkeypatch)
    sampler = MotionSampler([vol], crop=32)
    sampler.spline = sampler.roughness = True  # the whole planes measure the roughness too
    sampler.cross_view = 1.0
    batches = [sampler.motion_batch(np.random.default_rng(seed), 2, 2, gaps=(3, 4))
               for seed in range(4)]
    assert len(drawn) == 8 and {w.axis for _, w in drawn} == {1, 2}
    for mb in batches:
        assert mb.samples.shape == (4, 4, 32, 32) and mb.plain.shape == (4, 3, 32, 32)
        assert mb.targets.shape == (4, 1, 32, 32) and mb.t.shape == mb.rho.shape == (4,)
        assert np.isfinite(mb.samples.numpy()).all() and np.isfinite(mb.rho.numpy()).all()
    planes = []
    for block, where in drawn:
        n = block.shape[0]
        truth = np.clip(direct(vol, where, n, 32), HU_MIN, HU_MAX)
        hu = block * HU_SCALE + HU_MIN
        assert any(np.allclose(o, hu, atol=0.05) for o in orientations(truth))
        planes += list(hu)
    for mb in batches:  # each target is one of the drawn planes
        for target in mb.targets.numpy()[:, 0]:
            assert min(np.abs(target - p).max() for p in planes) < 0.05


def test_volumes_too_short_for_a_crop_give_z_groups(monkeypatch):
    drawn = recording(monkeypatch)
    sampler = MotionSampler(volumes(), crop=64)  # 16 and 20 rows of z: under half a crop
    sampler.cross_view = 1.0
    mb = sampler.motion_batch(np.random.default_rng(0), 3, 2)
    assert not drawn and mb.targets.shape == (6, 1, 64, 64)


def test_the_option_reaches_the_sampler_trains_and_is_kept_in_checkpoints(tmp_path):
    from hrinet.cli.app import build_parser
    from hrinet.training.options import CONFIG_OPTIONS
    from hrinet.training.trainer import Trainer

    assert CONFIG_OPTIONS["cross_view"] == "cross_view"
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    assert "--cross-view" in train.format_help()
    args = train.parse_args(["--data", "a.nrrd", "--out", "o", "--cross-view", "0.3"])
    assert args.cross_view == 0.3
    with pytest.raises(HRINetError, match="--cross-view"):
        TrainConfig(cross_view=1.5).check()
    cfg = tiny("hrinet-flow", 2, cross_view=0.5)
    assert TrainConfig.from_dict(cfg.to_dict()).cross_view == 0.5
    assert TrainConfig.from_dict({k: v for k, v in cfg.to_dict().items()
                                  if k != "cross_view"}).cross_view == 0.0  # older checkpoints
    thick = [make_phantom(size=(64, 64, 24), spacing=(1.0, 1.0, 3.0), seed=7),
             make_phantom(size=(72, 64, 20), spacing=(1.2, 1.2, 4.0), seed=8)]
    tr = Trainer(cfg, tmp_path, volumes=thick, log=None)
    assert tr.sampler.cross_view == 0.5
    for _ in range(2):
        assert np.isfinite(tr.train_step()["loss_g"])
