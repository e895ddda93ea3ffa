"""The panel's fine-tuning section: train on checked volumes, adapt to the input case, stop and
resume; each a background job (:mod:`.jobs`) polled on a timer. A mixin of the widget."""

from pathlib import Path

import qt
import slicer
from slicer.i18n import tr as _

from .dialogs import ShowFailureInDialog, ensure_dependencies
from .training_job import safe_name


class TrainingSection:
    """Fine-tuning: the widget's ``ui``, ``logic``, ``_parameterNode`` and ``_job`` are used."""

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
        with ShowFailureInDialog(_("Could not start training.")):
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
        out = Path(p.trainOutputPath) / f"adapt-{safe_name(node.GetName())}"
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
