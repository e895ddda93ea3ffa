"""The module's self-test, run inside Slicer (Reload & Test, and the extension's ctest).

CTChest decimated along z and interpolated back by the job the panel runs (``hrinet
interpolate --progress jsonl`` in a PythonSlicer process, :class:`.jobs.InterpolationJob`,
waited for through the Logic), so what passes here is the panel's own path; the panel's
settings through a saved scene. The pytest suites in ``Testing/Python`` cover the same logic
against the PyPI MRML library; this is what only the real application can check.
"""

import importlib.util
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import slicer
import vtk
from hrinet.core.model_options import ModelOptions
from hrinet.evaluation.evaluate import decimate, synthesised_mask
from hrinet.evaluation.metrics import psnr
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from .mrml import node_from_volume, volume_from_node
from .panel_logic import HRINetSlicerLogic


class HRINetSlicerTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload & Test, and the extension's ctest): CTChest decimated along z
    and interpolated back. The classical paths run on the whole volume; the learned path on a
    crop (a few 256^2 slices) so that an extension build machine finishes in seconds, and is
    skipped, saying so, where PyTorch is not installed. Each interpolation is the panel's
    background job (PythonSlicer), so torch is never imported into Slicer's process."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_classical_interpolation_keeps_geometry_on_the_whole_CTChest()
        self.setUp()
        self.test_learned_interpolation_beats_linear_on_a_CTChest_crop()
        self.setUp()
        self.test_every_setting_survives_saving_and_loading_the_scene()

    def _chest(self):
        import SampleData  # Slicer's sample data module (downloads CTChest once)

        self.delayDisplay("Loading CTChest")
        return volume_from_node(SampleData.SampleDataLogic().downloadSample("CTChest"))

    def _score(self, truth, k, methods):
        """PSNR_HU of each method's synthesised slices; checks the known slices' RAS positions."""
        thick = node_from_volume(decimate(truth, k), "CTChest thick", slicer.mrmlScene)
        logic = HRINetSlicerLogic()
        scores = {}
        for method in methods:
            self.delayDisplay(f"Interpolating x{k} with {method}")
            out, _seconds = logic.interpolate(thick, ModelOptions(factor=k, method=method,
                                                                  device="cpu", precision="fp32"))
            self.assertEqual(out.GetAttribute("HRINet.method"), method)  # the job's record
            a = slicer.util.arrayFromVolume(out)
            mask = synthesised_mask(a.shape[0], k)
            scores[method] = psnr(a[mask], truth.array[:a.shape[0]][mask])
            m_in, m_out = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
            thick.GetIJKToRASMatrix(m_in)
            out.GetIJKToRASMatrix(m_out)
            for i in (0, thick.GetImageData().GetDimensions()[2] - 1):
                p_in = np.array(m_in.MultiplyPoint((0, 0, i, 1)))
                p_out = np.array(m_out.MultiplyPoint((0, 0, i * k, 1)))
                np.testing.assert_allclose(p_in, p_out, atol=1e-4)
        logging.info(f"CTChest x{k} PSNR_HU: {scores}")
        return scores

    def test_every_setting_survives_saving_and_loading_the_scene(self):
        """Settings made in the panel are written to a .mrb and come back, panel included."""
        slicer.util.selectModule("HRINetSlicer")
        widget = slicer.modules.HRINetSlicerWidget
        node = slicer.util.addVolumeFromArray(np.zeros((4, 8, 8), np.int16), name="thick")
        chosen = dict(inputVolume=node, targetMode="factor", factor=6, targetSpacing=0.7,
                      restoreSlabs=True, thickness=5.0, model="cubic", device="cpu",
                      precision="bf16", quality="high", trainVariant="hrinet-plus",
                      batchInputPath=Path(tempfile.gettempdir()) / "cohort",
                      batchOutputPath=Path(tempfile.gettempdir()) / "cohort-iso",
                      trainIterations=1234, trainCrop=192,
                      weightsPath=Path(tempfile.gettempdir()) / "w.safetensors",
                      exportPath=Path(tempfile.gettempdir()) / "iso.nrrd",
                      trainOutputPath=Path(tempfile.gettempdir()) / "runs")
        params = widget.logic.getParameterNode()
        for key, value in chosen.items():
            setattr(params, key, value)
        self.assertEqual(widget.ui.deviceComboBox.currentData, "cpu")  # a key, not its text
        self.assertEqual(widget.ui.precisionComboBox.currentData, "bf16")
        self.assertEqual(widget.ui.qualityComboBox.currentData, "high")
        self.assertFalse(widget.ui.qualityComboBox.enabled)  # cubic has no quality setting
        self.assertFalse(widget.ui.downloadButton.enabled)  # a classical method is selected
        self.assertEqual(widget.ui.factorSpinBox.value, 6)
        path = os.path.join(tempfile.mkdtemp(), "settings.mrb")
        self.assertTrue(slicer.util.saveScene(path))
        slicer.mrmlScene.Clear()
        self.assertNotEqual(widget.logic.getParameterNode().trainIterations, 1234)
        slicer.util.loadScene(path)
        widget.initializeParameterNode()
        params = widget.logic.getParameterNode()
        for key, value in chosen.items():
            got = getattr(params, key)
            if key == "inputVolume":
                self.assertEqual(got.GetName(), "thick")
            else:
                self.assertEqual(got, value, key)
        self.assertEqual(widget.ui.modelComboBox.currentData, "cubic")
        self.assertEqual(widget.ui.targetModeComboBox.currentData, "factor")
        self.assertEqual(widget.ui.iterationsSpinBox.value, 1234)
        self.delayDisplay("Settings round trip passed")

    def test_classical_interpolation_keeps_geometry_on_the_whole_CTChest(self):
        scores = self._score(self._chest(), 3, ("linear", "cubic"))
        self.assertGreater(scores["cubic"], 0)
        self.delayDisplay("Classical path passed")

    def test_learned_interpolation_beats_linear_on_a_CTChest_crop(self):
        if importlib.util.find_spec("torch") is None:  # the job imports it, never Slicer
            self.delayDisplay("Skipped the learned path: PyTorch is not installed (install it "
                              "with the PyTorch extension to run it)")
            return
        chest = self._chest()
        n, ny, nx = chest.array.shape
        y0, x0 = (ny - 256) // 2, (nx - 256) // 2
        crop = chest.with_array(chest.array[n // 2 - 6:n // 2 + 7, y0:y0 + 256,
                                            x0:x0 + 256].copy())
        scores = self._score(crop, 3, ("linear", "hrinet"))
        self.assertGreater(scores["hrinet"], scores["linear"])
        self.delayDisplay("Learned path passed")
