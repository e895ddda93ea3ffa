"""Thick slices as scanners make them: slab averages of thin slices (torch-free).

A CT slice of nominal thickness ``T`` is reconstructed from a slab of that width, so each thick
slice is a weighted mean of the thin anatomy around its centre, not one thin slice. We model the
slice-sensitivity profile as a box of width ``T`` (the nominal thickness, its full width at half
maximum) integrated against the linear interpolant of the thin slices: a trapezoid-like profile in
thin-slice units. ``T = spacing`` is the usual contiguous series; ``T > spacing`` is an overlapping
reconstruction (e.g. 5 mm slices every 2.5 mm).
"""

from __future__ import annotations

import math

import numpy as np

from hrinet.core.errors import HRINetError
from hrinet.core.volume import Volume, cast_like


def slab_weights(thickness: float) -> np.ndarray:
    """Weights of thin slices at integer offsets ``-m..m`` for a slab ``thickness`` slices wide.

    ``w(d) = integral over [-T/2, T/2] of hat(x - d)`` with ``hat`` the linear-interpolation kernel
    of half-width 1; normalised to sum 1. ``thickness <= 1`` gives (nearly) the centre slice alone.
    """
    half = max(float(thickness), 1e-6) / 2
    m = int(math.ceil(half)) + 1
    d = np.arange(-m, m + 1, dtype=np.float64)
    xs = np.linspace(-half, half, 401)
    hat = np.clip(1 - np.abs(xs[None, :] - d[:, None]), 0, None)
    w = np.trapezoid(hat, xs, axis=1) if hasattr(np, "trapezoid") else np.trapz(hat, xs, axis=1)
    w = w / w.sum()
    keep = w > 1e-9
    idx = np.nonzero(keep)[0]
    w = w[idx[0]:idx[-1] + 1]
    return (w / w.sum()).astype(np.float64)


def slab_average(stack: np.ndarray, centres, thickness: float) -> np.ndarray:
    """Thick slices of ``stack`` (z, y, x) centred on integer ``centres``, edges replicated."""
    w = slab_weights(thickness)
    m = len(w) // 2
    n = stack.shape[0]
    out = np.empty((len(centres),) + stack.shape[1:], dtype=np.float32)
    for i, c in enumerate(centres):
        idx = np.clip(np.arange(c - m, c + m + 1), 0, n - 1)
        out[i] = np.tensordot(w, stack[idx].astype(np.float32), axes=1)
    return out


def simulate_thick(volume: Volume, k: int, thickness_ratio: float = 1.0) -> Volume:
    """A thick-slice series from a thin volume: every ``k``-th position, slabs ``k * ratio`` thin
    slices wide (ratio 1: contiguous thick slices of thickness = spacing). Geometry as
    :func:`hrinet.evaluation.evaluate.decimate`; the thickness in mm is recorded in the metadata."""
    n = volume.array.shape[0]
    if (n - 1) // k < 1:
        raise HRINetError(f"the volume has {n} slices, too few for {k}-slice slabs")
    m = (n - 1) // k + 1
    centres = list(range(0, (m - 1) * k + 1, k))
    thick = slab_average(volume.array, centres, k * thickness_ratio)
    sx, sy, sz = volume.spacing
    out = volume.with_array(cast_like(thick, volume.array.dtype), (sx, sy, sz * k))
    out.metadata["slice_thickness_mm"] = sz * k * thickness_ratio
    return out
