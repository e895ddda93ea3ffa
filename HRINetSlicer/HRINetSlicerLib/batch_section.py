"""The panel's batch section: a folder of cases made isotropic in the background with the
interpolation section's target, model and device (:mod:`.batch_job`), progress per case and
overall, cancel, and the results table at the end. A mixin of the widget."""

import qt
from slicer.i18n import tr as _

from .batch_job import SHOWN_COLUMNS, BatchJob
from .dialogs import ShowFailureInDialog, ensure_dependencies_for
from .parameters import is_unset


class BatchSection:
    """Batch: uses the widget's ``ui``, ``_parameterNode`` and ``_options``."""

    _batch = None
    _batchTimer = None

    def setupBatchSection(self) -> None:
        self.ui.batchStartButton.clicked.connect(self.onStartBatch)
        self.ui.batchCancelButton.clicked.connect(self.onCancelBatch)
        self.ui.batchResultsTable.setColumnCount(len(SHOWN_COLUMNS))
        self.ui.batchResultsTable.setHorizontalHeaderLabels(list(SHOWN_COLUMNS))

    def onStartBatch(self) -> None:
        p = self._parameterNode
        if is_unset(p.batchInputPath) or is_unset(p.batchOutputPath):
            self.ui.batchStatusLabel.text = _("Choose the input folder and the output folder.")
            return
        options = self._options()
        if not ensure_dependencies_for(options):
            return
        with ShowFailureInDialog(_("Could not start the batch.")):
            job = BatchJob(p.batchInputPath, p.batchOutputPath, options)
            job.start()
            self._batch = job
            self.ui.batchStartButton.enabled = False
            self.ui.batchCancelButton.enabled = True
            self.ui.batchStatusLabel.text = _("Finding the cases...")
            self.ui.batchResultsTable.setRowCount(0)
            if self._batchTimer is None:
                self._batchTimer = qt.QTimer()
                self._batchTimer.setInterval(1000)
                self._batchTimer.timeout.connect(self.onBatchTimer)
            self._batchTimer.start()

    def onCancelBatch(self) -> None:
        if self._batch is not None:
            self._batch.cancel()
            self._endBatch(_("Cancelled; Start batch again continues where it stopped."))

    def onBatchTimer(self) -> None:
        job = self._batch
        if job is None:
            return
        info = job.poll()
        self.ui.batchProgressBar.maximum = max(info["total"], 1)
        self.ui.batchProgressBar.value = info["done"]
        if info["running"]:
            self.ui.batchStatusLabel.text = _("{done} of {total} cases finished, {failed} "
                                              "failed").format(**info)
            return
        self._showResults(info["rows"])
        if info["error"]:
            self._endBatch(_("The batch failed: {error}").format(error=info["error"]))
        else:
            self._endBatch(_("Done: {done} of {total} cases, {failed} failed (their reasons "
                             "are in the table and in {table})").format(
                table=job.results_path, **info))

    def _showResults(self, rows) -> None:
        table = self.ui.batchResultsTable
        table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, column in enumerate(SHOWN_COLUMNS):
                table.setItem(i, j, qt.QTableWidgetItem(row[column]))
        table.resizeColumnsToContents()

    def _endBatch(self, status: str) -> None:
        if self._batchTimer is not None:
            self._batchTimer.stop()
        self._batch = None
        self.ui.batchStatusLabel.text = status
        self.ui.batchStartButton.enabled = True
        self.ui.batchCancelButton.enabled = False
