"""A model download from the panel, on the user's click: ``hrinet models --get NAME`` as a
background job (the command checks the sha256 before the file is used, and keeps nothing
half-written), with progress and cancel."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import List, Optional

from hrinet.core.events import Event
from hrinet.core.models.catalog import CatalogModel, installed_path, load_catalog

from .jobs import Job


def missing_models() -> List[CatalogModel]:
    """The catalog's models that are not installed (intact) here, for the panel's menu."""
    try:
        catalog = load_catalog()
    except Exception:  # no catalog: nothing to offer, the panel still builds
        return []
    return [m for m in catalog if installed_path(m) is None]


class DownloadJob(Job):
    """``hrinet models --get NAME [--from SOURCE]`` in a background process."""

    def __init__(self, name: str, source: Optional[str] = None):
        super().__init__()
        self.name, self.source = name, source
        self.folder: Optional[Path] = None

    @property
    def log_path(self) -> Optional[Path]:
        return None if self.folder is None else self.folder / "download.log"

    def command(self) -> List[str]:
        cmd = self.hrinet("models", "--get", self.name)
        return cmd + (["--from", str(self.source)] if self.source else [])

    def start(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hrinet-download-"))
        self.proc.start(self.command(), self.log_path)

    def poll(self) -> dict:
        """``{"running", "returncode", "done", "total", "path", "error"}`` (bytes)."""
        info = {"running": self.running(), "returncode": self.proc.returncode, "done": 0,
                "total": 0, "path": None}
        for e in self.events():
            if e["event"] == Event.PROGRESS:
                info["done"], info["total"] = int(e["done"]), int(e["total"])
            elif e["event"] == Event.WROTE:
                info["path"] = e["path"]
        info["error"] = self.failure(f"the download of {self.name}")
        return info

    def cancel(self, timeout: float = 10) -> None:
        """Stop the download; its partial file is removed by the command on the way out."""
        self.proc.end(timeout)

    def cleanup(self) -> None:
        self.proc.running()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
