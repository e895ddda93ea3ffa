"""HRINetSlicer: make thick-slice CT isotropic with a learned slice interpolator (3D Slicer).

A thin scripted module: the widget collects choices and shows progress; the Qt-free logic in
``HRINetSlicerLib`` converts MRML nodes to and from the ``hrinet`` library, which does the work.
"""

import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

MODULE_DIR = Path(__file__).resolve().parent


def _add_library_path() -> None:
    """Find the bundled ``hrinet`` package (extension build) or the source tree's copy."""
    for candidate in (MODULE_DIR / "HRINetLib", MODULE_DIR.parent / "HRINetLib"):
        if (candidate / "hrinet" / "__init__.py").is_file() and str(candidate) not in sys.path:
            sys.path.insert(0, str(candidate))
            return


_add_library_path()


def ensure_dependencies(need: str = "learned") -> bool:
    """Ask once for what a feature needs: nothing for linear and cubic, OpenCV for flow, PyTorch
    (through the PyTorch extension) and ``Resources/requirements.txt`` for learned models.

    Returns True when everything is there. Nothing is installed without the user's OK.
    """
    from HRINetSlicerLib.logic import missing_requirements, requirements_for

    if need == "learned":
        try:
            import torch  # noqa: F401
        except ImportError:
            try:
                import PyTorchUtils
            except ImportError:
                slicer.util.errorDisplay(_(
                    "HRINet needs PyTorch. Install the 'PyTorch' extension from the Extensions "
                    "Manager, restart Slicer, and try again."))
                return False
            if not slicer.util.confirmOkCancelDisplay(_(
                    "HRINet needs PyTorch, which is not installed yet. Install it now through the "
                    "PyTorch extension? This downloads several hundred MB and can take minutes.")):
                return False
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=False, torchVersionRequirement=">=2.1")
            if torch is None:
                slicer.util.errorDisplay(_("PyTorch could not be installed; see the Python console."))
                return False
    missing = missing_requirements(requirements_for(need))
    if not missing:
        return True
    pip_ensure = getattr(getattr(slicer, "packaging", None), "pip_ensure", None) or \
        getattr(slicer.util, "pip_ensure", None)
    if pip_ensure is not None:  # current Slicer: its own dialog, progress and restart advice
        from packaging.requirements import Requirement

        pip_ensure([Requirement(r) for r in missing], requester="HRINetSlicer")
        return not missing_requirements(missing)
    if not slicer.util.confirmOkCancelDisplay(
            _("HRINet needs these Python packages: {names}. Install them now?").format(
                names=", ".join(missing))):
        return False
    with slicer.util.WaitCursor():
        slicer.util.pip_install(" ".join(missing))  # older Slicer
    return not missing_requirements(missing)


class userErrors:
    """Context manager: a library error shows its one line; anything else shows a short
    message with the details in the Python console, never a traceback in the dialog."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        return self

    def __exit__(self, exc_type, exc, tb):
        qt.QApplication.restoreOverrideCursor()
        if exc is None:
            return False
        from hrinet.core.errors import Cancelled, HRINetError

        if isinstance(exc, Cancelled):
            return True
        if isinstance(exc, HRINetError):
            slicer.util.errorDisplay(f"{self.what} {exc}")
        else:
            logging.exception(self.what)
            slicer.util.errorDisplay(_("{what} Unexpected error: {err} (details in the Python "
                                       "console)").format(what=self.what, err=exc))
        return True


class HRINetSlicer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("HRINet Slice Interpolation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["HRINetSlicer developers"]
        self.parent.helpText = _(
            "Turns thick-slice CT into an isotropic volume by synthesising the missing slices "
            "with HRINet (Li, Koh, Lee). Choose the input, the target spacing and click "
            "'Interpolate volume'; a new volume is created and the input is left untouched.")
        self.parent.acknowledgementText = _(
            "Method: Li, Koh, Lee, 'HRINet: alternative supervision network for high-resolution "
            "CT image interpolation'.")


@parameterNodeWrapper
class HRINetSlicerParameterNode:
    """Every setting of the panel, saved with the scene and restored with it.

    Widgets with a ``SlicerParameterName`` in the .ui are bound by ``connectGui``; the combo
    boxes in :data:`KEYED_COMBOS` hold a key (their items' data), never their translated text.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    targetMode: str = "isotropic"
    targetSpacing: float = 1.0
    factor: int = 4
    thickness: float = 0.0
    model: str = "hrinet"
    weightsPath: Path = Path()
    device: str = "auto"
    exportPath: Path = Path()
    trainVariant: str = "hrinet-flow"
    trainIterations: int = 500
    trainCrop: int = 128
    trainOutputPath: Path = Path()


#: Combo boxes bound to a parameter through their items' data (key), not their text.
KEYED_COMBOS = {"targetModeComboBox": "targetMode", "modelComboBox": "model",
                "deviceComboBox": "device", "variantComboBox": "trainVariant"}
#: Keys of the items the .ui defines, in its order.
TARGET_MODES = ("isotropic", "spacing", "factor")
DEVICES = ("auto", "cuda", "cpu")


def _is_unset(path) -> bool:
    return path is None or str(path) in ("", ".")


class HRINetSlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: Interpolate, Export isotropic NRRD, Fine-tune on loaded cases."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._interpolation = None  # the running InterpolationJob
        self._interpolationTimer = None
        self._interpolationStart = 0.0
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/HRINetSlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = HRINetSlicerLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.refreshTrainList)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeRemovedEvent, self.refreshTrainList)

        self._addModelItems()
        self.ui.modelComboBox.addItem(_("Optical-flow morphing (classical)"), "flow")
        self.ui.modelComboBox.addItem(_("Cubic B-spline (classical)"), "cubic")
        self.ui.modelComboBox.addItem(_("Linear (classical)"), "linear")
        self.ui.modelComboBox.addItem(_("Weights file..."), "file")
        for name in HRINetSlicerLogic.variants():
            self.ui.variantComboBox.addItem(name, name)
        for combo, keys in ((self.ui.targetModeComboBox, TARGET_MODES),
                            (self.ui.deviceComboBox, DEVICES)):
            for i, key in enumerate(keys):
                combo.setItemData(i, key)
        for widgetName, parameter in KEYED_COMBOS.items():
            getattr(self.ui, widgetName).currentIndexChanged.connect(
                lambda _i, w=widgetName, p=parameter: self._comboToParameter(w, p))
        self.ui.detectedDeviceLabel.text = HRINetSlicerLogic.detectedDevice()

        self.ui.interpolateButton.clicked.connect(self.onInterpolate)
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.exportButton.clicked.connect(self.onExport)
        self.ui.startTrainingButton.clicked.connect(lambda: self.onStartTraining(resume=False))
        self.ui.resumeTrainingButton.clicked.connect(lambda: self.onStartTraining(resume=True))
        self.ui.stopTrainingButton.clicked.connect(self.onStopTraining)
        self.ui.adaptButton.clicked.connect(self.onAdapt)

        self.initializeParameterNode()
        self.refreshTrainList()
        self.updatePlan()

    def _addModelItems(self) -> None:
        """The shipped default, then ours and the paper's variants under headings, each with its
        measured quality (the sidecar's x4 evaluation) as the tooltip."""
        from hrinet.core.shipped import (
            GROUP_DEFAULT,
            GROUP_OURS,
            GROUP_PAPER,
            shipped_models,
        )

        combo = self.ui.modelComboBox
        headings = {GROUP_OURS: _("Ours"), GROUP_PAPER: _("Paper variants (research)")}
        group = None
        for m in shipped_models():
            if m.group == GROUP_DEFAULT:
                combo.addItem(_("HRINet (shipped default)"), "hrinet")
            else:
                if m.group != group:
                    combo.insertSeparator(combo.count)
                    combo.addItem(headings[m.group])
                    combo.model().item(combo.count - 1).setEnabled(False)  # a heading
                combo.addItem(f"    {m.variant}", f"variant:{m.variant}")
            combo.setItemData(combo.count - 1, m.quality, qt.Qt.ToolTipRole)
            group = m.group
        if combo.findData("hrinet") < 0:  # no shipped weights: the default still names it
            combo.insertItem(0, _("HRINet (shipped default)"), "hrinet")
        combo.insertSeparator(combo.count)

    def cleanup(self) -> None:
        self.removeObservers()
        if self._interpolation is not None:  # reloading or closing the module
            self._interpolation.cancel()
            self._interpolation = None
        if self._job is not None:
            self._job.stop()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        if self._interpolation is not None:  # its input is about to go
            self.onCancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first
        if _is_unset(self._parameterNode.trainOutputPath):
            from HRINetSlicerLib.logic import default_runs_folder

            # kept across sessions (not the temporary directory, which Slicer empties)
            self._parameterNode.trainOutputPath = default_runs_folder() / "finetune"

    def setParameterNode(self, inputParameterNode: Optional[HRINetSlicerParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent,
                                self._parameterToCombos)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent,
                             self._parameterToCombos)
            self._parameterToCombos()

    def _comboToParameter(self, widgetName: str, parameter: str) -> None:
        key = getattr(self.ui, widgetName).currentData
        if self._parameterNode and key is not None and getattr(self._parameterNode, parameter) != key:
            setattr(self._parameterNode, parameter, key)

    def _parameterToCombos(self, *_args) -> None:
        """Any setting changed (in the panel, from Python, by loading a scene): the keyed combos
        show their key's item, and the plan and the export button follow the parameters."""
        if self._parameterNode is None:
            return
        for widgetName, parameter in KEYED_COMBOS.items():
            combo = getattr(self.ui, widgetName)
            index = combo.findData(getattr(self._parameterNode, parameter))
            if index >= 0 and index != combo.currentIndex:
                combo.setCurrentIndex(index)
        self.updatePlan()
        self.updateExport()

    # ---- interpolate ------------------------------------------------------------------------
    def _target(self):
        p = self._parameterNode
        target = {"thickness": float(p.thickness)}
        if p.targetMode == "factor":
            target["factor"] = int(p.factor)
        if p.targetMode == "spacing":
            target["target_spacing"] = float(p.targetSpacing)
        return target

    def _method(self):
        key = self._parameterNode.model
        if key == "file":
            path = self._parameterNode.weightsPath
            return "hrinet", None if _is_unset(path) else str(path)
        if key and key.startswith("variant:"):
            return "hrinet", HRINetSlicerLogic.shippedWeights(key.split(":", 1)[1])
        return key or "hrinet", None

    def updatePlan(self, *_args) -> None:
        if self._parameterNode is None:
            return
        mode = self._parameterNode.targetMode
        self.ui.targetSpacingSpinBox.enabled = mode == "spacing"
        self.ui.factorSpinBox.enabled = mode == "factor"
        self.ui.weightsPathLineEdit.enabled = self._parameterNode.model == "file"
        node = self._parameterNode.inputVolume
        if node is None or node.GetImageData() is None:
            self.ui.inputInfoLabel.text = _("no volume selected")
            self.ui.planLabel.text = ""
            self.ui.interpolateButton.enabled = False
            return
        dims = node.GetImageData().GetDimensions()
        sp = node.GetSpacing()
        self.ui.inputInfoLabel.text = (f"{dims[0]} x {dims[1]} x {dims[2]}, "
                                       f"{sp[0]:.3g} x {sp[1]:.3g} x {sp[2]:.3g} mm")
        try:
            plan = HRINetSlicerLogic.plan(node, method=self._method()[0], **self._target())
            self.ui.planLabel.text = plan.describe()
            self.ui.interpolateButton.enabled = True
        except Exception as exc:  # the library's one-line message
            self.ui.planLabel.text = str(exc)
            self.ui.interpolateButton.enabled = False

    def onCancel(self) -> None:
        if self._interpolation is not None:
            self._interpolation.cancel()
            self._interpolation = None
            self._interpolationTimer.stop()
            self._endInterpolation(_("Cancelled; nothing was created."))

    def onInterpolate(self) -> None:
        """Starts ``hrinet interpolate`` in a background process (HRINetSlicerLib.jobs) and
        polls it on a timer: Slicer stays responsive, Cancel ends the process tree at once."""
        method, weights = self._method()
        need = {"linear": "classical", "cubic": "classical", "flow": "flow"}.get(method, "learned")
        if not ensure_dependencies(need):
            return
        with userErrors(_("Interpolation failed.")):
            from HRINetSlicerLib.jobs import InterpolationJob

            job = InterpolationJob(self._parameterNode.inputVolume, method=method,
                                   weights=weights, device=self._device(), **self._target())
            job.start()
            self._interpolation = job
            self._interpolationStart = time.time()
            self.ui.cancelButton.enabled = True
            self.ui.interpolateButton.enabled = False
            self.ui.trainCollapsibleButton.enabled = False  # one job at a time
            self.ui.statusLabel.text = _("Reading the volume and loading the model...")
            if self._interpolationTimer is None:
                self._interpolationTimer = qt.QTimer()
                self._interpolationTimer.setInterval(250)
                self._interpolationTimer.timeout.connect(self.onInterpolationTimer)
            self._interpolationTimer.start()

    def onInterpolationTimer(self) -> None:
        job = self._interpolation
        if job is None:
            return
        info = job.poll()
        if info["running"]:
            self.ui.progressBar.maximum = max(info["total"], 1)
            self.ui.progressBar.value = info["done"]
            if info["phase"] == "interpolating":
                self.ui.statusLabel.text = _("Interpolating: {done}/{total} slice pairs").format(
                    done=info["done"], total=info["total"])
            return
        self._interpolationTimer.stop()
        self._interpolation = None
        try:
            node = job.finish()
        except Exception as exc:  # the command's one-line message
            logging.error(str(exc))
            self._endInterpolation(_("Interpolation failed: {error}").format(error=exc))
            return
        dims = node.GetImageData().GetDimensions()
        self._parameterNode.outputVolume = node
        slicer.util.setSliceViewerLayers(background=node, fit=True)
        self._endInterpolation(_("Created '{name}' ({x} x {y} x {z}) in {s:.1f} s").format(
            name=node.GetName(), x=dims[0], y=dims[1], z=dims[2],
            s=time.time() - self._interpolationStart))

    def _endInterpolation(self, status: str) -> None:
        self.ui.statusLabel.text = status
        self.ui.cancelButton.enabled = False
        self.ui.trainCollapsibleButton.enabled = True
        self.ui.progressBar.value = 0
        self.updatePlan()

    def _device(self) -> str:
        return self._parameterNode.device if self._parameterNode.device in DEVICES else "auto"

    # ---- export -----------------------------------------------------------------------------
    def updateExport(self, *_args) -> None:
        p = self._parameterNode
        self.ui.exportButton.enabled = bool(p and p.outputVolume and not _is_unset(p.exportPath))

    def onExport(self) -> None:
        path = str(self._parameterNode.exportPath)
        overwrite = False
        if os.path.exists(path):
            if not slicer.util.confirmYesNoDisplay(_("{path} exists. Replace it?").format(path=path)):
                return
            overwrite = True
        with userErrors(_("Export failed.")):
            out = self.logic.exportNrrd(self._parameterNode.outputVolume, path, overwrite)
            self.ui.statusLabel.text = _("Saved {path}").format(path=out)

    # ---- fine-tune --------------------------------------------------------------------------
    def refreshTrainList(self, *_args) -> None:
        if not hasattr(self, "ui"):
            return
        checked = {self.ui.trainVolumesList.item(i).data(qt.Qt.UserRole)
                   for i in range(self.ui.trainVolumesList.count)
                   if self.ui.trainVolumesList.item(i).checkState() == qt.Qt.Checked}
        self.ui.trainVolumesList.clear()
        for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
            if node.IsA("vtkMRMLLabelMapVolumeNode"):
                continue
            item = qt.QListWidgetItem(node.GetName())
            item.setData(qt.Qt.UserRole, node.GetID())
            item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
            item.setCheckState(qt.Qt.Checked if node.GetID() in checked else qt.Qt.Unchecked)
            self.ui.trainVolumesList.addItem(item)

    def _checkedNodes(self):
        nodes = []
        for i in range(self.ui.trainVolumesList.count):
            item = self.ui.trainVolumesList.item(i)
            if item.checkState() == qt.Qt.Checked:
                nodes.append(slicer.mrmlScene.GetNodeByID(item.data(qt.Qt.UserRole)))
        return [n for n in nodes if n is not None]

    def _startJob(self, job, resume: bool) -> None:
        with userErrors(_("Could not start training.")):
            job.start(resume=resume)
            self._job = job
            self.ui.stopTrainingButton.enabled = True
            self.ui.startTrainingButton.enabled = False
            self.ui.adaptButton.enabled = False
            self._timer = qt.QTimer()
            self._timer.timeout.connect(self.onTrainingTimer)
            self._timer.start(1000)

    def onStartTraining(self, resume: bool) -> None:
        if not ensure_dependencies():
            return
        p = self._parameterNode
        job = self.logic.trainingJob(str(p.trainOutputPath), self._checkedNodes(),
                                     variant=p.trainVariant, iterations=int(p.trainIterations),
                                     crop=int(p.trainCrop))
        self._startJob(job, resume)

    def onAdapt(self) -> None:
        if not ensure_dependencies():
            return
        node = self._parameterNode.inputVolume
        if node is None:
            slicer.util.errorDisplay(_("Select the input volume to adapt to."))
            return
        p = self._parameterNode
        out = Path(p.trainOutputPath) / f"adapt-{node.GetName()}"
        job = self.logic.adaptJob(out, node, iterations=int(p.trainIterations),
                                  crop=int(p.trainCrop))
        self._startJob(job, resume=False)

    def onStopTraining(self) -> None:
        if self._job is not None:
            with slicer.util.WaitCursor():
                self._job.stop()
            self.ui.trainStatusLabel.text = _("Stopped; checkpoint saved. Resume continues it.")

    def onTrainingTimer(self) -> None:
        info = self._job.poll()
        self.ui.trainProgressBar.maximum = int(info.get("iterations") or 1)
        self.ui.trainProgressBar.value = int(info.get("step") or 0)
        loss = info.get("loss_g")
        self.ui.trainStatusLabel.text = _("step {s} / {n}, loss {l}").format(
            s=info.get("step"), n=info.get("iterations"),
            l=f"{loss:.4g}" if isinstance(loss, float) else "-")
        plot = Path(self._job.out) / "loss.png"
        if plot.is_file():
            self.ui.lossPlotLabel.setPixmap(qt.QPixmap(str(plot)).scaledToWidth(360))
        if not info["running"]:
            self._timer.stop()
            self.ui.stopTrainingButton.enabled = False
            self.ui.startTrainingButton.enabled = True
            self.ui.adaptButton.enabled = True
            if info.get("error"):  # a failed job selects nothing, whatever the folder holds
                self.ui.trainStatusLabel.text = info["error"]
            elif info.get("weights"):
                # The new weights become the selected model for the next interpolation.
                self._parameterNode.weightsPath = Path(info["weights"])
                self._parameterNode.model = "file"
                self.ui.trainStatusLabel.text = _("Done: {path} (selected as the model)").format(
                    path=info["weights"])
                adaptation = info.get("adaptation")
                if adaptation:  # the guard's verdict on the held-out slices of this case
                    self.ui.trainStatusLabel.text = _(
                        "Held-out slices: starting model {a:.2f} dB, adapted {b:.2f} dB; using "
                        "the {kept} weights").format(a=adaptation["default_psnr_hu"],
                                                     b=adaptation["adapted_psnr_hu"],
                                                     kept=adaptation["kept"])


class HRINetSlicerLogic(ScriptedLoadableModuleLogic):
    """Slicer-facing wrapper of :mod:`HRINetSlicerLib.logic` (which holds the real code)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return HRINetSlicerParameterNode(super().getParameterNode())

    @staticmethod
    def variants():
        # hrinet.core.constants imports nothing heavy: the panel builds before PyTorch is installed
        from hrinet.core.constants import VARIANTS

        return sorted(VARIANTS, key=lambda v: (v != "hrinet-flow", v != "hrinet-plus",
                                               -VARIANTS.index(v)))

    @staticmethod
    def shippedWeights(variant):
        from hrinet.core.shipped import find_weights, variant_weights_name

        return str(find_weights(variant_weights_name(variant)))

    @staticmethod
    def detectedDevice() -> str:
        try:
            import torch
        except ImportError:
            return _("PyTorch not installed yet")
        if torch.cuda.is_available():
            return _("detected: GPU ({name})").format(name=torch.cuda.get_device_name(0))
        return _("detected: CPU only")

    @staticmethod
    def plan(node, factor=None, target_spacing=None, method="hrinet", thickness=None):
        from HRINetSlicerLib.logic import plan_for_node

        return plan_for_node(node, factor, target_spacing, method, thickness)

    def interpolate(self, node, **kwargs):
        from HRINetSlicerLib.logic import interpolate_node

        return interpolate_node(node, **kwargs)

    def exportNrrd(self, node, path, overwrite=False):
        from HRINetSlicerLib.logic import export_nrrd

        return export_nrrd(node, path, overwrite=overwrite)

    def trainingJob(self, out, nodes, variant, iterations, crop):
        from HRINetSlicerLib.logic import TrainingJob

        return TrainingJob(out, nodes, variant=variant, iterations=iterations, crop=crop)

    def adaptJob(self, out, node, iterations, crop):
        from HRINetSlicerLib.logic import adapt_job

        return adapt_job(out, node, iterations=iterations, crop=crop)


class HRINetSlicerTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload & Test, and the extension's ctest): CTChest decimated along z
    and interpolated back. The classical paths run on the whole volume; the learned path on a
    crop (a few 256^2 slices) so that an extension build machine finishes in seconds, and is
    skipped, saying so, where PyTorch is not installed."""

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
        import SampleData
        from HRINetSlicerLib.logic import volume_from_node

        self.delayDisplay("Loading CTChest")
        return volume_from_node(SampleData.SampleDataLogic().downloadSample("CTChest"))

    def _score(self, truth, k, methods):
        """PSNR_HU of each method's synthesised slices; checks the known slices' RAS positions."""
        import numpy as np
        from hrinet.evaluation.evaluate import decimate, synthesised_mask
        from hrinet.evaluation.metrics import psnr
        from HRINetSlicerLib.logic import node_from_volume

        thick = node_from_volume(decimate(truth, k), "CTChest thick", slicer.mrmlScene)
        logic = HRINetSlicerLogic()
        scores = {}
        for method in methods:
            self.delayDisplay(f"Interpolating x{k} with {method}")
            out, _seconds = logic.interpolate(thick, factor=k, method=method, device="cpu")
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
        import tempfile

        slicer.util.selectModule("HRINetSlicer")
        widget = slicer.modules.HRINetSlicerWidget
        import numpy as np

        node = slicer.util.addVolumeFromArray(np.zeros((4, 8, 8), np.int16), name="thick")
        chosen = dict(inputVolume=node, targetMode="factor", factor=6, targetSpacing=0.7,
                      thickness=5.0, model="cubic", device="cpu", trainVariant="hrinet-plus",
                      trainIterations=1234, trainCrop=192,
                      weightsPath=Path(tempfile.gettempdir()) / "w.safetensors",
                      exportPath=Path(tempfile.gettempdir()) / "iso.nrrd",
                      trainOutputPath=Path(tempfile.gettempdir()) / "runs")
        params = widget.logic.getParameterNode()
        for key, value in chosen.items():
            setattr(params, key, value)
        self.assertEqual(widget.ui.deviceComboBox.currentData, "cpu")  # a key, not its text
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
        try:
            import torch  # noqa: F401
        except ImportError:
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
