"""What an upsampling will do, as one value: :class:`Plan` (factor, grids, the input's slice
thickness and where it came from) and the words it is told in (:meth:`Plan.describe`,
:func:`reach_warning`). :mod:`hrinet.methods.planning` resolves and validates a plan from a volume
or its header; :mod:`hrinet.methods.engine` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from hrinet.core.constants import CLASSICAL_METHODS, MEASURED_FACTOR, MEASURED_GAP_MM

#: Slab ratios (thickness / spacing) below this are treated as thin slices sampled apart.
MIN_SLAB_RATIO = 0.5


def _mm(value: float) -> str:
    """A thickness in mm to two decimals at most, one at least (``5.0``, ``4.8``, ``1.25``): the
    digits a user copies into ``--thickness`` give the same result."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


@dataclass(frozen=True)
class Plan:
    """What :func:`hrinet.methods.engine.upsample_z` will do, resolved and validated before any
    work starts."""

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
    #: Known slices at uneven gaps that lie on the output grid (the others are resampled);
    #: None on an even grid, where every known slice does.
    known_on_grid: Optional[int] = None
    #: The widest gap between known slices at uneven gaps (mm); None on an even grid.
    widest_gap_mm: Optional[float] = None

    def describe(self, restore_how: str = "give --thickness {t:.4g}") -> str:
        """The plan in one line. ``restore_how``: how the caller's user asks for slab
        restoration (``{t}`` is the thickness), named when DICOM says the slices are slabs."""
        text = self._describe(restore_how)
        off = self.input_slices - (self.known_on_grid or 0)
        if self.known_on_grid is not None and off:  # "kept as they are" holds for these only
            text += (f"; {off} of the {self.input_slices} known slices fall between the grid's "
                     "points (uneven gaps) and are resampled, not kept")
        return text

    def _describe(self, restore_how: str) -> str:
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
            return text + (f"; slice thickness estimated {_mm(self.thickness)} mm from the data "
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



def reach_warning(plan: Plan) -> str:
    """What a learned method's plan beyond what the models were measured on is told (a factor
    over :data:`MEASURED_FACTOR` or a gap over :data:`MEASURED_GAP_MM`); "" otherwise."""
    gap = plan.widest_gap_mm or plan.output_spacing[2] * plan.factor  # uneven: the widest
    factor = max(plan.factor, round(gap / plan.output_spacing[2]))
    if plan.method in CLASSICAL_METHODS or (factor <= MEASURED_FACTOR and
                                            gap <= MEASURED_GAP_MM):
        return ""
    return (f"x{factor} across {gap:.4g} mm gaps is beyond what the learned model was "
            f"measured on (x2 to x{MEASURED_FACTOR}, gaps up to {MEASURED_GAP_MM:g} mm: "
            "docs/results.md): its synthesised slices are less sure there; check them, or "
            "compare with --method linear")
