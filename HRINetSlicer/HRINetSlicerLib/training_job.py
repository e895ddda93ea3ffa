"""Training in the module's background: ``hrinet train`` (and ``hrinet adapt``, through
:class:`.adaptation.AdaptJob`) in a ``PythonSlicer`` process, polled for progress and losses,
stopped with a checkpoint, resumed; weights named only when the run ended well and made them
itself. Where runs go unless the user picks a folder. Nothing here imports PyTorch.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import List, Optional, Sequence

import slicer
from hrinet.core.errors import HRINetError
from hrinet.core.variants import DEFAULT_VARIANT
from hrinet.training.options import STOP_FILE, train_argv

from .jobs import Job
from .mrml import export_nrrd


def safe_name(name: str) -> str:
    """A node name as one file-name part: letters, digits, - and _ only (no ``..``, no ``/``)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "volume"


def default_runs_folder() -> Path:
    """Where fine-tuning runs go unless the user picks a folder: under Slicer's settings
    directory (kept across sessions), not the temporary directory."""
    app = getattr(slicer, "app", None)
    base = Path(app.slicerUserSettingsFilePath).parent if app is not None else \
        Path.home() / ".hrinet"
    return base / "HRINetSlicer" / "runs"


class TrainingJob(Job):
    """``hrinet train`` in a background process, as SlicerTotalSegmentator runs its jobs.

    The panel polls :meth:`poll` on a timer for progress and losses. :meth:`stop` asks the
    trainer to save a checkpoint and exit; :meth:`start` with ``resume=True`` continues it.
    """

    def __init__(self, out_dir, volume_nodes: Sequence = (), variant: str = DEFAULT_VARIANT,
                 iterations: int = 500, crop: int = 128, batch: int = 4,
                 init_weights: Optional[str] = None, device: str = "auto",
                 volume_paths: Sequence[str] = ()):
        super().__init__()
        self.out = Path(out_dir)
        self.variant, self.iterations, self.crop, self.batch = variant, iterations, crop, batch
        self.init_weights, self.device = init_weights, device
        self.paths: List[str] = list(volume_paths)
        self._nodes = list(volume_nodes)
        self.started_at = 0.0

    @property
    def log_path(self) -> Path:
        return self.out / "job.log"

    def _export_inputs(self) -> List[str]:
        data = self.out / "inputs"
        data.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, node in enumerate(self._nodes):
            p = data / f"{i:02d}-{safe_name(node.GetName())}.nrrd"
            export_nrrd(node, p, overwrite=True)
            paths.append(str(p))
        return paths

    def command(self, resume: bool = False) -> List[str]:
        if not self.paths:
            self.paths = self._export_inputs()
        if not self.paths:
            raise HRINetError("check at least one volume to train on")
        settings = dict(data=self.paths, variant=self.variant, iterations=self.iterations,
                        crop=self.crop, batch=self.batch, device=self.device, val_every=0,
                        checkpoint_minutes=2)
        if not resume and self.init_weights:
            settings["init_weights"] = str(self.init_weights)
        cmd = self.hrinet("train", *train_argv(**settings), "--out", self.out)
        return cmd + (["--resume"] if resume else [])

    def start(self, resume: bool = False) -> None:
        if self.running():
            raise HRINetError("a training job is already running; stop it first")
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / STOP_FILE).unlink(missing_ok=True)  # an old request must not stop this run
        self.clear_previous_result()
        self.started_at = time.time()
        self.proc.start(self.command(resume), self.log_path, append=True)

    def clear_previous_result(self) -> None:
        """Nothing here before: a training run's weights are judged by their time instead."""

    def poll(self) -> dict:
        """Latest progress (step, iterations, loss) and the loss history for the plot."""
        info = {"running": self.running(), "returncode": self.proc.returncode, "step": 0,
                "iterations": self.iterations}
        try:
            info.update(json.loads((self.out / "progress.json").read_text()))
        except (OSError, ValueError):
            pass
        log = self.out / "log.csv"
        if log.is_file():
            with open(log) as f:
                rows = list(csv.DictReader(f))
            info["history"] = [(int(r["step"]), float(r["content"])) for r in rows
                               if r.get("content")]
        # Only a run that ended well names weights, and only those it made itself: an earlier
        # run's file in the same folder is not this run's result.
        path = self.weights_path()
        done = info["returncode"] == 0 and path.is_file() and \
            path.stat().st_mtime >= self.started_at - 1
        info["weights"] = str(path) if done else None
        error = self.failure()
        if error is not None:
            info["error"] = error
        return info

    def weights_path(self) -> Path:
        return self.out / f"{self.variant}.safetensors"

    def stop(self, timeout: float = 60) -> None:
        """Ask the trainer to checkpoint and exit, then wait for it: a STOP file that it polls
        every step (works on Windows, where SIGTERM would end it without a checkpoint), and
        SIGTERM as well where it can be caught."""
        if not self.running():
            return
        self.stopped = True  # asked for: the exit it makes is no failure
        (self.out / STOP_FILE).write_text("stop\n")
        self.proc.end(timeout, terminate=os.name != "nt")
