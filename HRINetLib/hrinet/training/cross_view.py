"""Cross-view training groups: slices stacked along an in-plane axis (``cross_view`` option).

Thin CT is scarce, but every series' axial planes are fine in both in-plane directions
(the SMORE / SR4ZCT idea). A cross-view group stacks along y or x instead of z: its "slices"
are the planes spanned by z and the other in-plane axis, and its known and target slices lie
along the stacking axis, one in-plane pixel apart. Each plane's z axis (the slice spacing, often
3-5 mm) is resampled to the in-plane pixel size with a cubic (Keys) kernel, so the planes have
square pixels as axial slices have at inference. Crops are picked, flipped and normalised as
:meth:`hrinet.training.data.SliceSampler._crop` does; each plane is also transposed at random
(z along rows or columns). A volume whose z extent covers less than half a crop is not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from hrinet.core.volume import Volume
from hrinet.learned.models import HU_MAX, HU_MIN, HU_SCALE

#: Array axes (of ``(z, y, x)``) a cross-view group may stack along.
AXES = (1, 2)
AIR = HU_MIN


@dataclass(frozen=True)
class PlaneCrop:
    """Where a cross-view block lies: stacked along ``axis`` from ``a0``; plane rows from z index
    ``z0`` every ``step`` slices, columns from ``b0`` along the other in-plane axis."""

    axis: int
    a0: int
    z0: int
    b0: int
    step: float


def pixel_sizes(volume: Volume, axis: int) -> Tuple[float, float]:
    """``(p, dz)``: the plane's in-plane pixel size (along the axis that is not ``axis``) and the
    slice spacing. Spacing is ``(x, y, z)``: array axis ``k`` has ``spacing[2 - k]``."""
    other = 3 - axis
    return float(volume.spacing[2 - other]), float(volume.spacing[2])


def rows(volume: Volume, axis: int) -> int:
    """Square-pixel rows the volume's z extent holds in a plane of stacking ``axis``."""
    p, dz = pixel_sizes(volume, axis)
    return int(np.floor((volume.array.shape[0] - 1) * dz / p + 1e-6)) + 1


def eligible(volumes: Sequence[Volume], axis: int, n: int, size: int) -> List[int]:
    """Volumes with ``n`` planes along ``axis`` and at least half a crop in both plane axes."""
    return [i for i, v in enumerate(volumes)
            if v.array.shape[axis] >= n and rows(v, axis) >= size // 2
            and v.array.shape[3 - axis] >= size // 2]


def _keys(f: np.ndarray) -> np.ndarray:
    """Keys cubic (a = -0.5) weights of the taps -1, 0, 1, 2 at fractions ``f``: ``(4, len)``."""
    a = -0.5
    d = np.stack([1 + f, f, 1 - f, 2 - f])
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, far).astype(np.float32)


def plane_crop(volume: Volume, where: PlaneCrop, n: int, size: int) -> np.ndarray:
    """``(n, size, size)`` float HU: the ``n`` planes of ``where``, rows along z (resampled,
    edges clamped), columns along the other in-plane axis; padded with air past the volume."""
    arr = volume.array
    nz = arr.shape[0]
    k = min(size, int(np.floor((nz - 1 - where.z0) / where.step + 1e-6)) + 1)
    pos = where.z0 + where.step * np.arange(k)
    i0 = np.floor(pos + 1e-9).astype(int)
    w = _keys(pos - i0)
    taps = [np.clip(i0 + d, 0, nz - 1) for d in (-1, 0, 1, 2)]
    lo, hi = int(taps[0].min()), int(taps[-1].max())
    cols = slice(where.b0, where.b0 + size)
    planes = slice(where.a0, where.a0 + n)
    sub = arr[lo:hi + 1, planes, cols] if where.axis == 1 else \
        arr[lo:hi + 1, cols, planes].transpose(0, 2, 1)
    sub = sub.astype(np.float32)  # (z, n, columns)
    out = sum(w[d][:, None, None] * sub[taps[d] - lo] for d in range(4))
    out = np.ascontiguousarray(out.transpose(1, 0, 2))  # (n, rows, columns)
    if out.shape[1] < size or out.shape[2] < size:
        out = np.pad(out, ((0, 0), (0, size - out.shape[1]), (0, size - out.shape[2])),
                     constant_values=AIR)
    return out


def draw(rng: np.random.Generator, volume: Volume, axis: int, n: int,
         size: int) -> Tuple[np.ndarray, PlaneCrop]:
    """A random cross-view block of ``n`` planes along ``axis`` (normalised to [0, 1] like
    :meth:`~hrinet.training.data.SliceSampler._crop`, flipped, transposed and reversed at
    random) and where it lies."""
    arr = volume.array
    p, dz = pixel_sizes(volume, axis)
    step = p / dz
    nb = arr.shape[3 - axis]
    span = (min(size, rows(volume, axis)) - 1) * step  # z index range of the rows
    a0 = int(rng.integers(0, arr.shape[axis] - n + 1))
    mid_index = a0 + n // 2
    best = None
    for _ in range(6):  # prefer crops showing the body rather than air
        z0 = int(rng.integers(0, int(np.floor(arr.shape[0] - 1 - span + 1e-6)) + 1))
        b0 = int(rng.integers(0, max(nb - size, 0) + 1))
        zs = slice(z0, z0 + int(np.ceil(span)) + 1)
        mid = arr[zs, mid_index, b0:b0 + size] if axis == 1 else arr[zs, b0:b0 + size, mid_index]
        if best is None or float(mid.mean()) > -800:
            best = (z0, b0)
            if float(mid.mean()) > -800:
                break
    where = PlaneCrop(axis, a0, best[0], best[1], step)
    block = plane_crop(volume, where, n, size)
    if rng.random() < 0.5:  # z along the columns instead of the rows
        block = block.transpose(0, 2, 1)
    if rng.random() < 0.5:
        block = block[:, :, ::-1]
    if rng.random() < 0.5:
        block = block[:, ::-1, :]
    if rng.random() < 0.5:
        block = block[::-1]
    return (np.clip(block, HU_MIN, HU_MAX) - HU_MIN) / HU_SCALE, where


def whole_planes(volume: Volume, where: PlaneCrop, n: int, r: int) -> np.ndarray:
    """The block's ``n`` whole planes (float HU, ``(n, z, columns)``), every ``r``-th column and
    about every ``r`` pixel sizes along z (no resampling), for the z-roughness: it is a mean over
    pixels, so the plane's own grid measures it as well as a square one."""
    rz = max(1, int(round(r * where.step)))
    planes = slice(where.a0, where.a0 + n)
    arr = volume.array
    sub = arr[::rz, planes, ::r] if where.axis == 1 else arr[::rz, ::r, planes].transpose(0, 2, 1)
    return np.ascontiguousarray(sub.transpose(1, 0, 2), dtype=np.float32)
