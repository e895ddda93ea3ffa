"""Padding outside the scan circle: found, shown to the methods as air, written back exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hrinet.core.padding import find_padding, padding_mask, padding_value
from hrinet.core.phantom import make_phantom
from hrinet.methods.engine import upsample_z


def circle_padded(value: float, radius: float = 0.36):
    """The phantom with everything outside a circle that cuts through the body set to ``value``
    (as a small display field of view leaves it)."""
    vol = make_phantom(size=(96, 96, 9), spacing=(0.5, 0.5, 4.0), noise=10, seed=3)
    a = vol.array.copy()
    yy, xx = np.mgrid[:96, :96]
    outside = np.hypot(yy - 47.5, xx - 47.5) > radius * 96
    a[:, outside] = value
    return vol.with_array(a), outside


@pytest.mark.parametrize("value", [-2000, -2048, -3024, 0])
def test_each_vendor_padding_value_is_found(value):
    vol, outside = circle_padded(value)
    assert padding_value(vol.array) == value
    mask = padding_mask(vol.array[4], value)
    assert mask[outside].all()  # and at most a few body voxels of exactly that value beside it
    assert (mask & ~outside).sum() < 0.01 * outside.sum()


@pytest.mark.parametrize("value", [-1024, -1000, 10])
def test_constant_air_or_tissue_at_the_border_is_not_padding(value):
    vol, _ = circle_padded(value)
    assert find_padding(vol.array) is None


def test_a_value_inside_the_body_equal_to_the_padding_is_kept():
    vol, outside = circle_padded(0)
    a = vol.array.copy()
    a[:, 45:50, 45:50] = 0  # water-like voxels inside the circle, not connected to the border
    assert not padding_mask(a[2], 0)[45:50, 45:50].any()


@pytest.mark.parametrize("method", ["linear", "cubic", "flow"])
@pytest.mark.parametrize("value", [-2000, -3024])
def test_outputs_hold_the_padding_exactly_and_known_slices_bit_exact(method, value):
    vol, outside = circle_padded(value)
    out = upsample_z(vol, factor=4, method=method)
    assert out.metadata["padding"] == value
    assert (out.array[:, outside] == value).all()
    np.testing.assert_array_equal(out.array[::4], vol.array)
    assert out.origin == vol.origin and out.spacing[2] == pytest.approx(1.0)


def test_the_methods_see_air_where_the_scanner_wrote_padding():
    """Flow warping mixes the padding into the body's edge along the circle; shown air, it
    does what it does at a skin edge. The band just inside the circle is closer to the truth."""
    vol, outside = circle_padded(-3024)
    thin = vol.array
    thick = vol.with_array(thin[::2].copy(), (0.5, 0.5, 8.0))
    truth = thin[1::2].astype(float)
    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(yy - 47.5, xx - 47.5)
    band = (r <= 0.36 * 96) & (r > 0.36 * 96 - 4)

    def band_error(pad_aware):
        up = upsample_z(thick, factor=2, method="flow", pad_aware=pad_aware).array[1::2]
        return np.abs(np.clip(up, -1024, None)[:, band] - np.clip(truth, -1024, None)[:, band]).mean()

    assert band_error(True) < band_error(False)
