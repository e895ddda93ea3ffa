"""MRML volume nodes to and from :class:`hrinet.Volume`: the module's only conversion.

No Qt here: the widget and the jobs call these functions, and the tests call them against the
real MRML library. Slicer works in RAS, ITK/NRRD files and ``hrinet`` in LPS; the conversion
flips the first two axes of the origin and of the direction matrix (``diag(-1, -1, 1)``), which
is its own inverse.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import slicer
import slicer.util
import vtk
from hrinet import Volume
from hrinet.core.io import check_dicom_output, write_derived_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_derived, read_provenance, write_volume
from hrinet.core.model_options import ModelOptions
from hrinet.core.io.provenance.record import (
    from_node_attributes,
    node_attributes,
    provenance_of,
    synthesised_name,
    with_input_name,
)
from hrinet.methods.planning import make_plan

LPS_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_from_ras(m: np.ndarray) -> np.ndarray:
    """Convert a 3-vector or 3x3 matrix between RAS and LPS (the same flip both ways)."""
    return LPS_RAS @ np.asarray(m, dtype=np.float64)


def _scene(scene=None):
    scene = scene if scene is not None else getattr(slicer, "mrmlScene", None)
    if scene is None:
        raise HRINetError("no MRML scene: pass scene= outside the Slicer application")
    return scene


def check_node(node) -> None:
    """Refuse, in one line naming the node, what cannot be interpolated: no volume, a label
    map, a vector or multi-component volume, no image data. Header checks only (no voxel
    copy), so the panel's plan says it before the button is clicked."""
    if node is None or not node.IsA("vtkMRMLScalarVolumeNode"):
        raise HRINetError("select a scalar volume (not a label map, vector or segmentation)")
    if node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise HRINetError(f"{node.GetName()} is a label map; interpolation needs an intensity "
                          "volume (resample label maps with nearest neighbour instead)")
    image = node.GetImageData()
    if image is None:
        raise HRINetError(f"{node.GetName()} has no image data")
    if image.GetNumberOfScalarComponents() != 1:
        raise HRINetError(f"{node.GetName()} has {image.GetNumberOfScalarComponents()} "
                          "components; convert it to a single-channel volume first")


def volume_from_node(node) -> Volume:
    """The node's voxels (a copy: the input is never touched) and geometry, in LPS."""
    check_node(node)
    spacing, origin_ras, direction_ras = world_geometry(node)
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)
    return Volume(array=array, spacing=spacing, origin=tuple(lps_from_ras(origin_ras)),
                  direction=lps_from_ras(direction_ras),
                  metadata={"source": node.GetName(), "warnings": []})


def world_geometry(node):
    """``(spacing, origin, direction)`` of the node's voxel grid in world (patient) space, RAS.

    A node under a linear transform (any parent transform, or a chain of them) is where the
    transform puts it: the transform is hardened into the geometry, as the Data module's
    "Harden transform" does, without changing the node. A non-linear transform (Slicer's
    acquisition transform of a tilted or unevenly spaced series, a warp) would need the volume
    resampled, and a transform that shears or scales unevenly makes the grid non-orthogonal:
    both are refused with one line saying what to do."""
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise HRINetError(
                f"{node.GetName()} is under the non-linear transform {parent.GetName()} (for "
                "example Slicer's acquisition transform of a tilted or unevenly spaced series); "
                "harden it first (Data module: right-click > Harden transform), or load the "
                "series with Slicer's acquisition geometry regularisation on")
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        vtk.vtkMatrix4x4.Multiply4x4(to_world, m, m)
    a = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    direction = a[:3, :3] / np.where(spacing > 0, spacing, 1)
    if not np.all(spacing > 0) or \
            not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise HRINetError(
            f"{node.GetName()} is under a transform that shears or scales it unevenly, so its "
            "voxels are no longer a rectangular grid; harden the transform first (Data module: "
            "right-click > Harden transform) or remove it")
    return tuple(float(s) for s in spacing), tuple(float(o) for o in a[:3, 3]), direction


def transform_words(node) -> str:
    """What the module does with the node's parent transform, for the panel ("" when none):
    a linear one is hardened into the result, which appears where the input appears."""
    parent = node.GetParentTransformNode() if node is not None else None
    if parent is None:
        return ""
    world_geometry(node)  # a transform it cannot harden raises its one line here
    return (f"{node.GetName()} is under the linear transform {parent.GetName()}: it is "
            "hardened into the result, which lies in patient space where the input appears "
            "(the input keeps its transform)")


def input_words(node) -> str:
    """The panel's line for the input: ``"512 x 512 x 40, 0.703 x 0.703 x 5 mm"``, the spacing
    in world space as the plan and the result see it (a linear parent transform may scale it);
    the node's own spacing when its transform cannot be hardened (the plan says why)."""
    dims = node.GetImageData().GetDimensions()
    try:
        sp = world_geometry(node)[0]
    except HRINetError:
        sp = node.GetSpacing()
    return f"{dims[0]} x {dims[1]} x {dims[2]}, {sp[0]:.3g} x {sp[1]:.3g} x {sp[2]:.3g} mm"


#: The attribute naming the node an interpolated node was made from (for its DICOM export).
SOURCE_NODE_ATTRIBUTE = "HRINet.sourceNodeID"


def node_from_volume(volume: Volume, name: str, scene=None, source_node=None):
    """A new scalar volume node holding ``volume`` (converted back to RAS) in ``scene``.

    An interpolation result (its provenance in its metadata, or in the file it was read from)
    makes a node that says so: the record as ``HRINet.*`` attributes and a name that says how
    many slices are synthesised. ``source_node``: the node it was made from, recorded as the
    input's name and as :data:`SOURCE_NODE_ATTRIBUTE`."""
    scene = _scene(scene)
    rec = provenance_of(volume) or read_provenance(volume.metadata.get("source"))
    if rec and source_node is not None:
        rec = with_input_name(rec, source_node.GetName())
        if not rec.get("input_series_uid"):  # the job's file had none: the node's, from DICOM
            rec["input_series_uid"] = dicom_value(source_node, "0020,000E") or ""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode",
                                   scene.GenerateUniqueName(synthesised_name(name, rec)))
    for key, value in node_attributes(rec).items():
        node.SetAttribute(key, value)
    if rec and source_node is not None:
        node.SetAttribute(SOURCE_NODE_ATTRIBUTE, source_node.GetID())
    node.SetSpacing(*volume.spacing)
    node.SetOrigin(*lps_from_ras(volume.origin))
    d = lps_from_ras(volume.direction)
    m = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            m.SetElement(r, c, d[r, c])
    node.SetIJKToRASDirectionMatrix(m)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array))
    node.CreateDefaultDisplayNodes()
    return node


def dicom_files(node) -> list:
    """The files of a node loaded through Slicer's DICOM module, from its database (one per
    instance, in the node's order); empty for other nodes or outside the application."""
    uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split() if node is not None else []
    database = getattr(slicer, "dicomDatabase", None)
    return [database.fileForInstance(uid) for uid in uids] if database is not None else []


def dicom_value(node, tag: str) -> Optional[str]:
    """A tag (``"gggg,eeee"``) of the first instance of a node loaded through Slicer's DICOM
    module, from its database; None for other nodes or outside the application."""
    uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split() if node is not None else []
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        return None
    try:
        return str(database.instanceValue(uids[0], tag)).strip() or None
    except (TypeError, AttributeError):
        return None


def dicom_thickness(node) -> Optional[float]:
    """The DICOM Slice Thickness (mm) of a node loaded through Slicer's DICOM module, from its
    database; None for other nodes, outside the application, or a missing or odd value."""
    try:
        value = float(dicom_value(node, "0018,0050"))
    except (ValueError, TypeError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def plan_for_node(node, options: ModelOptions = ModelOptions()):
    """The engine's :class:`hrinet.Plan` for ``options`` (target, method, thickness) from the
    node's header alone (no voxel copy), so the panel can show it on every change of the
    controls."""
    check_node(node)
    nz = node.GetImageData().GetDimensions()[2]
    spacing = world_geometry(node)[0]  # a linear parent transform may scale it
    return make_plan(nz, spacing, options.factor, options.spacing, options.resolved_method,
                     options.thickness, dicom_thickness(node))


def interpolate_node(input_node, *args, **kwargs):
    """:func:`HRINetSlicerLib.jobs.interpolate_node`: the panel's background job, waited for
    (the module has no in-process interpolation). Here for callers of the MRML layer."""
    from .jobs import interpolate_node as run_job  # jobs imports this module

    return run_job(input_node, *args, **kwargs)


def copy_window_level(source, target) -> None:
    """Show ``target`` with ``source``'s window/level, so that a result looks like its input."""
    src, dst = source.GetDisplayNode(), target.GetDisplayNode()
    if src is not None and dst is not None:
        dst.SetAutoWindowLevel(False)
        dst.SetWindowLevel(src.GetWindow(), src.GetLevel())


def volume_with_provenance(node) -> Volume:
    """:func:`volume_from_node` with its provenance: the node's ``HRINet.*`` attributes, or for
    a derived series loaded through Slicer's DICOM module (which keeps no such attributes) the
    record its files hold, so that its synthesised slices are never taken for acquired ones."""
    volume = volume_from_node(node)
    rec = from_node_attributes({k: node.GetAttribute(k) or "" for k in node.GetAttributeNames()})
    files = [] if rec else dicom_files(node)
    if files and files[0] and Path(files[0]).is_file():  # a derived series hrinet wrote, loaded
        # through Slicer's DICOM module
        rec = read_derived(files[0])
    if rec:
        volume.metadata["provenance"] = rec
    return volume


def export_nrrd(node, path, overwrite: bool = False, what: str = "") -> Path:
    """Save ``node`` as compressed NRRD, atomically (what ``hrinet.core.io`` reads back
    exactly), with its provenance when it is an interpolation result; ``what`` names it in
    error messages (default the path)."""
    return write_volume(volume_with_provenance(node), path, overwrite=overwrite, compress=True,
                        what=what)


def export_derived_dicom(node, folder, overwrite: bool = False) -> Path:
    """Save an interpolated ``node`` as a derived DICOM series in ``folder``
    (:mod:`hrinet.core.dicom_export`): the node it was made from must have been loaded
    through Slicer's DICOM module, whose files give the patient, study and source instances."""
    rec = from_node_attributes({k: node.GetAttribute(k) or "" for k in node.GetAttributeNames()}) \
        if node is not None else None
    if not rec:
        raise HRINetError("select a volume this module interpolated: a derived series "
                          "describes an interpolation")
    source_id = node.GetAttribute(SOURCE_NODE_ATTRIBUTE) or ""
    source = node.GetScene().GetNodeByID(source_id) if source_id else None
    if source_id and source is None:
        raise HRINetError(f"the volume {node.GetName()} was made from is no longer in the scene, "
                          "so there is no patient or study to copy; load that series again, "
                          "interpolate it again and export the new result (or export NRRD)")
    files = dicom_files(source) if source else []
    if not files or not all(files):
        raise HRINetError("the input volume was not loaded through Slicer's DICOM module, so "
                          "there is no patient or study to copy; export NRRD instead")
    # The series the result records (set from the input's DICOM when it was made) must be the
    # one its source node holds now: an ID reused after a scene reload, or a result made from
    # a file whose node ID now names a DICOM series, would take another patient's identity.
    made_from = rec.get("input_series_uid") or ""
    found = dicom_value(source, "0020,000E") or ""
    if made_from != found:
        raise HRINetError(f"{source.GetName()} is not the series {node.GetName()} was made from "
                          f"(series {made_from or 'none: it was made from a file'}, not "
                          f"{found or 'unknown'}); interpolate that series again and export the "
                          "new result (or export NRRD)")
    out = check_dicom_output(folder, files, overwrite=overwrite)
    return write_derived_series(volume_with_provenance(node), files, out, overwrite=overwrite)
