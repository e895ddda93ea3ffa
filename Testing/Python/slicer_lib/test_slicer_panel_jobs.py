"""The panel runs one interpolation at a time: while one runs, Interpolate stays off (a change
of the controls does not turn it on) and a second click starts nothing, so no job is orphaned
(its process running on, its copy of the patient's volume left in a temporary folder, its
result landing later, perhaps in another scene); Cancel ends every job the panel runs.

The widget's methods are driven here against the real MRML library (PyPI slicer-core) and real
``hrinet`` processes; the parts that exist only in the Slicer application (Qt's slicer wrapper,
the scripted-module base classes, the parameter-node wrapper, translations) are stand-ins that
hold what the widget sets and do nothing else."""

from __future__ import annotations

import glob
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pytest
import slicer  # the real MRML library from the PyPI package slicer-core (test extra)
import slicer.util

REPO = Path(__file__).resolve().parents[3]


class _Control:
    """A stand-in for a Qt control: keeps what is set on it, answers anything else."""

    def __getattr__(self, name):
        value = _Control()
        object.__setattr__(self, name, value)
        return value

    def __call__(self, *args, **kwargs):
        return _Control()


@pytest.fixture
def widget(monkeypatch, scene):
    qt = types.ModuleType("qt")
    qt.QTimer, qt.QApplication, qt.Qt = _Control, _Control(), _Control()
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr, i18n.translate = (lambda s: s), (lambda c, s: s)
    base = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                 "ScriptedLoadableModuleTest", "ScriptedLoadableModule"):
        setattr(base, name, type(name, (), {"__init__": lambda self, *a: None}))
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    for name, module in (("qt", qt), ("slicer.i18n", i18n),
                         ("slicer.ScriptedLoadableModule", base),
                         ("slicer.parameterNodeWrapper", wrapper)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(slicer.util, "VTKObservationMixin",
                        type("Mixin", (), {"__init__": lambda self: None}), raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer.util, "setSliceViewerLayers", lambda **k: None, raising=False)
    monkeypatch.syspath_prepend(str(REPO / "HRINetSlicer"))
    earlier = {m: sys.modules.pop(m) for m in list(sys.modules)
               if m.startswith("HRINetSlicerLib")}
    from hrinet import Volume
    from HRINetSlicerLib import widget as module
    from HRINetSlicerLib.mrml import node_from_volume

    monkeypatch.setattr(module, "ensure_dependencies_for", lambda options: True)
    array = (np.random.RandomState(0).rand(6, 20, 24) * 2000 - 1000).astype(np.int16)
    node = node_from_volume(Volume(array=array, spacing=(0.8, 0.8, 4.0)), "CT", scene)
    w = module.HRINetSlicerWidget.__new__(module.HRINetSlicerWidget)
    w.ui, w._interpolation, w._interpolationTimer, w._download = _Control(), None, None, None
    w._parameterNode = types.SimpleNamespace(
        inputVolume=node, targetMode="factor", factor=2, targetSpacing=1.0,
        restoreSlabs=False, thickness=0.0, model="linear", weightsPath=".", device="auto",
        precision="auto", quality="standard", showConfidence=False, outputVolume=None,
        exportPath=".")
    yield w
    for name in [m for m in sys.modules if m.startswith("HRINetSlicerLib")]:
        del sys.modules[name]  # made against the stand-ins: no other test may get them
    sys.modules.update(earlier)


def _temporary_folders() -> set:
    return set(glob.glob(str(Path(tempfile.gettempdir()) / "hrinet-interpolate-*")))


def test_a_second_interpolation_waits_for_the_first(widget, scene):
    before = _temporary_folders()
    widget.onInterpolate()
    first = widget._interpolation
    assert first is not None and widget.ui.interpolateButton.enabled is False
    widget._parameterNode.factor = 3
    widget.updatePlan()  # the user changes the factor while it runs
    assert widget.ui.interpolateButton.enabled is False
    widget.onInterpolate()  # and clicks again
    assert widget._interpolation is first
    while first.running():
        time.sleep(0.1)
    widget.onInterpolationTimer()
    names = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode").GetName()
             for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
    assert names == ["CT", "CT isotropic (interpolated x2, 5 of 11 slices synthesised)"]
    assert _temporary_folders() == before
    widget.updatePlan()
    assert widget.ui.interpolateButton.enabled is True  # free again


def test_cancel_ends_the_interpolation_even_while_a_download_runs(widget):
    widget.onInterpolate()
    job = widget._interpolation
    ended = []
    widget.cancelDownload = lambda: ended.append("download") or True
    widget.onCancel()
    assert ended == ["download"] and widget._interpolation is None and not job.running()
