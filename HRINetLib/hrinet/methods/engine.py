"""The volume interpolation engine: upsample a CT volume along z with exact geometry.

Geometry contract of :func:`upsample_z` for a factor ``k``:

- known slice ``i`` lands bit-exact at output index ``i * k``;
- z spacing is divided by ``k``; origin and direction (oblique included) are unchanged, so every
  known slice keeps its physical position;
- output size along z is ``(n - 1) * k + 1``;
- synthesised intensities come back in the input's pixel type, rounded and clipped to its range.

Memory: the volume is streamed a few slice pairs at a time (plus the method's halo), so working
memory is bounded by a few slices' worth; only the output itself is whole. Pass ``out=`` (for
example a ``numpy.memmap``) to keep even that on disk.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.geometry import grid_fractions, uneven_grid, uneven_positions
from hrinet.core.memory import available_memory
from hrinet.core.padding import Padding, find_padding
from hrinet.core.slab_estimate import estimate_slab
from hrinet.core.volume import Volume, cast_like
from hrinet.methods.registry import Interpolator, create_interpolator

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]

#: Working-memory budget of one streamed chunk, in bytes.
CHUNK_BYTES = int(os.environ.get("HRINET_CHUNK_MB", "128")) * 2 ** 20


#: Slab ratios (thickness / spacing) below this are treated as thin slices sampled apart.
MIN_SLAB_RATIO = 0.5
#: Thicker slabs than this many slice spacings (or than MAX_THICKNESS_MM) are refused.
MAX_SLAB_RATIO = 10.0
MAX_THICKNESS_MM = 50.0
#: Larger upsampling factors are refused (a factor this large is a header or a typing error).
MAX_FACTOR = 64


@dataclass(frozen=True)
class Plan:
    """What :func:`upsample_z` will do, resolved and validated before any work starts."""

    factor: int
    input_slices: int
    output_slices: int
    output_spacing: tuple
    method: str
    #: Slice thickness of the input in mm (0: thin slices sampled far apart).
    thickness: float = 0.0
    #: Where the thickness came from: "given", "DICOM", "estimated" (from the voxels, see
    #: :mod:`hrinet.core.slab_estimate`; thickness 0 when they look like thin slices) or "assumed".
    thickness_source: str = "assumed"
    #: thickness / input slice spacing; 0 when the input is treated as thin slices.
    slab_ratio: float = 0.0

    def describe(self, restore_how: str = "give --thickness {t:.4g}") -> str:
        """The plan in one line. ``restore_how``: how the caller's user asks for slab
        restoration (``{t}`` is the thickness), named when DICOM says the slices are slabs."""
        sx, sy, sz = self.output_spacing
        text = (f"x{self.factor} with {self.method}: {self.input_slices} -> {self.output_slices} "
                f"slices, spacing {sx:.4g} x {sy:.4g} x {sz:.4g} mm")
        if self.thickness_source == "assumed":
            return text + ("; slice thickness unknown, assumed thin (known slices kept as they "
                           "are; give the thickness to restore slab-averaged slices)")
        if self.thickness_source == "estimated" and self.slab_ratio == 0:
            return text + ("; slice thickness unknown, assumed thin as the data suggest (known "
                           "slices kept as they are; use --thickness to set it)")
        if self.thickness_source == "estimated":
            return text + (f"; slice thickness estimated {self.thickness:.1f} mm from the data "
                           f"(use --thickness to set it; {self.slab_ratio:.2f} x the spacing): "
                           "learned models restore the known positions too (their slices are "
                           "slab averages), other methods keep them")
        if self.slab_ratio == 0:
            text += f"; slices {self.thickness:.4g} mm thick ({self.thickness_source}), " \
                "treated as thin: known slices kept as they are"
            if self.thickness_source == "DICOM" and \
                    self.thickness >= MIN_SLAB_RATIO * sz * self.factor:
                text += (f" (to restore them as {self.thickness:.4g} mm slab averages, which "
                         "rewrites the acquired slices, "
                         f"{restore_how.format(t=self.thickness)})")
            return text
        return text + (f"; slices {self.thickness:.4g} mm thick ({self.thickness_source}, "
                       f"{self.slab_ratio:.2f} x the spacing): learned models restore the known "
                       "positions too (their slices are slab averages), other methods keep them")


def resolve_factor(spacing_z: float, in_plane: float, factor: Optional[float] = None,
                   target_spacing: Optional[float] = None) -> int:
    """The integer upsampling factor from an explicit factor or a target slice spacing.

    With neither given the target is isotropic: the finer in-plane spacing.
    """
    if factor is not None and target_spacing is not None:
        raise HRINetError("give either a factor or a target spacing, not both")
    if factor is not None:
        if isinstance(factor, bool) or not float(factor).is_integer():
            raise HRINetError(f"factor {factor} is not a whole number; give an integer >= 2")
        k = int(factor)
        if k < 2:
            raise HRINetError(f"factor {k} leaves nothing to interpolate"
                              if k == 1 else f"factor {k} is not positive; give an integer >= 2")
        return k
    target = in_plane if target_spacing is None else float(target_spacing)
    if not math.isfinite(target):
        raise HRINetError(f"target spacing {target_spacing} mm is not a number of mm; give a "
                          "slice spacing in mm such as 1.0")
    if target <= 0:
        raise HRINetError(f"target spacing {target_spacing} mm is not positive; give a slice "
                          "spacing in mm such as 1.0")
    ratio = spacing_z / target
    if not math.isfinite(ratio) or ratio > MAX_FACTOR:
        raise HRINetError(f"target spacing {target:g} mm would need a factor above "
                          f"{MAX_FACTOR} for slices {spacing_z:.4g} mm apart; give a spacing of at "
                          f"least {spacing_z / MAX_FACTOR:.3g} mm")
    if ratio < 1.5 and target_spacing is None:
        raise HRINetError(f"the volume is already close to isotropic (slice spacing "
                          f"{spacing_z:.4g} mm, in-plane {in_plane:.4g} mm); give a factor or "
                          "a finer target spacing to interpolate anyway")
    if ratio < 1.5:
        reachable = ", ".join(f"{spacing_z / k:.4g} mm (x{k})" for k in (2, 3, 4))
        finer = "not finer than" if ratio <= 1 else "finer than"
        raise HRINetError(f"target spacing {target:.4g} mm is {finer} the slice spacing "
                          f"{spacing_z:.4g} mm by a factor of {ratio:.2f}; only whole factors are "
                          f"possible: the nearest reachable spacings are {reachable}")
    return int(round(ratio))


def resolve_thickness(sz: float, thickness: Optional[float] = None,
                      recorded: Optional[float] = None):
    """``(thickness_mm, source, slab_ratio)`` for slices ``sz`` mm apart: the given thickness,
    else the one ``recorded`` with the volume (DICOM Slice Thickness), else 0 (assumed).

    A recorded thickness is reported, never applied: restoring slab-averaged slices rewrites
    the acquired ones, which the user must ask for (``thickness``)."""
    if thickness is None:
        if recorded is None:
            return 0.0, "assumed", 0.0
        recorded = float(recorded)
        if not math.isfinite(recorded) or recorded < 0:
            return 0.0, "assumed", 0.0
        return recorded, "DICOM", 0.0
    source = "given"
    thickness = float(thickness)
    if not math.isfinite(thickness) or thickness < 0:
        raise HRINetError(f"slice thickness {thickness:g} mm is not valid; give 0 (thin slices "
                          "sampled apart) or the series' slice thickness in mm, e.g. 5")
    thickness = abs(thickness)  # -0 is 0
    limit = min(MAX_THICKNESS_MM, MAX_SLAB_RATIO * sz)
    if thickness > limit * (1 + 1e-6):  # a spacing of 2.4999998 allows 25 mm
        raise HRINetError(f"slice thickness {thickness:g} mm is implausible for slices "
                          f"{sz:.4g} mm apart (at most {limit:.4g} mm); check the value (it is the slab width, not the volume's extent)")
    ratio = thickness / sz
    return thickness, source, (ratio if ratio >= MIN_SLAB_RATIO else 0.0)


def plan_upsampling(volume: Volume, factor: Optional[float] = None,
                    target_spacing: Optional[float] = None, method: str = "linear",
                    thickness: Optional[float] = None,
                    estimate_thickness: bool = False) -> Plan:
    """Validate the input and parameters and return the :class:`Plan` (no work done).

    ``thickness`` is the input's slice thickness in mm (None: DICOM Slice Thickness when the
    volume came from DICOM, else assumed 0, thin slices sampled far apart). With
    ``estimate_thickness`` (the command line's default) a volume whose header records no
    thickness and that did not come from DICOM has it estimated from its voxels
    (:func:`hrinet.core.slab_estimate.estimate_slab`) and used, slab or thin; a given or
    recorded thickness always wins, so DICOM series plan exactly as without it.
    """
    if volume.array.ndim != 3:
        raise HRINetError(f"expected a 3D volume, got an array of {volume.array.ndim} dimensions")
    _check_finite(volume.array)  # before the plan is shown or a model loaded
    plan = make_plan(volume.array.shape[0], volume.spacing, factor, target_spacing, method,
                     thickness, volume.metadata.get("slice_thickness_mm"))
    if estimate_thickness and plan.thickness_source == "assumed" and not _from_dicom(volume):
        plan = _estimated_plan(volume, plan)
    return _uneven_plan(volume, plan, target_spacing)


def _from_dicom(volume: Volume) -> bool:
    """Whether ``volume`` was read from a DICOM series (whose thickness is never estimated)."""
    return any(key in volume.metadata for key in ("dicom_series", "series_uid",
                                                  "slice_positions_mm"))


def _estimated_plan(volume: Volume, plan: Plan) -> Plan:
    """``plan`` with the slice thickness estimated from the voxels (as it is when they cannot
    tell)."""

    found = estimate_slab(volume.array, volume.spacing)
    if found is None:
        return plan
    sz = volume.spacing[2]
    slab = min(found.thickness_mm, MAX_THICKNESS_MM, MAX_SLAB_RATIO * sz) if found.is_slab else 0
    t, _, ratio = resolve_thickness(sz, slab)
    return replace(plan, thickness=t, thickness_source="estimated", slab_ratio=ratio)


def already_at_target(volume: Volume, target_spacing: Optional[float],
                      factor: Optional[float] = None) -> bool:
    """Whether ``volume`` is a thin series (slices at most 1.5 x the in-plane spacing apart)
    whose slices are already ``target_spacing`` mm apart or closer, so there is nothing to
    interpolate. A ``factor`` always asks for work (then False); a target coarser than a thick
    series stays an error of the plan (it is more likely a typing error than a wish)."""
    if factor is not None or target_spacing is None:
        return False
    target = float(target_spacing)
    sx, sy, sz = (float(s) for s in volume.spacing)
    return math.isfinite(target) and target > 0 and sz <= target * (1 + 1e-3) and \
        sz < 1.5 * min(sx, sy)


def already_at_words(volume: Volume) -> str:
    """``"already at 1.0 mm"``: how a case :func:`already_at_target` finds is reported."""
    sz = float(volume.spacing[2])
    return f"already at {sz:.1f} mm" if abs(sz * 10 - round(sz * 10)) < 1e-6 else \
        f"already at {sz:.4g} mm"


def make_plan(slices: int, spacing, factor: Optional[float] = None,
              target_spacing: Optional[float] = None, method: str = "linear",
              thickness: Optional[float] = None, recorded_thickness: Optional[float] = None) -> Plan:
    """The :class:`Plan` from header values alone (slice count and spacing), so that a caller
    holding no voxels (the Slicer panel, on every change of its controls) makes the same plan
    the engine runs."""
    if slices < 2:
        raise HRINetError(f"the volume has {slices} slice; interpolation needs at least 2 slices")
    sx, sy, sz = spacing
    k = resolve_factor(sz, min(sx, sy), factor, target_spacing)
    t, source, ratio = resolve_thickness(sz, thickness, recorded_thickness)
    return Plan(factor=k, input_slices=slices, output_slices=(slices - 1) * k + 1,
                output_spacing=(sx, sy, sz / k), method=method, thickness=t,
                thickness_source=source, slab_ratio=ratio)


def _check_finite(array: np.ndarray, step: int = 16) -> None:
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = 0
    for s in range(0, array.shape[0], step):
        bad += int(np.count_nonzero(~np.isfinite(array[s:s + step])))
    if bad:
        raise HRINetError(f"the volume holds {bad} NaN or infinite voxels; replace them "
                          "(for example with the background value) before interpolating")


def check_memory(volume: Volume, plan: Plan, streamed_out: bool = False,
                 output_copies: int = 1) -> int:
    """Refuse before any work when the output cannot fit in memory; returns the bytes needed.

    Working memory is a few slices; the output array is the only whole-volume allocation,
    unless the caller streams it into ``out=`` (e.g. a memmap). ``output_copies``: how many
    output-sized arrays the caller will hold at once (2 when it then writes the result: the
    writer, and the read-back that verifies the file, each hold one copy beside it).
    """
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


def _uneven_plan(volume: Volume, plan: Plan, target_spacing: Optional[float]) -> Plan:
    """``plan`` for a volume whose known slices lie unevenly (``metadata["slice_positions_mm"]``,
    a DICOM series with uneven gaps): one regular output grid from the first known slice to the
    last, ``target_spacing`` apart where given (the known slices fall between grid points
    anyway), else the median gap over the factor. A regular volume's plan is returned as it is."""
    positions = uneven_positions(volume.metadata.get("slice_positions_mm"), plan.input_slices)
    if positions is None:
        return plan
    sx, sy, sz = plan.output_spacing
    if target_spacing is not None:
        sz = float(target_spacing)
    return replace(plan, output_spacing=(sx, sy, sz),
                   output_slices=uneven_grid(positions, sz))


def _upsample_uneven(src: np.ndarray, positions: np.ndarray, plan: Plan, interp: Interpolator,
                     out: np.ndarray, padding: Optional[Padding], work: type,
                     progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> None:
    """Fill ``out`` on the plan's regular grid from known slices at uneven ``positions``: each
    output slice is synthesised between the two known slices around it at the fraction ``t`` of
    their own gap; a grid point on a known slice (within a thousandth of a spacing) is that
    slice, bit-exact."""
    n = src.shape[0]
    per_pair: dict = {}
    for j, (p, t) in enumerate(grid_fractions(positions, plan.output_spacing[2],
                                              plan.output_slices)):
        per_pair.setdefault(p, []).append((j, t))
    for p in range(n - 1):
        if cancel is not None and cancel():
            raise Cancelled()
        points = per_pair.get(p, [])
        between = [(j, t) for j, t in points if 0.0 < t < 1.0]
        for j, t in points:
            if t == 0.0 or t == 1.0:
                out[j] = src[p if t == 0.0 else p + 1]
        if between:
            lo, hi = max(0, p - interp.halo), min(n, p + 2 + interp.halo)
            synth = _interpolate(interp, src[lo:hi].astype(work), [p - lo],
                                 [t for _, t in between], padding)
            for i, (j, _) in enumerate(between):
                out[j] = cast_like(synth[0, i], src.dtype)
        if progress is not None:
            progress(p + 1, n - 1)


def upsample_z(volume: Volume, factor: Optional[float] = None,
               target_spacing: Optional[float] = None, method: str = "linear",
               device: str = "auto", weights: Optional[str] = None,
               progress: Optional[ProgressFn] = None, cancel: Optional[CancelFn] = None,
               interpolator: Optional[Interpolator] = None,
               out: Optional[np.ndarray] = None, thickness: Optional[float] = None,
               plan: Optional[Plan] = None, pad_aware: bool = True,
               precision: str = "auto") -> Volume:
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
        _check_finite(volume.array)
    method = plan.method
    check_memory(volume, plan, streamed_out=out is not None)
    interp = interpolator or create_interpolator(method, device=device, weights=weights,
                                                 precision=precision)
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
    if positions is not None:
        _upsample_uneven(src, positions, plan, interp, out, padding, work, progress, cancel)
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
    result.metadata.pop("slice_thickness_mm", None)  # the output is a thin-slice volume
    result.metadata.pop("slice_positions_mm", None)  # and on a regular grid
    result.metadata.update(method=interp.name, factor=k, restored_known=restore,
                           padding=None if padding is None else padding.value,
                           runtime_warnings=(
        (intensity_warnings(src) if getattr(interp, "expects_hu", False) else []) +
        list(getattr(interp, "runtime_warnings", []))))
    return result
