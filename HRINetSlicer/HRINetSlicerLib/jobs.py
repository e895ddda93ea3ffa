"""The module's long work as background jobs: the panel never runs the library on Slicer's GUI
thread.

As SlicerMONAIAuto3DSeg does for inference: a ``PythonSlicer`` process runs one ``hrinet``
command, the panel polls the job on a timer, and cancel ends the whole process tree. Every job
reads the command's machine-readable events (``--progress jsonl``, :mod:`hrinet.core.events`),
never its human lines. An interpolation creates its result node only on success, so a
cancelled or failed job leaves the scene as it was; a training or adaptation job names weights
only when it ended well and made them itself.

The module interpolates one way only: :class:`InterpolationJob`. The panel polls it on a timer;
:func:`interpolate_node` (the Logic's ``interpolate``, the self-test) starts the same job and
waits for it. Nothing here imports PyTorch: Slicer's own process never loads it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, List, Optional

from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.events import Event
from hrinet.core.events import parse as parse_event
from hrinet.core.io import read_provenance, read_volume
from hrinet.core.model_options import ModelOptions, check_options

from .confidence_overlay import add_confidence_overlay
from .mrml import copy_window_level, export_nrrd, node_from_volume, plan_for_node
from .process import BackgroundProcess, python_executable


def as_run(options: ModelOptions) -> ModelOptions:
    """The panel's options as a command runs them: an unset thickness (the slab checkbox
    unchecked) is 0, so the acquired slices are kept (the commands would otherwise estimate a
    thickness from the voxels of a file that records none): one volume and a folder alike."""
    return replace(options, thickness=options.thickness or 0.0)


#: How a command the user stopped ends when it stops as asked: SIGTERM's status (143, or -15
#: as the process module reports a signal) or the interrupted one (130). A kill after the
#: timeout (-9) or an error is a failure even then.
STOPPED_STATUSES = (143, -15, 130)


class Job:
    """One ``hrinet`` command in a background process, its events in ``log_path``."""

    def __init__(self) -> None:
        self.proc = BackgroundProcess()
        #: Set when the user stopped or cancelled it: its ending is then no failure.
        self.stopped = False

    @staticmethod
    def hrinet(*args) -> List[str]:
        """The command line of ``hrinet ARGS`` as every job runs it: PythonSlicer, the JSON
        events on stdout (``--progress jsonl``)."""
        return [python_executable(), "-m", "hrinet.cli", "--progress", "jsonl",
                *map(str, args)]

    @property
    def log_path(self) -> Optional[Path]:
        raise NotImplementedError

    def running(self) -> bool:
        return self.proc.running()

    def events(self) -> List[dict]:
        """The command's JSON events so far (human lines and partial lines are skipped)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except (OSError, AttributeError):
            return []
        return [e for e in map(parse_event, lines) if e is not None]

    def warnings(self, events: Optional[List[dict]] = None) -> List[str]:
        """The command's warnings so far (its warning events, or those of ``events`` already
        read), each once, in order."""
        seen = []
        for e in self.events() if events is None else events:
            if e["event"] == Event.WARNING and e.get("message") not in seen:
                seen.append(e.get("message"))
        return seen

    def failure(self, what: str = "the job") -> Optional[str]:
        """None while running or after success; else the command's last error event, or a line
        naming the log when the command died without one (killed, crashed)."""
        if self.proc.returncode in (None, 0):
            return None
        errors = [e["message"] for e in self.events() if e["event"] == Event.ERROR]
        if self.stopped and not errors and self.proc.returncode in STOPPED_STATUSES:
            return None  # ended as the user asked; an error or a kill is still said
        return (errors or [f"{what} failed ({self.last_words()}see its log: {self.log_path})"])[-1]

    def last_words(self) -> str:
        """The log's last line for people (not an event), with "; " after it, or "": said in
        the failure itself, since a job's temporary folder (and its log) may be gone by the time
        the message is read."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except (OSError, AttributeError):
            return ""
        words = [ln.strip() for ln in lines if ln.strip() and parse_event(ln) is None]
        return f"{words[-1][:300]}; " if words else ""


def warning_words(warnings: List[str]) -> str:
    """The status line's tail for a command's warnings (as it said them); empty without any."""
    return "" if not warnings else " (warning: " + "; ".join(warnings) + ")"


class InterpolationJob(Job):
    """``hrinet interpolate`` on one volume node.

    Args:
        input_node: the scalar volume node; never modified.
        options: what ``hrinet interpolate`` is asked for (target, method, thickness, and the
            learned methods' weights, device, precision, quality), as the command declares them;
            the plan is made (and validated) here, before anything starts. A thickness of None
            keeps the acquired slices (the job passes 0, so no header's thickness restores them).
        name: name of the result node (default ``"<input> isotropic"``).
        confidence: also compute the confidence map (``--confidence``) and add it as an overlay
            (:mod:`HRINetSlicerLib.confidence_overlay`).
    """

    def __init__(self, input_node, options: ModelOptions = ModelOptions(),
                 name: Optional[str] = None, confidence: bool = False):
        super().__init__()
        self.input_node, self.confidence = input_node, confidence
        self.options = check_options(options)
        self.plan = plan_for_node(input_node, options)
        self.name = name or f"{input_node.GetName()} isotropic"
        self.folder: Optional[Path] = None

    @property
    def log_path(self) -> Optional[Path]:
        return None if self.folder is None else self.folder / "job.log"

    def command(self) -> list:
        folder = self.folder
        options = replace(as_run(self.options), factor=self.plan.factor, spacing=None,
                          method=self.plan.method)  # as planned
        extra = ["--confidence", folder / "confidence.nrrd"] if self.confidence else []
        return self.hrinet("interpolate", folder / "in.nrrd", folder / "out.nrrd",
                           *options.argv(), *extra)

    def start(self) -> None:
        """Write the input to a temporary NRRD and start the process (returns at once)."""
        if self.running():
            raise HRINetError("an interpolation is already running; cancel it first")
        self.folder = Path(tempfile.mkdtemp(prefix="hrinet-interpolate-"))
        try:
            export_nrrd(self.input_node, self.folder / "in.nrrd",  # named as the user knows it
                        what=f"{self.input_node.GetName()} for interpolation")
            self.proc.start(self.command(), self.log_path)
        except BaseException:
            self.cleanup()  # a failed start leaves no temporary folder behind
            raise

    def poll(self) -> dict:
        """``{"running", "returncode", "phase", "done", "total", "error", "warnings"}`` for
        the panel."""
        events = self.events()  # the log, read once a poll
        info = {"running": self.running(), "returncode": self.proc.returncode, "done": 0,
                "total": self.plan.input_slices - 1,
                "phase": "reading the volume and loading the model", "error": None,
                "warnings": self.warnings(events)}
        for e in events:
            if e["event"] == Event.PLAN:
                info["phase"] = "interpolating"
            elif e["event"] == Event.PROGRESS:
                info["done"], info["total"] = int(e["done"]), int(e["total"])
            elif e["event"] == Event.WROTE:
                info["phase"] = "done"
        info["error"] = self.failure("the interpolation process")
        if info["error"] is not None:
            info["phase"] = "failed"
        return info

    def cancel(self, timeout: float = 10) -> None:
        """End the process and everything it started; nothing is added to the scene."""
        self.stopped = True
        self.proc.end(timeout)
        self.cleanup()

    def finish(self, scene=None):
        """The result node, created now (after success only); the temporary files go."""
        info = self.poll()
        if info["running"]:
            raise HRINetError("the interpolation is still running")
        if info["returncode"] != 0:
            self.cleanup()
            raise HRINetError(info["error"])
        try:
            result = read_volume(self.folder / "out.nrrd")
            result.metadata["provenance"] = read_provenance(self.folder / "out.nrrd")
            conf = read_volume(self.folder / "confidence.nrrd") if self.confidence else None
        finally:
            self.cleanup()
        node = node_from_volume(result, self.name, scene or self.input_node.GetScene(),
                                source_node=self.input_node)
        copy_window_level(self.input_node, node)
        if conf is not None:
            add_confidence_overlay(node, conf)
        return node

    def cleanup(self) -> None:
        self.proc.running()  # closes the log of a process that has ended
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def interpolate_node(input_node, options: ModelOptions = ModelOptions(),
                     name: Optional[str] = None, confidence: bool = False,
                     progress: Optional[Callable[[int, int], None]] = None,
                     cancel: Optional[Callable[[], bool]] = None, scene=None,
                     poll_seconds: float = 0.1):
    """The panel's :class:`InterpolationJob` (same arguments), started and waited for: the
    module's one way to interpolate, for callers that want the result node back (the Logic's
    ``interpolate``, the self-test, scripts in Slicer's Python console).

    ``progress(done, total)`` is called at every poll (the self-test keeps Slicer drawing with
    it); ``cancel()`` returning True ends the process tree and raises :class:`Cancelled`, the
    scene left as it was. A failed command raises its one line. Returns ``(node, seconds)``.
    """
    job = InterpolationJob(input_node, options, name=name, confidence=confidence)
    start = time.perf_counter()
    job.start()
    try:
        while True:
            info = job.poll()
            if progress is not None:
                progress(info["done"], info["total"])
            if not info["running"]:
                break
            if cancel is not None and cancel():
                raise Cancelled()
            time.sleep(poll_seconds)
    except BaseException:  # cancelled, or the caller interrupted: nothing is left running
        job.cancel()
        raise
    node = job.finish(scene)
    return node, time.perf_counter() - start
