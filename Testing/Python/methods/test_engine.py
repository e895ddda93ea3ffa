"""The z-upsampling engine: geometry contract, exact known slices, factors, streaming."""

from __future__ import annotations

import numpy as np
import pytest
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.methods import available_methods, engine
from hrinet.methods.engine import upsample_z
from hrinet.methods.planning import plan_upsampling, resolve_factor
from scipy.ndimage import map_coordinates


@pytest.mark.parametrize("method", ["linear", "cubic"])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_known_slices_are_bit_exact_and_size_is_n_minus_1_times_k_plus_1(phantom, method, k):
    out = upsample_z(phantom, factor=k, method=method)
    n = phantom.array.shape[0]
    assert out.array.shape == ((n - 1) * k + 1,) + phantom.array.shape[1:]
    assert out.array.dtype == phantom.array.dtype
    np.testing.assert_array_equal(out.array[::k], phantom.array)


@pytest.mark.parametrize("fixture", ["phantom", "oblique_phantom"])
def test_geometry_keeps_every_known_slice_at_its_physical_position(request, fixture):
    vol = request.getfixturevalue(fixture)
    k = 4
    out = upsample_z(vol, factor=k, method="linear")
    assert out.origin == vol.origin
    np.testing.assert_array_equal(out.direction, vol.direction)
    assert out.spacing[:2] == vol.spacing[:2]
    assert out.spacing[2] == pytest.approx(vol.spacing[2] / k)
    for i in range(vol.array.shape[0]):
        np.testing.assert_allclose(out.index_to_physical((3, 5, i * k)),
                                   vol.index_to_physical((3, 5, i)), atol=1e-9)


def test_input_is_never_modified(phantom):
    before = phantom.array.copy()
    upsample_z(phantom, factor=3, method="cubic")
    np.testing.assert_array_equal(phantom.array, before)


def test_linear_midpoint_is_the_rounded_mean(phantom):
    out = upsample_z(phantom, factor=2, method="linear")
    a = phantom.array.astype(np.float64)
    np.testing.assert_array_equal(out.array[1::2], np.rint((a[:-1] + a[1:]) / 2).astype(np.int16))


def test_integer_output_is_rounded_and_clipped_to_the_pixel_type(phantom):
    vol = phantom.with_array(np.zeros((3, 4, 4), np.uint8))
    vol.array[1] = 255
    out = upsample_z(vol, factor=4, method="cubic")  # cubic overshoots above 255 and below 0
    assert out.array.dtype == np.uint8
    assert out.array.max() == 255 and out.array.min() == 0


def test_streamed_cubic_equals_whole_volume_bspline(phantom, monkeypatch):
    monkeypatch.setattr(engine, "CHUNK_BYTES", 1)  # one pair per chunk: maximal streaming
    vol = phantom.with_array(phantom.array.astype(np.float32))
    k = 3
    out = upsample_z(vol, factor=k, method="cubic")
    n = vol.array.shape[0]
    zz, yy, xx = np.meshgrid(np.arange((n - 1) * k + 1) / k, np.arange(vol.array.shape[1]),
                             np.arange(vol.array.shape[2]), indexing="ij")
    ref = map_coordinates(vol.array.astype(np.float64), [zz, yy, xx], order=3, mode="mirror")
    np.testing.assert_allclose(out.array, ref, atol=1e-3 * np.abs(ref).max())


def test_out_parameter_streams_into_a_memmap(tmp_path, phantom):
    k = 2
    shape = ((phantom.array.shape[0] - 1) * k + 1,) + phantom.array.shape[1:]
    mm = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.int16, shape=shape)
    out = upsample_z(phantom, factor=k, method="linear", out=mm)
    assert out.array is mm
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy")[::k], phantom.array)


@pytest.mark.parametrize("spacing_z, target, expected", [
    (5.0, 1.0, 5), (5.0, 1.25, 4), (3.0, 1.0, 3), (2.5, 0.8, 3), (4.0, 2.0, 2)])
def test_target_spacing_picks_the_nearest_integer_factor(spacing_z, target, expected):
    assert resolve_factor(spacing_z, 0.7, target_spacing=target) == expected


def test_default_target_is_isotropic(phantom):
    plan = plan_upsampling(phantom)  # 3 x 3 x 6 mm -> x2
    assert plan.factor == 2
    assert plan.output_spacing == (3.0, 3.0, 3.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"factor": 0}, "not positive"), ({"factor": -2}, "not positive"),
    ({"factor": 1}, "nothing to interpolate"), ({"factor": 2.5}, "not a whole number"),
    ({"target_spacing": 10.0}, "not finer"), ({"target_spacing": -1.0}, "not positive"),
    ({"factor": 2, "target_spacing": 1.0}, "not both"),
])
def test_bad_parameters_are_refused(phantom, kwargs, message):
    with pytest.raises(HRINetError, match=message):
        upsample_z(phantom, **kwargs)


def test_single_slice_is_refused(phantom):
    with pytest.raises(HRINetError, match="at least 2 slices"):
        upsample_z(phantom.with_array(phantom.array[:1]), factor=2)


def test_nan_voxels_are_refused(phantom):
    vol = phantom.with_array(phantom.array.astype(np.float32))
    vol.array[3, 5, 5] = np.nan
    with pytest.raises(HRINetError, match="NaN"):
        upsample_z(vol, factor=2)


def test_unknown_method_lists_the_choices(phantom):
    with pytest.raises(HRINetError, match="linear"):
        upsample_z(phantom, factor=2, method="sinc")
    assert {"linear", "cubic", "hrinet"} <= set(available_methods())


def test_progress_reports_every_pair_and_cancel_stops(phantom, monkeypatch):
    monkeypatch.setattr(engine, "CHUNK_BYTES", 1)
    seen = []
    upsample_z(phantom, factor=2, progress=lambda d, t: seen.append((d, t)))
    n = phantom.array.shape[0]
    assert seen[-1] == (n - 1, n - 1) and len(seen) == n - 1
    calls = []
    with pytest.raises(Cancelled):
        upsample_z(phantom, factor=2, cancel=lambda: calls.append(1) or len(calls) > 2)


def test_any_in_plane_size_works_with_a_padded_model(phantom):
    """Odd sizes are padded to the network's stride internally and cropped back."""
    import torch
    from hrinet.learned.inference import LearnedInterpolator
    from hrinet.learned.models import Generator, ModelConfig

    vol = phantom.with_array(phantom.array[:, :37, :53].copy())
    g = Generator(ModelConfig.for_variant("hrinet-plus"))
    interp = LearnedInterpolator(g, torch.device("cpu"))
    out = upsample_z(vol, factor=3, interpolator=interp)
    assert out.array.shape == ((vol.array.shape[0] - 1) * 3 + 1, 37, 53)
    # an untrained hrinet-plus is exactly the linear blend
    lin = upsample_z(vol, factor=3, method="linear")
    assert np.abs(out.array.astype(int) - lin.array).max() <= 1


def test_an_already_isotropic_volume_says_so_by_default(phantom):
    iso = phantom.with_array(phantom.array, spacing=(3.0, 3.0, 3.0))
    with pytest.raises(HRINetError, match="already close to isotropic"):
        upsample_z(iso)
    assert upsample_z(iso, factor=2).spacing[2] == 1.5


def test_the_plan_made_once_is_the_plan_the_engine_runs(phantom):
    from hrinet.methods.planning import make_plan, plan_upsampling

    plan = plan_upsampling(phantom, factor=3, method="cubic")
    assert plan == make_plan(phantom.array.shape[0], phantom.spacing, 3, None, "cubic")
    out = upsample_z(phantom, plan=plan)
    assert out.array.shape[0] == plan.output_slices and out.metadata["method"] == "cubic"
    assert out.spacing == plan.output_spacing
    with pytest.raises(HRINetError, match="the plan is for 12 slices but the volume has 5"):
        upsample_z(phantom.with_array(phantom.array[:5].copy()), plan=plan)
