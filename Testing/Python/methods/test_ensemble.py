"""The quality setting (hrinet.methods.ensemble): a method over four mirrored views, each mapped
back before the average, so a mirror-symmetric method is unchanged and an asymmetric one is
averaged over what each view makes of the same slice."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hrinet.core.errors import HRINetError
from hrinet.core.phantom import make_phantom
from hrinet.methods import create_interpolator
from hrinet.methods.engine import upsample_z
from hrinet.methods.ensemble import VIEWS, MirroredViews, in_plane, in_plane_back, with_quality

#: Every view the library can take: reversed, flipped in x, in y, rows and columns swapped.
ALL_VIEWS = tuple(itertools.product((False, True), repeat=4))


class Lopsided:
    """A method that is not mirror-symmetric: it leans on the lower slice of each pair and adds
    a ramp that rises left to right, so every view sees something else."""

    name, halo, slab_ratio = "lopsided", 1, 0.0

    def __init__(self):
        self.calls = []

    def interpolate(self, window, pairs, fractions):
        self.calls.append((window.copy(), list(pairs), list(fractions)))
        ramp = np.arange(window.shape[-1], dtype=np.float32)
        return np.stack([np.stack([window[p] * (1 - t / 2) + window[p + 1] * (t / 2) + ramp * t
                                   for t in fractions]) for p in pairs]).astype(np.float32)


def _window(n=5, y=3, x=4, seed=0):
    return np.random.default_rng(seed).normal(0, 100, (n, y, x)).astype(np.float32)


def test_a_mirror_symmetric_method_is_unchanged_by_the_views():
    linear = create_interpolator("linear")
    w = _window()
    plain = linear.interpolate(w, [0, 2, 3], [0.25, 0.5, 0.75])
    mirrored = MirroredViews(linear).interpolate(w, [0, 2, 3], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(mirrored, plain, rtol=0, atol=1e-3)


def test_each_view_is_mapped_back_to_the_same_slice_before_the_average():
    inner = Lopsided()
    w = _window()
    got = MirroredViews(inner).interpolate(w, [1, 3], [0.25, 1.0])
    ramp = np.arange(4, dtype=np.float32)
    want = np.zeros_like(got)
    for reverse, flip, _, _ in VIEWS:
        for i, p in enumerate([1, 3]):
            for j, t in enumerate([0.25, 1.0]):
                lo, hi, f = (w[p + 1], w[p], 1 - t) if reverse else (w[p], w[p + 1], t)
                r = ramp[::-1] if flip else ramp  # the view's ramp, seen back in place
                want[i, j] += (lo * (1 - f / 2) + hi * (f / 2) + r * f) / len(VIEWS)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    # reversed: pair p of n slices is pair n - 2 - p, fraction t is 1 - t; t = 1 is an
    # acquired slice, asked for on its own as the start of its reversed pair
    assert len(inner.calls) == 6
    assert inner.calls[1][1:] == ([2, 0], [0.75]) and inner.calls[2][1:] == ([2, 0], [0.0])
    np.testing.assert_array_equal(inner.calls[1][0], w[::-1])
    np.testing.assert_array_equal(inner.calls[3][0], w[..., ::-1])


@pytest.mark.parametrize("view", ALL_VIEWS)
def test_every_view_is_undone_exactly_on_slices_that_are_not_square(view):
    w = _window(n=3, y=3, x=5)
    shown = in_plane(w, view)
    _, flip_x, flip_y, swap = view
    want = w[..., ::-1] if flip_x else w  # each transform in turn, spelt out
    want = want[..., ::-1, :] if flip_y else want
    want = np.swapaxes(want, -1, -2) if swap else want
    np.testing.assert_array_equal(shown, want)
    assert shown.shape == ((3, 5, 3) if swap else (3, 3, 5))
    np.testing.assert_array_equal(in_plane_back(shown, view), w)


def test_a_flip_top_to_bottom_is_seen_and_undone():
    """A method that adds a ramp rising down the rows: in the view flipped top to bottom the
    ramp rises up the original's rows, and comes back so."""
    class Downhill(Lopsided):
        def interpolate(self, window, pairs, fractions):
            ramp = np.arange(window.shape[-2], dtype=np.float32)[:, None]
            return np.stack([np.stack([window[p] + ramp * t for t in fractions])
                             for p in pairs]).astype(np.float32)

    w = _window(y=4, x=3)
    got = MirroredViews(Downhill(), [(False, False, True, False)]).interpolate(w, [0], [0.5])
    want = w[0] + np.arange(4, dtype=np.float32)[::-1, None] * 0.5
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("views", [[], [(True, False)], [(False,) * 5]])
def test_a_set_of_views_that_is_empty_or_malformed_is_one_line(views):
    with pytest.raises(HRINetError, match="a set of views needs at least one view"):
        MirroredViews(Lopsided(), views)


def test_a_symmetric_method_is_unchanged_by_any_set_of_views():
    linear = create_interpolator("linear")
    w = _window(y=3, x=5)
    plain = linear.interpolate(w, [0, 2], [0.25, 0.5])
    for views in (ALL_VIEWS, ALL_VIEWS[5:9]):
        got = MirroredViews(linear, views).interpolate(w, [0, 2], [0.25, 0.5])
        np.testing.assert_allclose(got, plain, rtol=0, atol=1e-3)


def test_a_rotated_view_gives_back_what_the_method_made_of_it_turned_back():
    """Flipped left to right and swapped (a quarter turn), the lopsided method's ramp runs
    along the view's x, which is the original's y: so it comes back rising top to bottom."""
    inner = Lopsided()
    w = _window(y=3, x=5)
    got = MirroredViews(inner, [(False, True, False, True)]).interpolate(w, [1], [0.5])
    ramp_y = np.arange(3, dtype=np.float32)[:, None]  # the view's x is the original's y
    want = w[1] * 0.75 + w[2] * 0.25 + ramp_y * 0.5
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(inner.calls[0][0], np.swapaxes(w[..., ::-1], -1, -2))


def test_the_method_keeps_its_name_halo_and_hears_the_plans_slab_ratio():
    inner = Lopsided()
    views = with_quality(inner, "high")
    assert (views.name, views.halo, views.views) == ("lopsided", 1, 4)
    views.slab_ratio = 1.5  # what the engine does before it runs a slab plan
    assert inner.slab_ratio == 1.5 and views.slab_ratio == 1.5
    assert with_quality(inner, "standard") is inner


def test_an_unknown_quality_is_one_line_naming_the_choices():
    with pytest.raises(HRINetError, match="unknown quality 'best'; choose one of standard, high"):
        with_quality(Lopsided(), "best")


@pytest.mark.parametrize("thickness", [0.0, 6.0])
def test_the_engine_runs_the_views_over_a_whole_volume_and_its_ends(thickness):
    vol = make_phantom(size=(24, 20, 7), spacing=(1.0, 1.0, 3.0))
    plain = upsample_z(vol, factor=3, interpolator=create_interpolator("cubic"),
                       thickness=thickness)
    high = upsample_z(vol, factor=3, interpolator=create_interpolator("cubic", quality="high"),
                      thickness=thickness)
    # cubic is mirror-symmetric: the views change nothing, at the ends of the volume included
    np.testing.assert_allclose(high.array.astype(float), plain.array.astype(float), atol=1)
    np.testing.assert_array_equal(high.array[::3], vol.array)


def test_an_acquired_slice_is_asked_for_at_fraction_0_in_the_reversed_view_too():
    """Slab restoration asks for the acquired slices themselves (fraction 0); reversed, slice
    p of n is the start of pair n - 1 - p, never the end of pair n - 2 - p (fraction 1, which
    the model never trained on), except the last slice, which starts no pair."""
    from hrinet.methods.ensemble import reversed_request

    assert reversed_request(5, 1, 0.0) == (3, 0.0) and reversed_request(5, 3, 0.0) == (1, 0.0)
    assert reversed_request(5, 0, 0.0) == (3, 1.0)  # slice 0 is the reversed view's last
    assert reversed_request(5, 3, 1.0) == (0, 0.0)  # the last slice is the reversed first
    p, t = reversed_request(5, 1, 0.25)
    assert p == 2 and t == pytest.approx(0.75)
    inner = Lopsided()
    w = _window()
    got = MirroredViews(inner).interpolate(w, [0, 1, 3], [0.0, 0.5])
    reversed_calls = [c[1:] for c in inner.calls[1:4]]  # the views: 1, 3 (reversed), 1, 3
    # the reversed view: one call for the slices between, then the acquired slices by position
    assert reversed_calls[0] == ([3, 2, 0], [0.5])
    assert ([3], [1.0]) in reversed_calls and ([3, 1], [0.0]) in reversed_calls
    ramp = np.arange(4, dtype=np.float32)
    for i, p in enumerate([0, 1, 3]):
        # in every view the acquired slice p comes back as itself (the method's t = 0 is the
        # lower slice), except where the reversed view has to take it as a pair's end
        views = []
        for reverse, flip, _, _ in VIEWS:
            r = ramp[::-1] if flip else ramp
            if reverse and p == 0:
                views.append(w[0] * 0.5 + w[1] * 0.5 + r)  # (pair 3, t = 1) of the reversed
            else:
                views.append(w[p])
        np.testing.assert_allclose(got[i, 0], np.mean(views, axis=0), rtol=1e-5, atol=1e-3)


def test_the_library_takes_the_quality_as_the_command_does():
    """upsample_z(..., quality="high") is the command's --quality high; classical methods
    ignore it (mirroring a symmetric method would only cost time)."""
    thick = make_phantom(size=(24, 24, 4), spacing=(1, 1, 3), seed=2)
    high = upsample_z(thick, factor=3, method="hrinet", device="cpu", precision="fp32",
                      quality="high")
    interp = create_interpolator("hrinet", device="cpu", precision="fp32", quality="high")
    want = upsample_z(thick, factor=3, interpolator=interp)
    np.testing.assert_array_equal(high.array, want.array)
    np.testing.assert_array_equal(
        upsample_z(thick, factor=3, method="cubic", quality="high").array,
        upsample_z(thick, factor=3, method="cubic").array)
