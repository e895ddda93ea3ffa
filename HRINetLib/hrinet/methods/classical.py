"""The classical baselines: linear and cubic B-spline interpolation along z (NumPy, SciPy)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import spline_filter1d

from hrinet.methods.registry import Interpolator, register_method


class LinearInterpolator:
    """Linear blend of the two neighbouring slices (what most viewers do)."""

    name = "linear"
    halo = 0
    #: Computes in the window's precision (float64 for float64 and wide-integer volumes).
    precise = True

    def interpolate(self, window, pairs, fractions):
        t = np.asarray(fractions, dtype=window.dtype)[None, :, None, None]
        lo = window[list(pairs)][:, None]
        hi = window[[p + 1 for p in pairs]][:, None]
        return lo + (hi - lo) * t


# The cubic B-spline prefilter is an IIR filter whose influence decays as 0.268^d with the
# distance d in slices; 12 slices of context make a window's result equal to the whole-volume
# result within 1e-7 relative, so the engine can stream the volume a few slices at a time.
CUBIC_HALO = 12


def bspline3(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1, 2 / 3 - x ** 2 + x ** 3 / 2,
                    np.where(x < 2, (2 - x) ** 3 / 6, 0.0))


class CubicInterpolator:
    """Interpolating cubic B-spline along z (mirror boundary), as in ITK/Slicer resampling."""

    name = "cubic"
    halo = CUBIC_HALO
    precise = True

    def interpolate(self, window, pairs, fractions):
        coeffs = spline_filter1d(window.astype(np.float64), order=3, axis=0, mode="mirror")
        coeffs = np.pad(coeffs, ((2, 2), (0, 0), (0, 0)), mode="reflect")
        out = np.empty((len(pairs), len(fractions)) + window.shape[1:], dtype=window.dtype)
        for j, t in enumerate(fractions):
            weights = bspline3(np.array([-1.0, 0.0, 1.0, 2.0]) - t)
            for i, p in enumerate(pairs):
                c = coeffs[p + 1:p + 5]  # window indices p-1 .. p+2 after the pad of 2
                out[i, j] = np.tensordot(weights, c, axes=1)
        return out


@register_method("linear")
def _linear(**_options) -> Interpolator:
    return LinearInterpolator()


@register_method("cubic")
def _cubic(**_options) -> Interpolator:
    return CubicInterpolator()
