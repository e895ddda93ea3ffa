"""Adapt to this case: guarded by held-out slices of the case itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hrinet.core.errors import HRINetError
from hrinet.core.phantom import make_phantom
from hrinet.learned.models import ModelConfig
from hrinet.learned.networks import build_generator
from hrinet.learned.weights import save_weights
from hrinet.training.adapt import ADAPTED_NAME, adapt, split_for_adaptation


@pytest.fixture
def start_weights(tmp_path):
    return save_weights(build_generator(ModelConfig.for_variant("hrinet-flow")),
                        tmp_path / "start.safetensors", {"training": {}})


def test_the_held_out_block_is_never_trained_on():
    vol = make_phantom(size=(32, 32, 30), spacing=(1, 1, 4), seed=1)
    vol = vol.with_array(np.arange(30, dtype=np.int16)[:, None, None] + np.zeros((30, 32, 32),
                                                                                np.int16))
    parts, block = split_for_adaptation(vol)
    held = set(block.array[:, 0, 0].tolist())
    seen = set(np.concatenate([p.array[:, 0, 0] for p in parts]).tolist())
    assert not held & seen and len(held) >= 9 and held | seen == set(range(30))


def test_too_few_slices_to_adapt_is_one_clear_line():
    vol = make_phantom(size=(32, 32, 12), spacing=(1, 1, 4), seed=1)
    with pytest.raises(HRINetError, match="too few to adapt"):
        split_for_adaptation(vol)


def _thick():
    return make_phantom(size=(64, 64, 26), spacing=(1, 1, 4), seed=1)


def test_a_folder_holding_a_training_run_is_refused_and_left_as_it_was(tmp_path, start_weights):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("checkpoint.safetensors", "config.json", "hrinet-flow.safetensors"):
        (run / name).write_text(name)
    before = {p.name: p.read_text() for p in run.iterdir()}
    with pytest.raises(HRINetError, match="holds a training run or weights"):
        adapt(_thick(), run, weights=str(start_weights), iterations=1, device="cpu", log=None)
    assert {p.name: p.read_text() for p in run.iterdir()} == before


def test_starting_weights_inside_the_output_folder_are_refused_and_kept(tmp_path,
                                                                       start_weights):
    data = start_weights.read_bytes()
    with pytest.raises(HRINetError, match="lie in --out"):
        adapt(_thick(), tmp_path, weights=str(start_weights), iterations=1, device="cpu",
              log=None)
    assert start_weights.read_bytes() == data


@pytest.mark.slow
def test_a_failed_adaptation_keeps_the_starting_model(tmp_path, start_weights):
    # Pure noise and a learning rate far too large: the adapted model can only get worse.
    rng = np.random.default_rng(0)
    noise = make_phantom(size=(64, 64, 30), spacing=(1, 1, 4), seed=1).with_array(
        rng.normal(0, 300, (30, 64, 64)).astype(np.int16))
    result = adapt(noise, tmp_path / "run", weights=str(start_weights), iterations=6, lr=0.05,
                   crop=64, device="cpu", log=None)
    assert result.kept == "default" and result.weights == str(start_weights)
    assert result.adapted_psnr_hu < result.default_psnr_hu + 0.05
    assert not (tmp_path / "run" / ADAPTED_NAME).exists()
    assert not list((tmp_path / "run").glob("hrinet-flow.safetensors"))  # nothing unguarded
    saved = json.loads((tmp_path / "run" / "adapt.json").read_text())
    assert saved["kept"] == "default"


def test_an_adaptation_that_wins_on_held_out_slices_is_kept_with_its_case(tmp_path,
                                                                         start_weights):
    vol = make_phantom(size=(64, 64, 30), spacing=(1, 1, 4), noise=0, seed=2)
    result = adapt(vol, tmp_path / "run", weights=str(start_weights), iterations=6, lr=1e-3,
                   crop=64, device="cpu", case="phantom", margin_db=-1e9, log=None)
    assert result.kept == "adapted"
    meta = json.loads((tmp_path / "run" / ADAPTED_NAME).with_suffix(".json").read_text())
    assert meta["adaptation"]["case"] == "phantom"
    assert meta["lineage"][-1]["started_from"] == start_weights.name
    # it trained at the gaps the docs name (ADAPT_GAPS are gaps, not group sizes)
    from hrinet.training.adapt import ADAPT_GAPS
    from hrinet.training.config import TrainConfig

    assert TrainConfig.from_dict(meta["training"]["config"]).resolved().gaps == ADAPT_GAPS
    assert ADAPT_GAPS == (2, 3)  # as docs/usage.md says


def test_a_volume_long_enough_to_split_is_long_enough_to_train_on():
    """The smallest case adaptation accepts trains: no later refusal naming an option that
    adapt does not have (it once accepted 16-24 slices, then failed asking for --gaps)."""
    from hrinet.training.adapt import MIN_HOLDOUT, MIN_TRAIN

    n = MIN_HOLDOUT + MIN_TRAIN
    with pytest.raises(HRINetError, match=f"at least {MIN_TRAIN} to learn from"):
        split_for_adaptation(make_phantom(size=(32, 32, n - 1), spacing=(1, 1, 4), seed=1))
    parts, _ = split_for_adaptation(make_phantom(size=(32, 32, n), spacing=(1, 1, 4), seed=1))
    from hrinet.training.adapt import ADAPT_GAPS
    from hrinet.training.motion_data import MotionSampler

    sampler = MotionSampler(parts, crop=32)
    sampler.spline = True  # the shipped default's six known slices
    for seed in range(5):  # every group it draws fits, whatever gap
        assert sampler.motion_batch(np.random.default_rng(seed), 2, gaps=ADAPT_GAPS) is not None
