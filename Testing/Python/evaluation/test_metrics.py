"""Metrics and the evaluation protocol."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers import shared
from hrinet.core.phantom import make_phantom
from hrinet.evaluation.evaluate import (
    CSV_COLUMNS,
    decimate,
    evaluate_volume,
    synthesised_mask,
    write_csv,
)
from hrinet.evaluation.metrics import (
    blur,
    blur_effect,
    bone_dice,
    gradient_energy,
    psnr,
    rmse,
    score,
    ssim,
)


def test_psnr_uses_the_clipped_hu_range():
    truth = np.zeros((2, 8, 8))
    pred = truth + 40.95  # 1% of the 4095 HU range
    assert psnr(pred, truth) == pytest.approx(40.0)
    assert rmse(pred, truth) == pytest.approx(40.95)
    # values outside [-1024, 3071] are clipped before comparing
    assert psnr(np.full((2, 2), -3000.0), np.full((2, 2), -1024.0)) == float("inf")


def test_window_psnr_and_ssim_see_only_soft_tissue():
    truth = np.full((1, 32, 32), 1000.0)  # bone: above the [-160, 240] window
    pred = truth + 500
    assert psnr(pred, truth, (-160, 240)) == float("inf")
    assert ssim(pred, truth) == pytest.approx(1.0)


def test_ssim_drops_with_noise():
    rng = np.random.default_rng(0)
    truth = make_phantom(size=(48, 48, 2), spacing=(4, 4, 4), noise=0).array.astype(float)
    assert ssim(truth, truth) == pytest.approx(1.0)
    assert ssim(truth + rng.normal(0, 40, truth.shape), truth) < 0.9


def test_sharpness_ratio_is_below_one_for_a_blurred_copy():
    from scipy.ndimage import uniform_filter

    truth = make_phantom(size=(48, 48, 3), spacing=(4, 4, 4), noise=5).array.astype(float)
    blurred = uniform_filter(truth, size=(1, 5, 5))
    assert score(blurred, truth).grad_ratio < 0.5
    assert score(truth, truth).grad_ratio == pytest.approx(1.0)
    assert gradient_energy(truth) > 0


def test_blur_effect_rises_with_blur_and_needs_no_reference():
    from scipy.ndimage import gaussian_filter

    truth = make_phantom(size=(64, 64, 1), spacing=(2, 2, 4), noise=5).array[0].astype(float)
    scores = [blur_effect(gaussian_filter(truth, s)) for s in (0, 1, 2, 4)]
    assert scores == sorted(scores) and scores[-1] - scores[0] > 0.2
    assert 0 <= scores[0] < 1
    assert blur_effect(np.zeros((16, 16))) == 1.0  # nothing to see is as blurred as it gets


def test_blur_effect_is_scored_for_prediction_and_truth_alike():
    truth = make_phantom(size=(48, 48, 2), spacing=(4, 4, 4), noise=5).array.astype(float)
    s = score(truth, truth)
    assert s.blur == pytest.approx(s.blur_truth) and s.blur == pytest.approx(blur(truth))


def test_truth_statistics_computed_once_give_the_same_scores():
    from hrinet.evaluation.metrics import truth_stats

    truth = make_phantom(size=(48, 48, 3), spacing=(4, 4, 4), noise=5).array.astype(float)
    pred = truth + np.random.default_rng(0).normal(0, 20, truth.shape)
    assert score(pred, truth, truth_stats(truth)) == score(pred, truth)


def test_blur_effect_refuses_what_is_not_an_image():
    with pytest.raises(ValueError, match="2D image"):
        blur_effect(np.zeros((3, 3)))


def test_bone_dice_measures_how_well_bone_shapes_are_followed():
    truth = np.full((2, 32, 32), -1000.0)
    truth[:, 8:24, 8:24] = 1200  # bone
    assert bone_dice(truth, truth) == 1.0
    shifted = np.roll(truth, 4, axis=2)
    assert 0.5 < bone_dice(shifted, truth) < 1.0
    assert bone_dice(np.full_like(truth, 40.0), truth) == 0.0  # soft tissue where bone was
    assert bone_dice(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0  # no bone in either


def test_protocol_keeps_every_kth_slice_and_scores_only_the_new_ones():
    vol = make_phantom(size=(32, 32, 14), spacing=(2, 2, 1), seed=3)
    thick = decimate(vol, 4)  # keeps 0, 4, 8, 12
    np.testing.assert_array_equal(thick.array, vol.array[[0, 4, 8, 12]])
    assert thick.spacing[2] == 4
    assert synthesised_mask(13, 4).sum() == 9
    rows = evaluate_volume(vol, "p", [2, 4], ["linear", "cubic"], device="cpu")
    assert [(r.factor, r.method) for r in rows] == [(2, "linear"), (2, "cubic"),
                                                    (4, "linear"), (4, "cubic")]
    assert all(np.isfinite(r.psnr_hu) for r in rows)


def test_metrics_csv_has_exactly_the_agreed_columns(tmp_path):
    vol = make_phantom(size=(32, 32, 9), spacing=(2, 2, 1), seed=3)
    rows = evaluate_volume(vol, "p", [2], ["linear"], device="cpu")
    write_csv(rows, tmp_path / "metrics.csv")
    with open(tmp_path / "metrics.csv") as f:
        r = list(csv.reader(f))
    assert r[0] == CSV_COLUMNS == ["volume", "factor", "method", "psnr_hu", "psnr_win",
                                   "ssim_win", "rmse_hu"]
    assert r[1][:3] == ["p", "2", "linear"]


@pytest.mark.slow
def test_linear_on_real_thorax_matches_the_independent_reference():
    """Reference from ../shared/data/ct/README.md: x2 40.32, x4 37.04, x6 35.22 dB."""
    from hrinet.core.io import read_volume

    vol = read_volume(shared("thorax-2mm.nrrd"))
    rows = evaluate_volume(vol, "thorax", [2, 4, 6], ["linear", "cubic"], device="cpu")
    lin = {r.factor: r.psnr_hu for r in rows if r.method == "linear"}
    cub = {r.factor: r.psnr_hu for r in rows if r.method == "cubic"}
    for k, ref in {2: 40.32, 4: 37.04, 6: 35.22}.items():
        assert lin[k] == pytest.approx(ref, abs=0.05)
        assert abs(cub[k] - lin[k]) < 0.5


def test_evaluation_figures_carry_a_colour_scale_for_the_slices_and_one_for_the_errors(phantom):
    from hrinet.evaluation.evaluate import ERROR_RANGE, FIGURE_WINDOW, strip_figure

    fig = strip_figure(phantom, 2, {"linear": phantom.array, "cubic": phantom.array})
    bars = {ax.get_ylabel(): ax for ax in fig.axes if ax.get_ylabel()}
    assert set(bars) == {"HU (window W400 L40)", "|error| HU"}
    assert bars["|error| HU"].get_ylim() == ERROR_RANGE
    assert bars["HU (window W400 L40)"].get_ylim() == FIGURE_WINDOW
