"""The plan of an upsampling, resolved and validated before any work starts: the integer
factor (from a factor or a target spacing), the input's slice thickness (given, DICOM, estimated
from the voxels, or assumed thin) and the output grid (regular, or one regular grid across
known slices at uneven gaps). :func:`make_plan` needs only header values, so that the Slicer
panel plans as the engine runs. :mod:`hrinet.methods.plan` is what a plan holds and says;
:mod:`hrinet.methods.engine` runs it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional

import numpy as np

from hrinet.core.constants import MAX_FACTOR
from hrinet.core.errors import HRINetError
from hrinet.core.geometry import ON_SLICE, uneven_grid, uneven_positions
from hrinet.core.slab_estimate import estimate_slab
from hrinet.core.volume import Volume, non_finite_counts
from hrinet.methods.plan import MIN_SLAB_RATIO, Plan, reach_warning

__all__ = ["Plan", "reach_warning", "check_factor", "resolve_factor", "resolve_thickness",
           "plan_upsampling", "make_plan", "check_slice_axis", "already_at_target",
           "already_at_words", "check_finite", "MAX_THICKNESS_MM", "MAX_SLAB_RATIO",
           "MIN_SLAB_RATIO"]

#: Thicker slabs than this many slice spacings (or than MAX_THICKNESS_MM) are refused.
MAX_SLAB_RATIO = 10.0
MAX_THICKNESS_MM = 50.0


def check_factor(factor, name: str = "factor") -> int:
    """``factor`` as the integer it is, refused (one line naming ``name``, e.g. ``--factor``)
    unless it is a whole number from 2 to :data:`MAX_FACTOR`: the one check of a given factor,
    which ``batch`` runs before any work and every plan runs again."""
    if isinstance(factor, bool) or not float(factor).is_integer():
        raise HRINetError(f"{name} {factor} is not a whole number; give an integer from 2 to "
                          f"{MAX_FACTOR}")
    k = int(factor)
    if k < 2:
        why = "leaves nothing to interpolate" if k == 1 else "is not positive"
        raise HRINetError(f"{name} {k} {why}; give an integer from 2 to {MAX_FACTOR}")
    if k > MAX_FACTOR:
        raise HRINetError(f"{name} {k} is above the largest factor, {MAX_FACTOR} (its output "
                          f"would hold {k} times the slices); give an integer from 2 to "
                          f"{MAX_FACTOR}")
    return k


def resolve_factor(spacing_z: float, in_plane: float, factor: Optional[float] = None,
                   target_spacing: Optional[float] = None) -> int:
    """The integer upsampling factor from an explicit factor or a target slice spacing.

    With neither given the target is isotropic: the finer in-plane spacing.
    """
    if factor is not None and target_spacing is not None:
        raise HRINetError("give either a factor or a target spacing, not both")
    if factor is not None:
        return check_factor(factor)
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
        what = "already close to isotropic" if ratio >= 1 else \
            "already finer along z than in-plane"  # thin (overlapping) slices, coarse pixels
        raise HRINetError(f"the volume is {what} (slice spacing "
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
    check_finite(volume.array)  # before the plan is shown or a model loaded
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


#: How much coarser than the slice axis, and than the other in-plane axis, an in-plane axis
#: must be for a volume to be taken as stored across its slices (a thick series whose coarse
#: axis is x or y: filling in along z would make it no better).
COARSE_IN_PLANE = 2.0


def check_slice_axis(spacing) -> None:
    """Refuse, in one line, a target spacing for a volume whose coarse axis lies in-plane
    (voxels such as 5 x 0.8 x 0.8 mm): hrinet fills in between slices along z, which such a
    volume does not need; it would be called "already isotropic". A factor given is done as
    asked (along z). Slices finer than both in-plane axes (1 x 1 x 0.4 mm, 5 x 5 x 1 mm) are
    no such volume: nothing is refused here, and the plan says there is nothing to do."""
    sx, sy, sz = (float(v) for v in spacing)
    coarse = max(sx, sy)
    if coarse > COARSE_IN_PLANE * sz and coarse > COARSE_IN_PLANE * min(sx, sy):
        raise HRINetError(
            f"this volume's coarse axis is {'x' if sx >= sy else 'y'} ({coarse:.3g} mm), not its "
            f"slice axis z ({sz:.3g} mm; voxels {sx:.3g} x {sy:.3g} x {sz:.3g} mm): hrinet fills "
            "in between slices along z; resample or reorient it so that its slices lie across "
            "the coarse axis, then interpolate")


def already_at_target(volume: Volume, target_spacing: Optional[float],
                      factor: Optional[float] = None) -> bool:
    """Whether ``volume`` is a thin series (slices at most 1.5 x the in-plane spacing apart)
    whose slices are already ``target_spacing`` mm apart or closer, so there is nothing to
    interpolate. A ``factor`` always asks for work (then False); a target coarser than a thick
    series stays an error of the plan (it is more likely a typing error than a wish)."""
    if factor is not None or target_spacing is None:
        return False
    check_slice_axis(volume.spacing)
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
    if factor is None:  # a target: the slice axis must be the one to make finer
        check_slice_axis(spacing)
    sx, sy, sz = spacing
    k = resolve_factor(sz, min(sx, sy), factor, target_spacing)
    t, source, ratio = resolve_thickness(sz, thickness, recorded_thickness)
    return Plan(factor=k, input_slices=slices, output_slices=(slices - 1) * k + 1,
                output_spacing=(sx, sy, sz / k), method=method, thickness=t,
                thickness_source=source, slab_ratio=ratio)


def check_finite(array: np.ndarray) -> None:
    """Refuse an input holding NaN or infinite voxels (counted as the writers count them)."""
    bad = sum(non_finite_counts(array))
    if bad:
        raise HRINetError(f"the volume holds {bad} NaN or infinite voxels; replace them "
                          "(for example with the background value) before interpolating")


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
    rel = (positions - positions[0]) / sz
    on_grid = int(np.sum(np.abs(rel - np.rint(rel)) <= ON_SLICE))
    return replace(plan, output_spacing=(sx, sy, sz),
                   output_slices=uneven_grid(positions, sz), known_on_grid=on_grid,
                   widest_gap_mm=float(np.max(np.diff(positions))))
