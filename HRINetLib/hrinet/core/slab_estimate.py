"""Is a series of slab averages, and how thick are its slabs? Estimated from the voxels (torch-free).

Many files (NRRD, NIfTI, MHA) have lost the slice thickness, and a slab series treated as thin
slices loses detail the learned model could restore. The estimate uses the in-plane data as the
reference, as self-supervised super-resolution (SMORE, ECLARE, SR4ZCT) does: anatomy is about as
detailed along z as across the slice, so lines through the axial slices, averaged over a slab of
width ``T`` and sampled every slice spacing, should look like the lines along z when ``T`` is the
series' slab width. We compare the shapes of their power spectra (aliasing included, since both
are sampled at the slice spacing; the overall level is left free because anatomy is not equally
strong in every direction) over candidate widths and keep the best.

What that measures is the slab width *beyond* the in-plane resolution. A nominal thickness (what
DICOM Slice Thickness records: the width of the whole slice profile) also holds the scanner's own
thin-slice blur, about as wide as the in-plane point spread (taken as :data:`RESOLUTION_PIXELS`
in-plane pixels); the two add in quadrature. A series is judged a slab series when that thickness
reaches :data:`SLAB_JUDGE_RATIO` of the slice spacing; thinner ones are thin slices sampled apart.
A thickness within the estimate's spread of the spacing (:data:`CONTIGUOUS`) is taken as the
spacing itself: contiguous slabs are the usual reconstruction, and the learned model restores them
best with the exact ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from hrinet.core.constants import HU_RANGE

#: HU below this is air: segments touching it (the body's outline) are left out of the spectra.
AIR_HU = -980.0
#: Samples per spectrum segment (fewer when the series has fewer slices).
SEGMENT = 16
#: Longest spectrum segment in mm (shorter segments fit more often inside the body).
SEGMENT_MM = 100.0
#: Shortest spectrum segment, in samples, where the series has that many slices.
MIN_SEGMENT = 8
#: Fewest slices an estimate is made from.
MIN_SLICES = 5
#: Candidate slab widths, in slice spacings.
RATIOS = np.round(np.arange(0.0, 3.0001, 0.1), 2)
#: In-plane resolution (point-spread width) in in-plane pixels: CT is reconstructed with pixels
#: about half its resolution.
RESOLUTION_PIXELS = 1.9
#: Slices at least this fraction of their spacing thick are slab averages; thinner, thin slices.
SLAB_JUDGE_RATIO = 0.65
#: Estimates between these ratios are taken as contiguous slabs (thickness = spacing, by far the
#: most common reconstruction): the spread of the estimate is about this wide.
CONTIGUOUS = (SLAB_JUDGE_RATIO, 1.5)
#: Fewest in-body spectrum segments (along z and in-plane) an estimate relies on.
MIN_SEGMENTS = 32
#: About the most in-plane segments compared per candidate width: thin series give many more
#: per line than thick ones, and past this many the mean spectrum no longer moves but the time
#: does (every how-many-th line is kept is chosen up front, so the choice is deterministic).
MAX_PLANE_SEGMENTS = 80_000


@dataclass(frozen=True)
class SlabEstimate:
    """The estimate for one series."""

    #: Nominal slice thickness in mm (the slice profile's width, as DICOM would record it).
    thickness_mm: float
    #: ``thickness_mm`` / slice spacing.
    ratio: float
    #: Whether the slices are judged slab averages (else thin slices sampled apart).
    is_slab: bool
    #: The slab width beyond the in-plane resolution, in mm (what the spectra measure).
    excess_mm: float


def _segments(lines: np.ndarray, n: int) -> np.ndarray:
    """Half-overlapping ``n``-sample pieces of ``lines`` (L, m) that lie wholly inside the body,
    ordered by their start, then by line."""
    m = lines.shape[1]
    if m < n:
        return np.zeros((0, n))
    starts = np.arange(0, m - n + 1, max(1, n // 2))
    pieces = np.lib.stride_tricks.sliding_window_view(lines, n, axis=1)[:, starts]
    pieces = pieces.transpose(1, 0, 2).reshape(-1, n)  # (start, line) order
    return pieces[(pieces > AIR_HU).all(axis=1)]


def _log_spectrum(segments: np.ndarray) -> np.ndarray:
    """Mean log power spectrum (DC left out) of detrended, Hann-windowed segments."""
    n = segments.shape[1]
    t = np.arange(n) - (n - 1) / 2
    seg = segments - segments.mean(axis=1, keepdims=True)
    seg = seg - np.outer((seg * t).sum(axis=1) / (t * t).sum(), t)
    w = np.hanning(n + 2)[1:-1]
    power = (np.abs(np.fft.rfft(seg * w, axis=1)) ** 2).mean(axis=0)
    return np.log(power[1:] + 1e-9)


def _integral(lines: np.ndarray, step: float) -> np.ndarray:
    """The running integral of the linear interpolant of ``lines`` (L, m), ``step`` mm apart, at
    each sample (the same for every slab width, so made once per set of lines)."""
    return np.concatenate([np.zeros((lines.shape[0], 1)),
                           np.cumsum((lines[:, 1:] + lines[:, :-1]) * (step / 2), axis=1)],
                          axis=1)


def _slab_sample(along: np.ndarray, step: float, spacing: float, width: float,
                 offset: float, integral: np.ndarray) -> np.ndarray:
    """Lines ``step`` mm apart, given sample-major (``along``: (m, L), one row per position, so
    each sample gathers whole rows), averaged over slabs ``width`` mm wide of their linear
    interpolant and sampled every ``spacing`` mm from ``offset``; ``integral``: their
    :func:`_integral`, also sample-major. Returns (L, samples)."""
    m = along.shape[0]
    length = (m - 1) * step

    def at(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
        q = pos / step
        i = np.clip(np.floor(q).astype(int), 0, m - 2)
        f = (q - i)[:, None]
        return values[i] * (1 - f) + values[i + 1] * f

    pos = np.arange(width / 2 + offset, length - width / 2, spacing)
    if width < 0.25 * step:
        return at(along, pos).T
    return ((at(integral, pos + width / 2) - at(integral, pos - width / 2)) / width).T


def _hu(values: np.ndarray) -> np.ndarray:
    return np.clip(values.astype(np.float64), *HU_RANGE)


def estimate_slab(array: np.ndarray, spacing: Sequence[float],
                  seed: int = 0) -> Optional[SlabEstimate]:
    """Estimate the slice thickness of ``array`` (z, y, x; CT in HU) with ``spacing`` (x, y, z) mm.

    Returns None when the data cannot tell (fewer than :data:`MIN_SLICES` slices, too little
    tissue, in-plane pixels no finer than the slices): the caller then keeps its default.
    Deterministic for a given ``seed``; reads a few thousand lines, not the whole volume.
    """
    if array.ndim != 3 or array.shape[0] < MIN_SLICES:
        return None
    sx, sy, sz = (float(s) for s in spacing)
    if not all(math.isfinite(s) and s > 0 for s in (sx, sy, sz)) or min(sx, sy) >= sz:
        return None
    nz, ny, nx = array.shape
    n = min(nz, max(MIN_SEGMENT, min(SEGMENT, int(SEGMENT_MM / sz))))
    rng = np.random.default_rng(seed)
    ys, xs = rng.integers(0, ny, 4000), rng.integers(0, nx, 4000)
    z_segments = _segments(_hu(array[:, ys, xs].T), n)
    picked = np.unique(np.linspace(0, nz - 1, min(16, nz)).round().astype(int))
    stride = max(1, min(ny, nx) // 96)
    rows = [(_hu(array[i, ::stride, :]), sx) for i in picked]
    cols = [(_hu(array[i, :, ::stride].T), sy) for i in picked]
    if len(z_segments) < MIN_SEGMENTS:
        return None
    target = _log_spectrum(z_segments)
    # segments one line of each set gives at the slice spacing (thin series give many), times
    # the lines of a set, bounded by keeping every keep-th line
    per_line = sum(max(0, (lines.shape[1] - 1) * step / sz - n) / max(1, n // 2) + 1
                   for lines, step in rows + cols) * 2  # two offsets
    keep = max(1, math.ceil(per_line * rows[0][0].shape[0] / MAX_PLANE_SEGMENTS))
    # the rows of all picked slices as one set of lines, the columns as another (one gather per
    # set and width, not one per slice), sample-major so that each gather reads whole rows
    prepared = []
    for sets, step in ((rows, sx), (cols, sy)):
        lines = np.concatenate([one[::keep] for one, _ in sets])
        prepared.append((np.ascontiguousarray(lines.T), step,
                         np.ascontiguousarray(_integral(lines, step).T)))

    def error(ratio: float) -> Optional[float]:
        """How far the in-plane lines averaged over ``ratio`` slice spacings look from z's."""
        width = ratio * sz
        pieces = [_segments(_slab_sample(lines, step, sz, width, offset, integral), n)
                  for lines, step, integral in prepared for offset in (0.0, sz / 2)]
        pieces = np.concatenate([p for p in pieces if len(p)] or [np.zeros((0, n))])
        if len(pieces) < MIN_SEGMENTS:
            return None
        d = target - _log_spectrum(pieces)
        return float(np.mean((d - d.mean()) ** 2))

    # every second candidate first, then the two beside the best of those: the error falls and
    # rises smoothly with the width, so this finds the least of all candidates and its neighbours
    errors = np.full(len(RATIOS), np.inf)  # inf: not computed

    def fill(indices) -> bool:
        for i in indices:
            if 0 <= i < len(RATIOS):
                e = error(RATIOS[i])
                if e is None:
                    return False
                errors[i] = e
        return True

    if not fill(range(0, len(RATIOS), 2)):
        return None
    best = int(np.argmin(errors))
    if not fill((best - 1, best + 1)):
        return None
    excess = _refine(errors) * sz
    thickness = math.hypot(excess, RESOLUTION_PIXELS * min(sx, sy))
    ratio = thickness / sz
    if CONTIGUOUS[0] <= ratio < CONTIGUOUS[1]:
        thickness, ratio = sz, 1.0
    return SlabEstimate(thickness_mm=thickness, ratio=ratio, is_slab=ratio >= SLAB_JUDGE_RATIO,
                        excess_mm=excess)


def _refine(errors: np.ndarray) -> float:
    """The candidate ratio of least error, refined by a parabola through its neighbours."""
    i = int(np.argmin(errors))
    step = float(RATIOS[1] - RATIOS[0])
    if 0 < i < len(errors) - 1:
        e0, e1, e2 = errors[i - 1:i + 2]
        curvature = e0 - 2 * e1 + e2
        if curvature > 0:
            return float(RATIOS[i] + step * 0.5 * (e0 - e2) / curvature)
    return float(RATIOS[i])
