"""The panel's model menu: the shipped default, ours and the paper's variants under headings with
their measured quality, the classical methods, a weights file; and the models of the catalog
that are not installed, each fetched only when the user clicks *Download* (:mod:`.download_job`).
A mixin of the widget."""

import qt
from hrinet.core.models.shipped import shipped_models
from hrinet.core.variants import GROUP_DEFAULT, GROUP_OURS, GROUP_PAPER
from slicer.i18n import tr as _

from .download_job import DownloadJob, missing_models

#: The key of a menu item that names a model to download.
DOWNLOAD = "download:"


class ModelMenu:
    """Uses the widget's ``ui``, ``_parameterNode``, ``updatePlan`` and ``_endInterpolation``."""

    _download = None
    _downloadTimer = None

    def fillModelMenu(self) -> None:
        """(Re)build the menu, keeping the selected key."""
        combo = self.ui.modelComboBox
        combo.blockSignals(True)
        combo.clear()
        headings = {GROUP_OURS: _("Ours"), GROUP_PAPER: _("Paper variants (research)")}
        group = None
        for m in shipped_models():
            if m.group == GROUP_DEFAULT:
                combo.addItem(_("HRINet (shipped default)"), "hrinet")
            else:
                if m.group != group:
                    self._heading(headings[m.group])
                combo.addItem(f"    {m.variant}", f"variant:{m.variant}")
            combo.setItemData(combo.count - 1, m.quality, qt.Qt.ToolTipRole)
            group = m.group
        if combo.findData("hrinet") < 0:  # no shipped weights: the default still names it
            combo.insertItem(0, _("HRINet (shipped default)"), "hrinet")
        missing = [m for m in missing_models() if not m.bundled]
        if missing:
            self._heading(_("Not installed (select, then Download)"))
            for m in missing:
                combo.addItem(f"    {m.variant} ({m.size / 2 ** 20:.0f} MB)", DOWNLOAD + m.name)
                combo.setItemData(combo.count - 1, m.quality, qt.Qt.ToolTipRole)
        combo.insertSeparator(combo.count)
        combo.addItem(_("Optical-flow morphing (classical)"), "flow")
        combo.addItem(_("Cubic B-spline (classical)"), "cubic")
        combo.addItem(_("Linear (classical)"), "linear")
        combo.addItem(_("Weights file..."), "file")
        combo.blockSignals(False)

    def _heading(self, text: str) -> None:
        combo = self.ui.modelComboBox
        combo.insertSeparator(combo.count)
        combo.addItem(text)
        combo.model().item(combo.count - 1).setEnabled(False)

    def selectedDownload(self):
        """The catalog name of the selected not-installed model, or None."""
        key = self._parameterNode.model if self._parameterNode else ""
        return key[len(DOWNLOAD):] if key and key.startswith(DOWNLOAD) else None

    def onDownload(self) -> None:
        name = self.selectedDownload()
        if name is None or self._download is not None:
            return
        self._download = DownloadJob(name)
        self._download.start()
        self.ui.downloadButton.enabled = False
        self.ui.interpolateButton.enabled = False
        self.ui.cancelButton.enabled = True
        self.ui.statusLabel.text = _("Downloading {name}...").format(name=name)
        if self._downloadTimer is None:
            self._downloadTimer = qt.QTimer()
            self._downloadTimer.setInterval(250)
            self._downloadTimer.timeout.connect(self.onDownloadTimer)
        self._downloadTimer.start()

    def cancelDownload(self) -> bool:
        """Cancel a running download; True if there was one."""
        if self._download is None:
            return False
        self._download.cancel()
        self._endDownload(_("Download cancelled; nothing was kept."))
        return True

    def onDownloadTimer(self) -> None:
        info = self._download.poll()
        self.ui.progressBar.maximum = max(info["total"], 1)
        self.ui.progressBar.value = info["done"]
        if info["running"]:
            return
        name = self._download.name
        if info["error"]:
            self._endDownload(_("Download failed: {error}").format(error=info["error"]))
            return
        self.fillModelMenu()
        model = next((f"variant:{m.variant}" for m in shipped_models()
                      if m.path.stem == name), None)
        if model is not None:
            self._parameterNode.model = model
        self._endDownload(_("Downloaded {name} (sha256 verified); it is selected").format(
            name=name))

    def _endDownload(self, status: str) -> None:
        self._downloadTimer.stop()
        self._download.cleanup()
        self._download = None
        if getattr(self, "_interpolation", None) is None:
            self._endInterpolation(status)
        else:  # an interpolation still runs: its Cancel and state stay as they are
            self.ui.statusLabel.text = status
