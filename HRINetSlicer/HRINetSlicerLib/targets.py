"""What the panel's settings ask of the engine: the target (factor, spacing or isotropic) and
whether the acquired slices are restored as slabs. Qt-free, so it is tested outside Slicer."""

from __future__ import annotations

from typing import Optional

from .mrml import dicom_thickness

#: How the panel's user asks for slab restoration, in the plan line (``{t}``: the thickness).
RESTORE_HOW = "check 'Restore the acquired slices' ({t:.4g} mm)"


def interpolation_target(mode: str, factor: int, target_spacing: float, restore_slabs: bool,
                         thickness: float) -> dict:
    """The target fields of the job's :class:`~hrinet.core.model_options.ModelOptions`
    (``factor``, ``spacing``, ``thickness``) for the panel's settings.

    The acquired slices are kept unless ``restore_slabs``: the thickness is then passed (and
    the learned model restores the known positions as slab averages); otherwise it is left to
    the header, which keeps them.
    """
    target: dict = {"thickness": float(thickness) if restore_slabs else None}
    if mode == "factor":
        target["factor"] = int(factor)
    if mode == "spacing":
        target["spacing"] = float(target_spacing)
    return target


def default_slab_thickness(node) -> Optional[float]:
    """The thickness the checkbox starts from: DICOM Slice Thickness where Slicer's DICOM
    database knows it, else the slice spacing (contiguous slabs, the common reconstruction)."""
    if node is None:
        return None
    return dicom_thickness(node) or float(node.GetSpacing()[2])
