"""Interpolation as a background job: the panel never runs the library on Slicer's GUI thread.

As SlicerMONAIAuto3DSeg does for inference: the input node's voxels and geometry go to a
temporary NRRD, a ``PythonSlicer`` process runs ``hrinet interpolate`` on it, the panel polls the
job on a timer (progress from the first second: reading and loading the model are visible
phases), cancel ends the whole process tree, and the result node is created only on success, so
a cancelled or failed job leaves the scene as it was. The job reads the command's
machine-readable events (``--progress jsonl``, :mod:`hrinet.cli.events`), never its human lines.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

from hrinet.cli.events import parse as parse_event
from hrinet.core.constants import CLASSICAL_METHODS
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume

from .logic import export_nrrd, node_from_volume, plan_for_node
from .process import BackgroundProcess, python_executable


class InterpolationJob:
    """``hrinet interpolate`` on one volume node in a background process.

    Args:
        input_node: the scalar volume node; never modified.
        factor, target_spacing, method, thickness: as for :func:`hrinet.upsample_z`; the plan
            is made (and validated) here, before anything starts.
        weights, device: for learned methods.
        name: name of the result node (default ``"<input> isotropic"``).
    """

    def __init__(self, input_node, factor: Optional[int] = None,
                 target_spacing: Optional[float] = None, method: str = "hrinet",
                 weights: Optional[str] = None, device: str = "auto",
                 thickness: Optional[float] = None, name: Optional[str] = None):
        self.input_node = input_node
        self.plan = plan_for_node(input_node, factor, target_spacing, method, thickness)
        self.weights, self.device, self.thickness = weights, device, thickness
        self.name = name or f"{input_node.GetName()} isotropic"
        self.proc = BackgroundProcess()
        self.folder: Optional[Path] = None

    def command(self) -> list:
        folder = self.folder
        cmd = [python_executable(), "-m", "hrinet.cli", "--progress", "jsonl", "interpolate",
               str(folder / "in.nrrd"),
               str(folder / "out.nrrd"), "--factor", str(self.plan.factor),
               "--method", self.plan.method]
        if self.plan.method not in CLASSICAL_METHODS:
            cmd += ["--device", self.device] + (["--weights", str(self.weights)]
                                                 if self.weights else [])
        if self.thickness is not None:
            cmd += ["--thickness", str(self.thickness)]
        return cmd

    def start(self) -> None:
        """Write the input to a temporary NRRD and start the process (returns at once)."""
        if self.running():
            raise HRINetError("an interpolation is already running; cancel it first")
        self.folder = Path(tempfile.mkdtemp(prefix="hrinet-interpolate-"))
        export_nrrd(self.input_node, self.folder / "in.nrrd")
        self.proc.start(self.command(), self.folder / "job.log")

    def running(self) -> bool:
        return self.proc.running()

    def _lines(self):
        try:
            return (self.folder / "job.log").read_text(errors="replace").splitlines()
        except (OSError, TypeError):
            return []

    def poll(self) -> dict:
        """``{"running", "returncode", "phase", "done", "total", "error"}`` for the panel."""
        events = [e for e in map(parse_event, self._lines()) if e is not None]
        info = {"running": self.running(), "returncode": self.proc.returncode, "done": 0,
                "total": self.plan.input_slices - 1,
                "phase": "reading the volume and loading the model", "error": None}
        errors = []
        for e in events:
            if e["event"] == "plan":
                info["phase"] = "interpolating"
            elif e["event"] == "progress":
                info["done"], info["total"] = int(e["done"]), int(e["total"])
            elif e["event"] == "wrote":
                info["phase"] = "done"
            elif e["event"] == "error":
                errors.append(e["message"])
        if info["returncode"] not in (None, 0):
            info["phase"] = "failed"
            info["error"] = (errors or ["the interpolation process failed (see its log: "
                                        f"{self.folder / 'job.log' if self.folder else '?'})"])[-1]
        return info

    def cancel(self, timeout: float = 10) -> None:
        """End the process and everything it started; nothing is added to the scene."""
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
        finally:
            self.cleanup()
        node = node_from_volume(result, self.name, scene or self.input_node.GetScene())
        src, dst = self.input_node.GetDisplayNode(), node.GetDisplayNode()
        if src is not None and dst is not None:  # the input's window/level
            dst.SetAutoWindowLevel(False)
            dst.SetWindowLevel(src.GetWindow(), src.GetLevel())
        return node

    def cleanup(self) -> None:
        self.proc.running()  # closes the log of a process that has ended
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
