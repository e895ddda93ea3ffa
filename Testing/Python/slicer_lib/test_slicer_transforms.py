"""A volume node under a transform in Slicer (issue 41 item 7), against the real MRML library
(PyPI slicer-core): a linear transform is hardened into the result, which lands in patient space
where the input appears; a non-linear one is refused with one line."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import slicer  # the real MRML library from the PyPI package slicer-core (test extra)
import vtk
from helpers import ijk_to_ras

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "HRINetSlicer"))

from hrinet.core.errors import HRINetError  # noqa: E402
from hrinet.core.model_options import ModelOptions  # noqa: E402
from HRINetSlicerLib.jobs import interpolate_node  # noqa: E402
from HRINetSlicerLib.mrml import (  # noqa: E402
    input_words,
    plan_for_node,
    transform_words,
    volume_from_node,
)


def _linear_transform(scene, name="scanner to patient"):
    """A rigid transform: 25 degrees about the RAS axis (1, 1, 0)/sqrt(2), then a shift."""
    t = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    xf = vtk.vtkTransform()
    xf.Translate(12.5, -30.0, 7.25)
    xf.RotateWXYZ(25.0, 1.0, 1.0, 0.0)
    t.SetMatrixTransformToParent(xf.GetMatrix())
    return t


def _matrix(transform_node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def _nonlinear_transform(scene):
    """A thin-plate-spline warp: not linear, as Slicer's acquisition transforms are not."""
    t = scene.AddNewNodeByClass("vtkMRMLTransformNode", "acquisition")
    tps = vtk.vtkThinPlateSplineTransform()
    src, dst = vtk.vtkPoints(), vtk.vtkPoints()
    for p in [(0, 0, 0), (100, 0, 0), (0, 100, 0), (0, 0, 100), (50, 50, 50)]:
        src.InsertNextPoint(p)
        dst.InsertNextPoint(p[0] + 3.0 * (p[2] > 0), p[1], p[2])
    tps.SetSourceLandmarks(src)
    tps.SetTargetLandmarks(dst)
    tps.SetBasisToR()
    t.SetAndObserveTransformToParent(tps)
    return t


def test_a_node_under_a_linear_transform_gives_a_result_where_the_input_appears(scene,
                                                                                  thick_node):
    transform = _linear_transform(scene)
    thick_node.SetAndObserveTransformNodeID(transform.GetID())
    before = ijk_to_ras(thick_node)
    out, _ = interpolate_node(thick_node, ModelOptions(factor=2, method="linear"), scene=scene)
    # the input is untouched: still under its transform, its own geometry unchanged
    assert thick_node.GetParentTransformNode() is transform
    np.testing.assert_array_equal(ijk_to_ras(thick_node), before)
    # the result is in patient space: no transform, its grid the transformed input's grid
    assert out.GetParentTransformNode() is None
    world_in = _matrix(transform) @ before
    expected = world_in.copy()
    expected[:3, 2] /= 2  # slices twice as close, along the same (transformed) direction
    np.testing.assert_allclose(ijk_to_ras(out), expected, atol=1e-6)
    # every acquired slice lies, with its voxels unchanged, where it appears in the scene
    a_in, a_out = slicer.util.arrayFromVolume(thick_node), slicer.util.arrayFromVolume(out)
    for k in range(a_in.shape[0]):
        np.testing.assert_array_equal(a_out[2 * k], a_in[k])
        corner = world_in @ np.array([3.0, 4.0, k, 1.0])
        np.testing.assert_allclose(ijk_to_ras(out) @ np.array([3.0, 4.0, 2 * k, 1.0]), corner,
                                   atol=1e-6)


def test_a_chain_of_linear_transforms_is_hardened_whole(scene, thick_node):
    outer = _linear_transform(scene, "outer")
    inner = _linear_transform(scene, "inner")
    inner.SetAndObserveTransformNodeID(outer.GetID())
    thick_node.SetAndObserveTransformNodeID(inner.GetID())
    volume = volume_from_node(thick_node)
    world = _matrix(inner) @ ijk_to_ras(thick_node)
    ras_origin = np.diag([-1.0, -1.0, 1.0]) @ np.asarray(volume.origin)
    np.testing.assert_allclose(ras_origin, world[:3, 3], atol=1e-6)
    np.testing.assert_allclose(volume.spacing, (2.0, 2.5, 5.0), atol=1e-9)


def test_the_panel_says_a_linear_transform_is_hardened(scene, thick_node):
    assert transform_words(thick_node) == ""
    thick_node.SetAndObserveTransformNodeID(_linear_transform(scene).GetID())
    words = transform_words(thick_node)
    assert "linear transform scanner to patient" in words and "hardened" in words
    assert "patient space" in words
    assert plan_for_node(thick_node, ModelOptions(factor=2, method="linear")).factor == 2


def test_a_non_linear_transform_is_refused_with_one_line(scene, thick_node):
    thick_node.SetAndObserveTransformNodeID(_nonlinear_transform(scene).GetID())
    for call in (lambda: plan_for_node(thick_node, ModelOptions(factor=2, method="linear")),
                 lambda: transform_words(thick_node),
                 lambda: interpolate_node(thick_node, ModelOptions(factor=2, method="linear"),
                                          scene=scene)):
        with pytest.raises(HRINetError) as e:
            call()
        message = str(e.value)
        assert "\n" not in message and "non-linear transform acquisition" in message
        assert "Harden transform" in message


def test_a_transform_that_shears_is_refused_with_one_line(scene, thick_node):
    t = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shear")
    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 1, 0.4)
    t.SetMatrixTransformToParent(m)
    thick_node.SetAndObserveTransformNodeID(t.GetID())
    with pytest.raises(HRINetError, match="shears or scales"):
        volume_from_node(thick_node)


def test_the_panel_shows_the_spacing_the_plan_uses_under_a_scaling_transform(scene, thick_node):
    t = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "mm to cm mistake")
    xf = vtk.vtkTransform()
    xf.Scale(2.0, 2.0, 2.0)  # uniform: hardened, the voxels twice as large in the scene
    t.SetMatrixTransformToParent(xf.GetMatrix())
    own = thick_node.GetSpacing()
    thick_node.SetAndObserveTransformNodeID(t.GetID())
    words = input_words(thick_node)
    assert words.endswith(f"{2 * own[0]:.3g} x {2 * own[1]:.3g} x {2 * own[2]:.3g} mm"), words
    assert plan_for_node(thick_node, ModelOptions(factor=2)).output_spacing[2] == \
        pytest.approx(own[2])  # 2 x the slice spacing, halved
    thick_node.SetAndObserveTransformNodeID(_nonlinear_transform(scene).GetID())
    assert input_words(thick_node).endswith(f"{own[2]:.3g} mm")  # its own; the plan says why
