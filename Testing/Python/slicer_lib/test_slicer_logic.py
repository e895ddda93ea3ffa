"""The Slicer module's MRML conversion and panel logic against the real MRML library (PyPI
slicer-core), no mocks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import slicer  # the real MRML library from the PyPI package slicer-core (test extra)
from helpers import ijk_to_ras  # noqa: F401

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "HRINetSlicer"))

from hrinet.core.errors import Cancelled, HRINetError  # noqa: E402
from hrinet.core.io import read_volume  # noqa: E402
from hrinet.core.model_options import ModelOptions  # noqa: E402
from HRINetSlicerLib.jobs import interpolate_node  # noqa: E402
from HRINetSlicerLib.mrml import (  # noqa: E402
    export_nrrd,
    node_from_volume,
    plan_for_node,
    volume_from_node,
)


def test_node_to_volume_to_node_keeps_ijk_to_ras_and_voxels(scene, thick_node):
    vol = volume_from_node(thick_node)
    again = node_from_volume(vol, "again", scene)
    np.testing.assert_allclose(ijk_to_ras(again), ijk_to_ras(thick_node), atol=1e-9)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(again),
                                  slicer.util.arrayFromVolume(thick_node))


def test_volume_geometry_is_lps_like_itk(thick_node, oblique_phantom):
    """Voxel (i, j, k) is at the same physical point in Slicer (RAS) and in hrinet (LPS)."""
    vol = volume_from_node(thick_node)
    ras = ijk_to_ras(thick_node) @ np.array([3, 4, 5, 1.0])
    lps = vol.index_to_physical((3, 4, 5))
    np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-9)
    np.testing.assert_allclose(lps, oblique_phantom.index_to_physical((3, 4, 5)), atol=1e-9)


def test_interpolate_creates_a_new_node_and_keeps_known_slices_in_place(scene, thick_node):
    before = slicer.util.arrayFromVolume(thick_node).copy()
    before_matrix = ijk_to_ras(thick_node)
    nodes_before = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    out, seconds = interpolate_node(thick_node, ModelOptions(factor=3, method="linear"))
    assert out.GetName().startswith("thick isotropic (") and out is not thick_node
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == nodes_before + 1
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(thick_node), before)
    np.testing.assert_array_equal(ijk_to_ras(thick_node), before_matrix)
    a = slicer.util.arrayFromVolume(out)
    np.testing.assert_array_equal(a[::3], before)
    m_in, m_out = ijk_to_ras(thick_node), ijk_to_ras(out)
    for k in range(before.shape[0]):
        np.testing.assert_allclose(m_out @ [7, 2, 3 * k, 1], m_in @ [7, 2, k, 1], atol=1e-9)
    assert out.GetDisplayNode() is not None and seconds >= 0


def test_cancel_leaves_the_scene_unchanged(scene, thick_node):
    n = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    with pytest.raises(Cancelled):
        interpolate_node(thick_node, ModelOptions(factor=2, method="cubic"), cancel=lambda: True)
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n


def test_label_maps_are_refused(scene):
    lab = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "seg")
    slicer.util.updateVolumeFromArray(lab, np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(HRINetError, match="label map"):
        volume_from_node(lab)


def test_the_plan_refuses_what_the_button_would_before_it_is_clicked(scene):
    lab = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "seg")
    slicer.util.updateVolumeFromArray(lab, np.zeros((3, 4, 4), np.uint8))
    vec = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb")
    slicer.util.updateVolumeFromArray(vec, np.zeros((3, 4, 4, 3), np.uint8))
    for node, words in ((lab, "seg is a label map"), (vec, "rgb has 3 components")):
        with pytest.raises(HRINetError, match=words):
            plan_for_node(node, ModelOptions(factor=2, method="linear"))


def test_export_writes_nrrd_that_hrinet_and_slicer_read_back_identically(tmp_path, scene,
                                                                       thick_node):
    out, _ = interpolate_node(thick_node, ModelOptions(factor=2, method="linear"))
    path = export_nrrd(out, tmp_path / "iso.nrrd")
    back = read_volume(path)
    vol = volume_from_node(out)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.spacing, vol.spacing, rtol=1e-6)
    np.testing.assert_allclose(back.origin, vol.origin, atol=1e-5)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-6)
    # Slicer's own NRRD reader places the file exactly where the node was.
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    loaded = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "loaded")
    assert storage.ReadData(loaded)
    np.testing.assert_allclose(ijk_to_ras(loaded), ijk_to_ras(out), atol=1e-5)
    with pytest.raises(HRINetError, match="exists"):
        export_nrrd(out, path)


def test_a_node_under_a_transform_is_refused_until_hardened(scene, thick_node):
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "t")
    shear = transform.GetMatrixTransformToParent()  # a rigid one is hardened on the fly
    shear.SetElement(0, 1, 0.4)  # (test_slicer_transforms.py); a shear cannot be
    transform.SetMatrixTransformToParent(shear)
    thick_node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(HRINetError, match="harden the transform"):
        volume_from_node(thick_node)


def test_the_panel_plan_from_the_header_matches_the_engine(thick_node):
    from hrinet.methods.planning import plan_upsampling

    vol = volume_from_node(thick_node)
    for kw in ({}, {"factor": 3}, {"spacing": 1.25}):
        options = ModelOptions(method="linear", **kw)
        assert plan_for_node(thick_node, options) == plan_upsampling(
            vol, options.factor, options.spacing, method="linear")
    with pytest.raises(HRINetError, match="not finer"):
        plan_for_node(thick_node, ModelOptions(spacing=50))


def test_dependencies_are_asked_for_per_need_from_the_requirements_file():
    from HRINetSlicerLib.requirements import missing_requirements, requirements_for

    assert requirements_for("classical") == []  # linear and cubic: nothing beyond Slicer
    assert requirements_for("flow") == ["opencv-python-headless>=4.8"]
    learned = requirements_for("learned")
    assert set(requirements_for("flow")) < set(learned) and "safetensors>=0.4" in learned
    declared = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    for req in learned:  # the same pins as the library declares
        assert f'"{req}"' in declared, req
    assert missing_requirements(learned) == []  # all installed in the test environment
    assert missing_requirements(["surely-not-installed-pkg>=1"]) == ["surely-not-installed-pkg>=1"]


def test_each_method_asks_for_what_it_needs_and_a_new_classical_one_must_say():
    from hrinet.core.constants import CLASSICAL_METHODS
    from hrinet.core.variants import VARIANTS
    from HRINetSlicerLib.requirements import CLASSICAL_NEEDS, need_of

    assert set(CLASSICAL_NEEDS) == set(CLASSICAL_METHODS)  # every classical method declared
    assert [need_of(m) for m in ("linear", "cubic", "flow")] == ["classical", "classical", "flow"]
    for method in ("hrinet",) + tuple(VARIANTS):  # every model needs PyTorch and the rest
        assert need_of(method) == "learned", method


def _panel_fields() -> dict:
    import ast

    tree = ast.parse((REPO / "HRINetSlicer" / "HRINetSlicerLib" / "parameters.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef)
               and n.name == "HRINetSlicerParameterNode")
    return {a.target.id: ast.unparse(a.annotation) for a in cls.body if isinstance(a, ast.AnnAssign)}


def test_every_panel_setting_comes_back_from_a_saved_scene(tmp_path, scene, thick_node):
    """The parameter node's fields, stored as Slicer's parameterNodeWrapper stores them (values
    as strings, volumes as node references), survive writing the scene and reading it back."""
    fields = _panel_fields()
    assert len(fields) >= 14  # every setting of every section, not only the interpolation ones
    values = {"str": "cubic", "int": "1234", "float": "0.75", "Path": str(tmp_path / "w.nrrd"),
              "bool": "True"}
    params = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    params.SetName("HRINetSlicer")
    for name, kind in fields.items():
        if kind.startswith("vtkMRML"):
            params.SetNodeReferenceID(name, thick_node.GetID())
        else:
            params.SetParameter(name, values[kind] + name)  # distinct per field
    scene.SetURL(str(tmp_path / "settings.mrml"))
    assert scene.Commit()
    again = slicer.vtkMRMLScene()
    again.SetURL(str(tmp_path / "settings.mrml"))
    assert again.Connect()
    back = again.GetFirstNodeByName("HRINetSlicer")
    for name, kind in fields.items():
        if kind.startswith("vtkMRML"):
            assert back.GetNodeReference(name).GetName() == "thick", name
        else:
            assert back.GetParameter(name) == values[kind] + name, name


def test_the_acquired_slices_are_kept_unless_the_slab_checkbox_asks_to_restore_them(thick_node):
    from hrinet.methods.planning import make_plan
    from HRINetSlicerLib.mrml import dicom_thickness
    from HRINetSlicerLib.targets import (
        RESTORE_HOW,
        default_slab_thickness,
        interpolation_target,
    )

    kept = interpolation_target("factor", 3, 1.0, restore_slabs=False, thickness=5.0)
    assert kept == {"thickness": None, "factor": 3}
    assert plan_for_node(thick_node, ModelOptions(method="hrinet", **kept)).slab_ratio == 0
    from HRINetSlicerLib.batch_job import BatchJob

    command = BatchJob("in", "out", ModelOptions(method="hrinet", **kept)).command()
    assert command[command.index("--thickness") + 1] == "0"  # a folder keeps them too
    restored = interpolation_target("factor", 3, 1.0, restore_slabs=True, thickness=5.0)
    assert plan_for_node(thick_node, ModelOptions(method="hrinet", **restored)).slab_ratio > 0
    assert interpolation_target("spacing", 3, 0.7, False, 0.0)["spacing"] == 0.7
    # a node that did not come through Slicer's DICOM database: the checkbox starts from the
    # slice spacing (contiguous slabs)
    assert dicom_thickness(thick_node) is None
    assert default_slab_thickness(thick_node) == thick_node.GetSpacing()[2]
    # with a DICOM thickness, the plan line names the checkbox, not a command-line option
    plan = make_plan(20, (0.7, 0.7, 5.0), 5, None, "hrinet", None, 5.0)
    line = plan.describe(restore_how=RESTORE_HOW)
    assert "check 'Restore the acquired slices' (5 mm)" in line and "--thickness" not in line
