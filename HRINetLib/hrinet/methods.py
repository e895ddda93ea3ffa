"""Interpolation methods: a registry the engine draws from, and the classical baselines.

A method is an :class:`Interpolator`: given a window of known slices (float32, ``(w, y, x)``) it
synthesises the slices at fractions ``t`` in (0, 1) between chosen neighbouring pairs. Learned
models register here too (see :mod:`hrinet.inference`), so callers never change when one is added.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Protocol, Sequence

import numpy as np

from .constants import CLASSICAL_METHODS, VARIANTS
from .errors import HRINetError


class Interpolator(Protocol):
    """What the engine needs from a method."""

    name: str
    #: Known slices needed on each side of a pair beyond the pair itself.
    halo: int

    def interpolate(self, window: np.ndarray, pairs: Sequence[int],
                    fractions: Sequence[float]) -> np.ndarray:
        """Slices between ``window[p]`` and ``window[p + 1]`` for each ``p`` in ``pairs``.

        ``fractions[j]`` = 0 would be ``window[p]`` and 1 would be ``window[p + 1]``. Returns a
        float32 array ``(len(pairs), len(fractions), y, x)``.
        """
        ...


_REGISTRY: Dict[str, Callable[..., Interpolator]] = {}


def register_method(name: str) -> Callable:
    """Decorator registering a factory ``f(**options) -> Interpolator`` under ``name``."""

    def wrap(factory: Callable[..., Interpolator]) -> Callable[..., Interpolator]:
        _REGISTRY[name] = factory
        return factory

    return wrap


#: Learned methods, registered by name -> "module:factory" and imported only when created, so
#: that the classical methods (and everything that lists methods) work without torch.
_LAZY: Dict[str, str] = {name: "hrinet.inference:learned_method"
                         for name in ("hrinet",) + VARIANTS}


def available_methods() -> List[str]:
    """Names accepted by ``method=`` (no learned code is imported)."""
    return sorted(set(_REGISTRY) | set(_LAZY))


def create_interpolator(name: str, **options) -> Interpolator:
    """Instantiate a registered method; ``options`` (device, weights...) go to its factory.

    Example:
        >>> create_interpolator("cubic").name
        'cubic'
    """
    if name in _REGISTRY:
        return _REGISTRY[name](**options)
    if name in _LAZY:
        module, factory = _LAZY[name].split(":")
        try:
            imported = importlib.import_module(module)
        except ImportError as exc:
            raise HRINetError(f"method {name} needs PyTorch, which is not installed "
                              f"({exc.name or exc}); install torch, or use "
                              f"{', '.join(CLASSICAL_METHODS)}") from None
        return getattr(imported, factory)(name, **options)
    raise HRINetError(f"unknown method {name!r}; choose one of "
                      f"{', '.join(available_methods())}")


def default_method() -> str:
    """``hrinet`` when the shipped default weights exist, else ``cubic``."""
    from .shipped import find_weights

    return "hrinet" if find_weights() is not None else "cubic"


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


def _bspline3(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1, 2 / 3 - x ** 2 + x ** 3 / 2,
                    np.where(x < 2, (2 - x) ** 3 / 6, 0.0))


class CubicInterpolator:
    """Interpolating cubic B-spline along z (mirror boundary), as in ITK/Slicer resampling."""

    name = "cubic"
    halo = CUBIC_HALO
    precise = True

    def interpolate(self, window, pairs, fractions):
        from scipy.ndimage import spline_filter1d  # lazy: Slicer may install scipy on demand

        coeffs = spline_filter1d(window.astype(np.float64), order=3, axis=0, mode="mirror")
        coeffs = np.pad(coeffs, ((2, 2), (0, 0), (0, 0)), mode="reflect")
        out = np.empty((len(pairs), len(fractions)) + window.shape[1:], dtype=window.dtype)
        for j, t in enumerate(fractions):
            weights = _bspline3(np.array([-1.0, 0.0, 1.0, 2.0]) - t)
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


@register_method("flow")
def _flow(**_options) -> Interpolator:
    from .flow import FlowInterpolator  # lazy: OpenCV is needed only by this method

    return FlowInterpolator()
