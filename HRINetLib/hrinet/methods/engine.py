"""The volume interpolation engine: upsample a CT volume along z with exact geometry.

Geometry contract of :func:`upsample_z` for a factor ``k``:

- known slice ``i`` lands bit-exact at output index ``i * k``;
- z spacing is divided by ``k``; origin and direction (oblique included) are unchanged, so every
  known slice keeps its physical position;
- output size along z is ``(n - 1) * k + 1``;
- synthesised intensities come back in the input's pixel type, rounded and clipped to its range.

The plan (factor, slice thickness, the grid across uneven gaps) is made and checked before any
work by :mod:`hrinet.methods.planning`; this module runs it.

Memory: the volume is streamed a few slice pairs at a time (plus the method's halo), so working
memory is bounded by a few slices' worth; only the output itself is whole. Pass ``out=`` (for
example a ``numpy.memmap``) to keep even that on disk.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import numpy as np

from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.geometry import ON_SLICE, grid_fractions, uneven_grid, uneven_positions
from hrinet.core.memory import available_memory
from hrinet.core.padding import Padding, find_padding
from hrinet.core.io.provenance.record import SOURCE_KEY, made_by_hrinet
from hrinet.core.volume import Volume, cast_like
from hrinet.methods.planning import Plan, check_finite, plan_upsampling
from hrinet.methods.registry import Interpolator, create_interpolator

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


def _chunk_bytes(text: str) -> int:
    """``HRINET_CHUNK_MB`` in bytes; 0 for a value that is no whole number of MB from 1 to
    1048576 (refused by :func:`check_memory`, before any work, not at import)."""
    if not text.strip():  # HRINET_CHUNK_MB= (empty): unset
        text = "128"
    try:
        mb = int(text.strip())
    except ValueError:
        return 0
    return mb * 2 ** 20 if 1 <= mb <= 2 ** 20 else 0


#: Working-memory budget of one streamed chunk, in bytes (``HRINET_CHUNK_MB``, default 128).
CHUNK_BYTES = _chunk_bytes(os.environ.get("HRINET_CHUNK_MB", "128"))


def check_chunk_budget() -> None:
    """Refuse, in one line, an ``HRINET_CHUNK_MB`` that is no whole number of MB from 1 to
    1048576 (a cohort checks it once, before its first case)."""
    if CHUNK_BYTES <= 0:
        raise HRINetError(f"HRINET_CHUNK_MB={os.environ.get('HRINET_CHUNK_MB', '')!r} is not a "
                          "whole number of MB from 1 to 1048576; unset it (default 128) or give "
                          "e.g. 256")


def check_memory(volume: Volume, plan: Plan, streamed_out: bool = False,
                 output_copies: int = 1) -> int:
    """Refuse before any work when the output cannot fit in memory; returns the bytes needed.

    Working memory is a few slices; the output array is the only whole-volume allocation,
    unless the caller streams it into ``out=`` (e.g. a memmap). ``output_copies``: how many
    output-sized arrays the caller will hold at once (2 when it then writes the result: the
    writer, and the read-back that verifies the file, each hold one copy beside it).
    """
    check_chunk_budget()
    n, ny, nx = volume.array.shape
    slice_bytes = ny * nx * volume.array.dtype.itemsize
    outputs = (output_copies - 1) + (0 if streamed_out else 1)
    need = CHUNK_BYTES + outputs * plan.output_slices * slice_bytes
    have = available_memory()
    if need > 0.9 * have:
        raise HRINetError(
            f"the x{plan.factor} output needs {need / 2**30:.1f} GiB but only "
            f"{have / 2**30:.1f} GiB of memory is free; use a smaller factor (or coarser "
            "spacing), crop the volume, or free memory")
    return need


def intensity_warnings(array: np.ndarray) -> list:
    """Warnings when the intensities do not look like CT in Hounsfield units."""
    sample = array[:: max(1, array.shape[0] // 8)]
    lo, hi = float(sample.min()), float(sample.max())
    if lo >= 0 and hi <= 255:
        return [f"intensities span {lo:g}..{hi:g}, like an 8-bit image rather than CT in HU; "
                "learned models expect HU, so check the result or use the cubic method (--method cubic)"]
    if lo >= 0 and hi > 0:
        return [f"intensities span {lo:g}..{hi:g} with no negative values (air in CT is "
                "about -1000 HU): this may be MRI or rescaled CT; learned models expect HU, so "
                "check the result or use the cubic method (--method cubic)"]
    return []


def work_dtype(dtype: np.dtype, interp) -> type:
    """float64 where float32 would change values a method can reproduce exactly (float64
    volumes; integers beyond 2^24), for methods that compute in their input's precision."""
    dtype = np.dtype(dtype)
    wide = dtype == np.float64 or (np.issubdtype(dtype, np.integer) and dtype.itemsize >= 4)
    return np.float64 if wide and getattr(interp, "precise", False) else np.float32


def _pairs_per_chunk(slice_bytes: int, factor: int, halo: int) -> int:
    # window (pairs + 1 + 2 halo) slices in float32/64 plus (factor-1) results per pair
    per_pair = slice_bytes * (factor + 2)
    return max(1, min(64, (CHUNK_BYTES - 2 * halo * slice_bytes) // per_pair))


def _interpolate(interp: Interpolator, window: np.ndarray, pairs, fractions,
                 padding: Optional[Padding]) -> np.ndarray:
    """``interp`` on ``window``; with ``padding``, the method sees air there and the padding is
    written back into the synthesised slices."""
    if padding is None:
        return interp.interpolate(window, pairs, fractions)
    masks = padding.masks(window)
    return padding.restore(interp.interpolate(padding.hide(window, masks), pairs, fractions),
                           masks, pairs, fractions)


def _upsample_uneven(src: np.ndarray, positions: np.ndarray, plan: Plan, interp: Interpolator,
                     out: np.ndarray, padding: Optional[Padding], work: type,
                     progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> list:
    """Fill ``out`` on the plan's regular grid from known slices at uneven ``positions``: each
    output slice is synthesised between the two known slices around it at the fraction ``t`` of
    their own gap; a grid point on a known slice (within a thousandth of a spacing) is that
    slice, bit-exact. Returns ``[output index, input index]`` of each slice copied so at its
    own position (a point past the last known slice takes it too, but was not acquired there)."""
    n = src.shape[0]
    copied = []
    rel, step = np.asarray(positions, dtype=float) - float(positions[0]), plan.output_spacing[2]
    per_pair: dict = {}
    for j, (p, t) in enumerate(grid_fractions(positions, step, plan.output_slices)):
        per_pair.setdefault(p, []).append((j, t))
    for p in range(n - 1):
        if cancel is not None and cancel():
            raise Cancelled()
        points = per_pair.get(p, [])
        between = [(j, t) for j, t in points if 0.0 < t < 1.0]
        for j, t in points:
            if t == 0.0 or t == 1.0:
                i = p if t == 0.0 else p + 1
                out[j] = src[i]
                if abs(j * step - rel[i]) <= ON_SLICE * step:  # not a point past the last slice
                    copied.append([j, i])
        if between:
            lo, hi = max(0, p - interp.halo), min(n, p + 2 + interp.halo)
            synth = _interpolate(interp, src[lo:hi].astype(work), [p - lo],
                                 [t for _, t in between], padding)
            for i, (j, _) in enumerate(between):
                out[j] = cast_like(synth[0, i], src.dtype)
        if progress is not None:
            progress(p + 1, n - 1)
    return copied


def upsample_z(volume: Volume, factor: Optional[float] = None,
               target_spacing: Optional[float] = None, method: str = "linear",
               device: str = "auto", weights: Optional[str] = None,
               progress: Optional[ProgressFn] = None, cancel: Optional[CancelFn] = None,
               interpolator: Optional[Interpolator] = None,
               out: Optional[np.ndarray] = None, thickness: Optional[float] = None,
               plan: Optional[Plan] = None, pad_aware: bool = True,
               precision: str = "auto", quality: str = "standard") -> Volume:
    """Upsample ``volume`` along z by an integer factor.

    Args:
        volume: the input; never modified.
        factor: integer factor >= 2. Mutually exclusive with ``target_spacing``.
        target_spacing: wanted slice spacing in mm; the factor is ``round(spacing_z / target)``.
            With neither given, the target is isotropic (the finer in-plane spacing).
        method: a registered method name (:func:`hrinet.methods.available_methods`).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` for learned methods.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or (CUDA) ``"fp16"`` for learned methods
            (:mod:`hrinet.learned.precision`).
        quality: ``"standard"`` or ``"high"`` (learned methods: four mirrored views averaged,
            :mod:`hrinet.methods.ensemble`); a classical method ignores it.
        weights: a weights file for learned methods (default: the shipped model).
        progress: called as ``progress(done_pairs, total_pairs)``.
        cancel: polled between chunks; returning True raises :class:`hrinet.core.errors.Cancelled`.
        interpolator: an already created method instance (reuse across volumes).
        out: optional preallocated output array ``((n-1)*k+1, y, x)`` of the input dtype.
        thickness: slice thickness of the input in mm; see :func:`plan_upsampling`. With a
            slab (thickness at least half the spacing) a method that can (``restores_known``)
            also restores the known positions, which are then no longer copied unchanged.
        plan: the :class:`Plan` the caller made and showed (:func:`plan_upsampling`), run as it
            is; then ``factor``, ``target_spacing``, ``method`` and ``thickness`` are not used.
        pad_aware: find the padding outside the scan circle (:mod:`hrinet.core.padding`), show the
            method air there and write the padding back into the synthesised slices.

    Returns:
        A new :class:`Volume` with the upsampled voxels and geometry.
    """
    if plan is None:
        plan = plan_upsampling(volume, factor, target_spacing, method, thickness)
    elif plan.input_slices != volume.array.shape[0]:
        raise HRINetError(f"the plan is for {plan.input_slices} slices but the volume has "
                          f"{volume.array.shape[0]}; make the plan from this volume")
    else:  # a plan made from the header alone (the Slicer panel's)
        check_finite(volume.array)
    method = plan.method
    check_memory(volume, plan, streamed_out=out is not None)
    interp = interpolator or create_interpolator(method, device=device, weights=weights,
                                                 precision=precision, quality=quality)
    src = volume.array
    n, ny, nx = src.shape
    k = plan.factor
    positions = uneven_positions(volume.metadata.get("slice_positions_mm"), n)
    if positions is not None and plan.output_slices != uneven_grid(positions,
                                                                   plan.output_spacing[2]):
        raise HRINetError("the plan is for evenly spaced slices but this volume's slices lie "
                          "at uneven gaps; make the plan from this volume (plan_upsampling)")
    if out is None:
        out = np.empty((plan.output_slices, ny, nx), dtype=src.dtype)
    elif out.shape != (plan.output_slices, ny, nx) or out.dtype != src.dtype:
        raise HRINetError(f"out= must be {(plan.output_slices, ny, nx)} {src.dtype}")
    restore = (plan.slab_ratio > 0 and getattr(interp, "restores_known", False)
               and positions is None)
    if hasattr(interp, "slab_ratio"):
        interp.slab_ratio = plan.slab_ratio
    first = 0 if restore else 1
    fractions = [j / k for j in range(first, k)]
    work = work_dtype(src.dtype, interp)
    chunk = _pairs_per_chunk(ny * nx * 8, k, interp.halo)
    total = n - 1
    padding = find_padding(src) if pad_aware else None
    copied = [] if restore else [[p * k, p] for p in range(n)]
    if positions is not None:
        copied = _upsample_uneven(src, positions, plan, interp, out, padding, work, progress,
                                  cancel)
    for p0 in range(0, total if positions is None else 0, chunk):
        if cancel is not None and cancel():
            raise Cancelled()
        p1 = min(total, p0 + chunk)
        lo, hi = max(0, p0 - interp.halo), min(n, p1 + 1 + interp.halo)
        window = src[lo:hi].astype(work)
        synth = _interpolate(interp, window, range(p0 - lo, p1 - lo), fractions, padding)
        for i, p in enumerate(range(p0, p1)):
            out[p * k + first:(p + 1) * k] = cast_like(synth[i], src.dtype)
            if not restore:
                out[p * k] = src[p]
        if progress is not None:
            progress(p1, total)
    if positions is not None:
        pass  # every output slice is written
    elif restore:  # the last known position: fraction 1 of the last pair
        lo = max(0, n - 2 - interp.halo)
        last = _interpolate(interp, src[lo:].astype(work), [n - 2 - lo], [1.0], padding)
        out[(n - 1) * k] = cast_like(last[0, 0], src.dtype)
    else:
        out[(n - 1) * k] = src[n - 1]
    result = Volume(array=out, spacing=plan.output_spacing, origin=volume.origin,
                    direction=volume.direction.copy(), metadata=dict(volume.metadata))
    earlier = made_by_hrinet(volume)  # hrinet made the input (its metadata untouched)
    result.metadata.pop("provenance", None)  # the input's, not the result's
    if earlier:
        result.metadata[SOURCE_KEY] = earlier
    result.metadata.pop("slice_thickness_mm", None)  # the output is a thin-slice volume
    result.metadata.pop("slice_positions_mm", None)  # and on a regular grid
    result.metadata.update(method=interp.name, factor=k, restored_known=restore,
                           copied_slices=copied, input_slices=n,
                           padding=None if padding is None else padding.value,
                           runtime_warnings=(
        (intensity_warnings(src) if getattr(interp, "expects_hu", False) else []) +
        list(getattr(interp, "runtime_warnings", []))))
    return result
