"""The quality setting: a method run on mirrored views of its input, the results averaged.

A learned model built on optical flow is not mirror-symmetric: run on the slices reversed along
z, or flipped left to right, it estimates the motion anew and errs elsewhere. Mapped back and
averaged, the four views (as given, reversed, flipped, both) cancel part of each other's error:
the opt-in ``--quality high`` (docs/results.md, "The quality setting"), at four times the work.
Torch-free: it wraps any :class:`~hrinet.methods.registry.Interpolator`.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from hrinet.core.constants import QUALITIES
from hrinet.core.errors import HRINetError

#: The views of ``--quality high``: (reversed along z, flipped left to right).
VIEWS: Tuple[Tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))


class MirroredViews:
    """``inner`` run on each of :data:`VIEWS` and averaged; otherwise ``inner`` (its name,
    halo, model and weights are this method's)."""

    def __init__(self, inner):
        self.inner = inner
        #: How many views each synthesised slice averages (said in the provenance).
        self.views = len(VIEWS)

    def __getattr__(self, attr):  # name, halo, metadata, weights_path, runtime_warnings ...
        if attr == "inner":  # not yet set (copying, unpickling): no recursion
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    @property
    def slab_ratio(self) -> float:
        return self.inner.slab_ratio

    @slab_ratio.setter
    def slab_ratio(self, value: float) -> None:  # the engine tells the method the plan's
        self.inner.slab_ratio = value

    def interpolate(self, window: np.ndarray, pairs: Sequence[int],
                    fractions: Sequence[float]) -> np.ndarray:
        """The mean of ``inner``'s slices over the views, each mapped back: reversed along z,
        pair ``p`` of ``n`` slices is pair ``n - 2 - p`` and fraction ``t`` is ``1 - t``."""
        n = window.shape[0]
        total = None
        for reverse, flip in VIEWS:
            view = window[::-1] if reverse else window
            view = view[..., ::-1] if flip else view
            p = [n - 2 - q for q in pairs] if reverse else list(pairs)
            f = [1.0 - t for t in fractions] if reverse else list(fractions)
            out = self.inner.interpolate(np.ascontiguousarray(view), p, f)
            out = out[..., ::-1] if flip else out
            total = out.astype(np.float32) if total is None else total + out
        return total / np.float32(len(VIEWS))


def with_quality(interp, quality: str):
    """``interp`` for ``quality``: as it is for ``standard``, over mirrored views for ``high``."""
    if quality not in QUALITIES:
        raise HRINetError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
    return MirroredViews(interp) if quality == "high" else interp
