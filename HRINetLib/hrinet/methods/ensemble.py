"""The quality setting: a method run on mirrored views of its input, the results averaged.

A learned model built on optical flow is not mirror-symmetric: run on the slices reversed along
z, or flipped left to right, it estimates the motion anew and errs elsewhere. Mapped back and
averaged, the four views (as given, reversed, flipped, both) cancel part of each other's error:
the opt-in ``--quality high`` (docs/results.md, "The quality setting"), at four times the
model's work (3.2x the time end to end on the 8 mm chest: reading and planning are shared).
Torch-free: it wraps any :class:`~hrinet.methods.registry.Interpolator`.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from hrinet.core.constants import QUALITIES
from hrinet.core.errors import HRINetError

#: A view of the slices: (reversed along z, flipped left to right, flipped top to bottom, rows
#: and columns swapped). Each is a symmetry of the task that the model does not respect.
View = Tuple[bool, bool, bool, bool]

#: The views of ``--quality high``.
VIEWS: Tuple[View, ...] = ((False, False, False, False), (True, False, False, False),
                           (False, True, False, False), (True, True, False, False))


def in_plane(stack: np.ndarray, view: View) -> np.ndarray:
    """``stack`` (``(..., y, x)``) as ``view`` shows each slice (its z order untouched)."""
    _, flip_x, flip_y, swap = view
    out = stack[..., ::-1] if flip_x else stack
    out = out[..., ::-1, :] if flip_y else out
    return np.swapaxes(out, -1, -2) if swap else out


def in_plane_back(stack: np.ndarray, view: View) -> np.ndarray:
    """The inverse of :func:`in_plane`: slices made in ``view`` put back in place."""
    _, flip_x, flip_y, swap = view
    out = np.swapaxes(stack, -1, -2) if swap else stack
    out = out[..., ::-1, :] if flip_y else out
    return out[..., ::-1] if flip_x else out


class MirroredViews:
    """``inner`` run on each view of ``view_set`` (default :data:`VIEWS`, the quality
    setting's) and averaged; otherwise ``inner`` (its name, halo, model and weights are this
    method's)."""

    def __init__(self, inner, view_set: Sequence[View] = VIEWS):
        self.inner = inner
        self.view_set = tuple(tuple(v) for v in view_set)
        if not self.view_set or any(len(v) != 4 for v in self.view_set):
            raise HRINetError("a set of views needs at least one view, each four flags "
                              "(reversed, flipped in x, flipped in y, rows and columns swapped)")
        #: How many views each synthesised slice averages (said in the provenance).
        self.views = len(self.view_set)

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
        pair ``p`` of ``n`` slices is pair ``n - 2 - p`` and fraction ``t`` is ``1 - t``; a
        request at an acquired slice (``t`` 0 or 1, slab restoration) goes to the pair that
        starts there in the reversed view (:func:`reversed_request`), as the engine asks."""
        total = None
        for view in self.view_set:
            reverse = view[0]
            seen = np.ascontiguousarray(in_plane(window[::-1] if reverse else window, view))
            out = self._reversed(seen, pairs, fractions) if reverse else \
                self.inner.interpolate(seen, list(pairs), list(fractions))
            out = in_plane_back(out, view)
            total = out.astype(np.float32) if total is None else total + out
        return total / np.float32(len(self.view_set))

    def _reversed(self, view: np.ndarray, pairs: Sequence[int],
                  fractions: Sequence[float]) -> np.ndarray:
        """``inner`` on the reversed ``view``, its slices in the order of the requests."""
        n = view.shape[0]
        inside = [j for j, t in enumerate(fractions) if 0.0 < t < 1.0]
        ends = [j for j in range(len(fractions)) if j not in inside]
        out = None
        if inside:
            got = self.inner.interpolate(view, [n - 2 - p for p in pairs],
                                         [1.0 - fractions[j] for j in inside])
            out = np.empty((len(pairs), len(fractions)) + got.shape[2:], np.float32)
            out[:, inside] = got
        for j in ends:  # one call per fraction and mapped fraction: pairs differ from the rest
            asked = [reversed_request(n, p, fractions[j]) for p in pairs]
            for t in sorted({t for _, t in asked}):
                rows = [i for i, (_, u) in enumerate(asked) if u == t]
                got = self.inner.interpolate(view, [asked[i][0] for i in rows], [t])
                if out is None:
                    out = np.empty((len(pairs), len(fractions)) + got.shape[2:], np.float32)
                out[rows, j] = got[:, 0]
        return out


def reversed_request(n: int, pair: int, fraction: float) -> Tuple[int, float]:
    """The (pair, fraction) of position ``pair + fraction`` among ``n`` slices once they are
    reversed along z: the pair that starts at or below it, fraction 1 only at the last slice
    (the engine's own convention, which training follows: an acquired slice is fraction 0)."""
    z = (n - 1) - (pair + fraction)
    p = min(int(np.floor(z + 1e-9)), n - 2)
    return p, float(max(z - p, 0.0))


def with_quality(interp, quality: str):
    """``interp`` for ``quality``: as it is for ``standard``, over mirrored views for ``high``."""
    if quality not in QUALITIES:
        raise HRINetError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
    return MirroredViews(interp) if quality == "high" else interp
