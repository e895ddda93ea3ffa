"""Slice geometry a scanner writes that a regular grid does not hold: gantry tilt and uneven gaps.

A gantry-tilted series is a stack of parallel slices whose stacking direction is oblique: each
slice is shifted in-plane by ``z * tan(tilt)`` as the table advances. :func:`detilt` moves every
slice in-plane onto one orthogonal grid (the slice normal as its third axis), as dcm2niix and
Slicer's acquisition-geometry regularisation do; the slice spacing is then measured along the
normal, and every pixel keeps its position in patient space.

A series with uneven gaps keeps its known slices at their measured positions
(``metadata["slice_positions_mm"]``, along the slice normal); the engine interpolates each pair
of known slices across its own gap onto one regular output grid (:func:`uneven_grid`).
"""

from __future__ import annotations

from collections import Counter
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from hrinet.core.constants import HU_MIN
from hrinet.core.padding import find_padding, padding_mask
from hrinet.core.volume import cast_like

#: Relative tolerance on slice gaps before a series counts as unevenly spaced.
GAP_TOLERANCE = 0.01
#: Absolute tolerance on slice gaps (mm): positions are often written to a micrometre.
GAP_TOLERANCE_MM = 1e-3
#: A grid point within this share of the output spacing of a known slice is that slice.
ON_SLICE = 1e-3


def gap_spacing(positions: Sequence[float]) -> float:
    """The series' nominal slice spacing: the median of the gaps between sorted positions."""
    gaps = np.diff(np.asarray(positions, dtype=np.float64))
    return float(np.median(gaps)) if len(gaps) else 1.0


def uneven_gaps(positions: Sequence[float]) -> bool:
    """Whether the gaps between sorted ``positions`` differ from their median by more than
    :data:`GAP_TOLERANCE` (relative, at least :data:`GAP_TOLERANCE_MM`).

    Example:
        >>> uneven_gaps([0, 2, 4, 6]), uneven_gaps([0, 2, 4, 7])
        (False, True)
    """
    gaps = np.diff(np.asarray(positions, dtype=np.float64))
    if len(gaps) == 0:
        return False
    gap = float(np.median(gaps))
    return bool(np.any(np.abs(gaps - gap) > max(GAP_TOLERANCE * abs(gap), GAP_TOLERANCE_MM)))


def describe_gaps(positions: Sequence[float]) -> str:
    """The gaps between sorted ``positions`` in words, most common first, each length rounded
    to 0.1 mm.

    Example:
        >>> describe_gaps([0, 4.2, 8.4, 9.5, 16.9])
        '2 gaps of 4.2 mm, one of 1.1, one of 7.4'
    """
    gaps = np.round(np.diff(np.asarray(positions, dtype=np.float64)), 1)
    counts = Counter(float(g) for g in gaps)
    order = sorted(counts, key=lambda g: (-counts[g], g))
    words = []
    for i, g in enumerate(order):
        n = counts[g]
        what = ("one gap" if n == 1 else f"{n} gaps") if i == 0 else ("one" if n == 1 else f"{n}")
        words.append(f"{what} of {g:g}" + (" mm" if i == 0 else ""))
    return ", ".join(words)


def uneven_positions(positions: Optional[Sequence[float]], slices: int) -> Optional[np.ndarray]:
    """The known slices' positions (mm along the normal, ascending) when a volume of ``slices``
    slices has uneven gaps, else None (the regular grid holds it as it is)."""
    if positions is None or len(positions) != slices or slices < 3:
        return None
    p = np.asarray(positions, dtype=np.float64)
    return p if uneven_gaps(p) else None


def uneven_grid(positions: np.ndarray, spacing: float) -> int:
    """Slices of the regular output grid of ``spacing`` mm from the first known position to the
    last: the last grid point lies within half a spacing of the last known slice."""
    span = float(positions[-1] - positions[0])
    return int(np.floor(span / spacing + 0.5)) + 1


def grid_fractions(positions: np.ndarray, spacing: float, count: int
                   ) -> List[Tuple[int, float]]:
    """For each output slice ``j`` (at ``positions[0] + j * spacing``), the pair of known slices
    ``(p, p + 1)`` around it and the fraction ``t`` of its gap; a point within a thousandth of a
    spacing of a known slice is that slice (``t`` 0 or 1), and a point past the last known slice
    (at most half a spacing) takes the last one."""
    rel = positions - positions[0]
    n = len(positions)
    tol = ON_SLICE * spacing
    out = []
    for j in range(count):
        z = j * spacing
        p = int(np.clip(np.searchsorted(rel, z, side="right") - 1, 0, n - 2))
        gap = rel[p + 1] - rel[p]
        t = float(np.clip((z - rel[p]) / gap, 0.0, 1.0))
        if abs(z - rel[p]) <= tol:
            t = 0.0
        elif abs(z - rel[p + 1]) <= tol or z > rel[-1]:
            t = 1.0
        out.append((p, t))
    return out


def detilt(array: np.ndarray, shifts_px: np.ndarray) -> np.ndarray:
    """Each slice ``array[k]`` moved in-plane by ``shifts_px[k]`` = ``(dy, dx)`` pixels (output
    pixel ``(y, x)`` takes the input at ``(y - dy, x - dx)``), by cubic-spline interpolation, in
    the input's pixel type.

    Padding outside the scanner's circle (:mod:`hrinet.core.padding`) is moved as it is (seen
    as air by the interpolation, then written back where the nearest pixel had it), and what
    comes in from outside the field of view is padding (or, with none, the slice's minimum)."""

    padding = find_padding(array)
    out = np.empty_like(array)
    for k in range(array.shape[0]):
        src = np.asarray(array[k], dtype=np.float64)
        dy, dx = (float(v) for v in shifts_px[k])
        if abs(dy) < 1e-9 and abs(dx) < 1e-9:
            out[k] = array[k]
            continue
        fill = padding.value if padding is not None else float(src.min())
        mask = None
        if padding is not None:
            mask = padding_mask(array[k], padding.value)
            src = src.copy()
            src[mask] = HU_MIN  # air: the resampling spreads no padding into the body
        moved = ndimage.shift(src, (dy, dx), order=3, mode="nearest", prefilter=True)
        ny, nx = src.shape
        yy = np.arange(ny)[:, None] - dy
        xx = np.arange(nx)[None, :] - dx
        outside = (yy < -0.5) | (yy > ny - 0.5) | (xx < -0.5) | (xx > nx - 0.5)
        if mask is not None:
            outside = outside | ndimage.shift(mask.astype(np.uint8), (dy, dx), order=0,
                                              mode="constant", cval=1).astype(bool)
        moved[outside] = fill
        out[k] = cast_like(moved, array.dtype)
    return out


def orientation_words(direction: np.ndarray) -> str:
    """The slice plane in words: axial, coronal or sagittal, with the angle (degrees) between
    the slice normal and the nearest patient axis where it is oblique.

    Example:
        >>> orientation_words(np.eye(3))
        'axial'
    """
    normal = np.asarray(direction, dtype=np.float64)[:, 2]
    normal = normal / np.linalg.norm(normal)
    axis = int(np.argmax(np.abs(normal)))
    plane = ("sagittal", "coronal", "axial")[axis]
    angle = float(np.degrees(np.arccos(min(1.0, abs(normal[axis])))))
    return plane if angle < 0.5 else f"oblique, {angle:.1f} degrees from {plane}"


def geometry_lines(volume) -> List[str]:
    """``hrinet info``'s lines on how a volume's slices lie (``label: text``): orientation, the
    gaps between slices, a gantry tilt, thickness per slice, padding outside the scan circle,
    and every problem that stops ``interpolate`` (``metadata["problems"]``)."""
    meta = volume.metadata
    lines = [f"orientation: {orientation_words(volume.direction)}"]
    n = volume.array.shape[0]
    positions = uneven_positions(meta.get("slice_positions_mm"), n)
    if positions is not None:
        lines.append(f"slice gaps: uneven: {describe_gaps(positions)} (interpolate fills each "
                     "gap across its own length onto one regular grid)")
    elif n > 1:
        lines.append(f"slice gaps: even, {volume.spacing[2]:.4g} mm")
    if meta.get("gantry_tilt_degrees"):
        lines.append(f"gantry tilt: {meta['gantry_tilt_degrees']:.1f} degrees (slices "
                     "de-tilted onto an orthogonal grid as they were read)")
    per_slice = meta.get("slice_thicknesses_mm")
    if per_slice:
        counts = Counter(t for t in per_slice if t is not None)
        lines.append("thickness per slice: " + ", ".join(
            f"{counts[t]} slice(s) {t:g} mm" for t in sorted(counts, key=lambda t: -counts[t])))
    padding = find_padding(volume.array)
    lines.append("padding: " + ("none outside the scan circle" if padding is None else
                                f"{padding.value:g} outside the scan circle (the methods see "
                                "air there; it is written back into the new slices)"))
    for problem in meta.get("problems", []):
        lines.append(f"problem: {problem}")
    return lines
