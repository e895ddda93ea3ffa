"""The panel: Interpolate (in a background job), Export isotropic NRRD; the fine-tuning section
is :class:`.training_section.TrainingSection`. It collects choices and shows progress; the work
is in :mod:`.jobs` and the ``hrinet`` library."""

import logging
import os
import time
from typing import Optional

import qt
import slicer
import vtk
from hrinet.core.model_options import ModelOptions, option_field
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from .batch_section import BatchSection
from .confidence_overlay import set_overlay_visible
from .dialogs import ShowFailureInDialog, ensure_dependencies_for
from .jobs import InterpolationJob, warning_words
from .model_menu import ModelMenu
from .mrml import input_words, transform_words
from .panel_logic import HRINetSlicerLogic
from .parameters import (
    DEVICES,
    KEYED_COMBOS,
    PRECISION_LABELS,
    QUALITY_LABELS,
    TARGET_MODES,
    HRINetSlicerParameterNode,
    is_unset,
)
from .targets import RESTORE_HOW, default_slab_thickness, interpolation_target
from .training_job import default_runs_folder
from .training_section import TrainingSection


class HRINetSlicerWidget(ModelMenu, TrainingSection, BatchSection, ScriptedLoadableModuleWidget,
                         VTKObservationMixin):
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

        self.fillModelMenu()
        self.ui.downloadButton.clicked.connect(self.onDownload)
        for name in HRINetSlicerLogic.variants():
            self.ui.variantComboBox.addItem(name, name)
        for combo, keys in ((self.ui.targetModeComboBox, TARGET_MODES),
                            (self.ui.deviceComboBox, DEVICES)):
            for i, key in enumerate(keys):
                combo.setItemData(i, key)
        for combo, name, labels in ((self.ui.precisionComboBox, "precision", PRECISION_LABELS),
                                    (self.ui.qualityComboBox, "quality", QUALITY_LABELS)):
            option = option_field(name)  # its choices and help, as the command has them
            for key in option.metadata["argparse"]["choices"]:
                combo.addItem(labels.get(key, key), key)
            combo.toolTip = option.metadata["help"]
        for widgetName, parameter in KEYED_COMBOS.items():
            getattr(self.ui, widgetName).currentIndexChanged.connect(
                lambda _i, w=widgetName, p=parameter: self._comboToParameter(w, p))
        self.ui.detectedDeviceLabel.text = HRINetSlicerLogic.detectedDevice()

        self.ui.interpolateButton.clicked.connect(self.onInterpolate)
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.exportButton.clicked.connect(self.onExport)
        self.ui.exportDicomButton.clicked.connect(self.onExportDicom)
        self.ui.confidenceCheckBox.toggled.connect(self.onConfidenceToggled)
        self.ui.startTrainingButton.clicked.connect(lambda: self.onStartTraining(resume=False))
        self.ui.resumeTrainingButton.clicked.connect(lambda: self.onStartTraining(resume=True))
        self.ui.stopTrainingButton.clicked.connect(self.onStopTraining)
        self.ui.adaptButton.clicked.connect(self.onAdapt)
        self.setupBatchSection()

        self.initializeParameterNode()
        self.refreshTrainList()
        self.updatePlan()

    def cleanup(self) -> None:
        self.removeObservers()
        if self._interpolation is not None:  # reloading or closing the module
            self._interpolation.cancel()
            self._interpolation = None
        if self._job is not None:
            self._job.stop()
        if self._batch is not None:  # resumable: the next Start batch continues it
            self._batch.cancel()
        self.cancelDownload()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        if self._interpolation is not None or self._download is not None:  # its input is
            self.onCancel()  # about to go: no result may land in the next scene
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
        if is_unset(self._parameterNode.trainOutputPath):
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
        p = self._parameterNode
        if p.restoreSlabs and not p.thickness and p.inputVolume is not None:
            p.thickness = default_slab_thickness(p.inputVolume)  # comes back here once
            return
        for widgetName, parameter in KEYED_COMBOS.items():
            combo = getattr(self.ui, widgetName)
            index = combo.findData(getattr(self._parameterNode, parameter))
            if index >= 0 and index != combo.currentIndex:
                combo.setCurrentIndex(index)
        self.updatePlan()
        self.updateExport()

    # ---- interpolate ------------------------------------------------------------------------
    def _options(self) -> ModelOptions:
        """What the panel asks the command for: the target, the model and how to run it."""
        p = self._parameterNode
        method, weights = self._method()
        return ModelOptions(method=method, weights=weights, device=self._device(),
                            precision=p.precision, quality=p.quality,
                            **interpolation_target(p.targetMode, p.factor, p.targetSpacing,
                                                   p.restoreSlabs, p.thickness))

    def _method(self):
        key = self._parameterNode.model
        if key == "file":
            path = self._parameterNode.weightsPath
            return "hrinet", None if is_unset(path) else str(path)
        if key and key.startswith("variant:"):
            return "hrinet", HRINetSlicerLogic.shippedWeights(key.split(":", 1)[1])
        return key or "hrinet", None

    def updatePlan(self, *_args) -> None:
        if self._parameterNode is None:
            return
        options = self._options()
        mode = self._parameterNode.targetMode
        self.ui.targetSpacingSpinBox.enabled = mode == "spacing"
        self.ui.factorSpinBox.enabled = mode == "factor"
        self.ui.weightsPathLineEdit.enabled = self._parameterNode.model == "file"
        # the classical methods have no quality setting (the command leaves it out for them)
        self.ui.qualityComboBox.enabled = options.learned
        self.ui.thicknessSpinBox.enabled = self._parameterNode.restoreSlabs
        self.ui.downloadButton.enabled = self.selectedDownload() is not None and \
            self._download is None
        node = self._parameterNode.inputVolume
        if node is None or node.GetImageData() is None:
            self.ui.inputInfoLabel.text = _("no volume selected")
            self.ui.planLabel.text = ""
            self.ui.interpolateButton.enabled = False
            return
        self.ui.inputInfoLabel.text = input_words(node)
        if self.selectedDownload() is not None:
            self.ui.planLabel.text = _("This model is not installed: click Download (a verified "
                                       "download from the release), or choose another.")
            self.ui.interpolateButton.enabled = False
            return
        try:
            plan = HRINetSlicerLogic.plan(node, options)
            words = transform_words(node)  # a parent transform: hardened, or refused above
            self.ui.planLabel.text = plan.describe(restore_how=_(RESTORE_HOW)) + \
                (f"; {words}" if words else "")
            self.ui.interpolateButton.enabled = self._interpolation is None  # one at a time
        except Exception as exc:  # the library's one-line message
            self.ui.planLabel.text = str(exc)
            self.ui.interpolateButton.enabled = False

    def onCancel(self) -> None:
        """Ends every job the panel runs (a download and an interpolation alike)."""
        self.cancelDownload()
        if self._interpolation is not None:
            self._interpolation.cancel()
            self._interpolation = None
            self._interpolationTimer.stop()
            self._endInterpolation(_("Cancelled; nothing was created."))

    def onInterpolate(self) -> None:
        """Starts ``hrinet interpolate`` in a background process (HRINetSlicerLib.jobs) and
        polls it on a timer: Slicer stays responsive, Cancel ends the process tree at once."""
        if self._interpolation is not None:  # one at a time: a second would orphan the first
            return
        options = self._options()
        if not ensure_dependencies_for(options):
            return
        with ShowFailureInDialog(_("Interpolation failed.")):
            job = InterpolationJob(self._parameterNode.inputVolume, options,
                                   confidence=self._parameterNode.showConfidence)
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
                    done=info["done"], total=info["total"]) + warning_words(info["warnings"])
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
            s=time.time() - self._interpolationStart) + warning_words(info["warnings"]))
        for text in info["warnings"]:
            logging.warning(text)

    def onConfidenceToggled(self, checked: bool) -> None:
        """Show or hide the output's confidence overlay (made when the box was checked at
        interpolation time)."""
        if self._parameterNode is not None:
            set_overlay_visible(self._parameterNode.outputVolume, checked)

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
        self.ui.exportButton.enabled = bool(p and p.outputVolume and not is_unset(p.exportPath))
        self.ui.exportDicomButton.enabled = bool(p and p.outputVolume)

    def onExport(self) -> None:
        path = str(self._parameterNode.exportPath)
        overwrite = False
        if os.path.exists(path):
            if not slicer.util.confirmYesNoDisplay(_("{path} exists. Replace it?").format(path=path)):
                return
            overwrite = True
        with ShowFailureInDialog(_("Export failed.")):
            out = self.logic.exportNrrd(self._parameterNode.outputVolume, path, overwrite)
            self.ui.statusLabel.text = _("Saved {path}").format(path=out)

    def onExportDicom(self) -> None:
        """Export the output volume as a derived DICOM series into a new or empty folder."""
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Folder for the derived DICOM series (new or empty)"))
        if not folder:
            return
        with ShowFailureInDialog(_("Export failed.")):
            out = self.logic.exportDerivedDicom(self._parameterNode.outputVolume, folder)
            self.ui.statusLabel.text = _("Saved the derived series in {path}").format(path=out)
