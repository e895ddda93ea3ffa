"""MRML volume nodes to and from :class:`hrinet.Volume`, and the module's operations.

No Qt here: the widget calls these functions, and the tests call them against the real MRML
library. Slicer works in RAS, ITK/NRRD files and ``hrinet`` in LPS; the conversion flips the
first two axes of the origin and of the direction matrix (``diag(-1, -1, 1)``), which is its own
inverse.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import slicer
import slicer.util
import vtk
from hrinet import Volume, upsample_z
from hrinet.cli.events import parse as parse_event
from hrinet.core.constants import DEFAULT_VARIANT
from hrinet.core.errors import HRINetError
from hrinet.core.io import write_volume
from hrinet.training.options import STOP_FILE, train_argv

from .process import BackgroundProcess, python_executable

LPS_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_from_ras(m: np.ndarray) -> np.ndarray:
    """Convert a 3-vector or 3x3 matrix between RAS and LPS (the same flip both ways)."""
    return LPS_RAS @ np.asarray(m, dtype=np.float64)


def _scene(scene=None):
    scene = scene if scene is not None else getattr(slicer, "mrmlScene", None)
    if scene is None:
        raise HRINetError("no MRML scene: pass scene= outside the Slicer application")
    return scene


def volume_from_node(node) -> Volume:
    """The node's voxels (a copy: the input is never touched) and geometry, in LPS."""
    if node is None or not node.IsA("vtkMRMLScalarVolumeNode"):
        raise HRINetError("select a scalar volume (not a label map, vector or segmentation)")
    if node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise HRINetError(f"{node.GetName()} is a label map; interpolation needs an intensity "
                          "volume (resample label maps with nearest neighbour instead)")
    image = node.GetImageData()
    if image is None:
        raise HRINetError(f"{node.GetName()} has no image data")
    if image.GetNumberOfScalarComponents() != 1:
        raise HRINetError(f"{node.GetName()} has {image.GetNumberOfScalarComponents()} "
                          "components; convert it to a single-channel volume first")
    if node.GetParentTransformNode() is not None:
        raise HRINetError(f"{node.GetName()} is under a transform; harden the transform first "
                          "(Data module: right-click > Harden transform)")
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASDirectionMatrix(m)
    direction_ras = np.array([[m.GetElement(r, c) for c in range(3)] for r in range(3)])
    return Volume(array=array, spacing=tuple(node.GetSpacing()),
                  origin=tuple(lps_from_ras(node.GetOrigin())),
                  direction=lps_from_ras(direction_ras),
                  metadata={"source": node.GetName(), "warnings": []})


def node_from_volume(volume: Volume, name: str, scene=None):
    """A new scalar volume node holding ``volume`` (converted back to RAS) in ``scene``."""
    scene = _scene(scene)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    node.SetSpacing(*volume.spacing)
    node.SetOrigin(*lps_from_ras(volume.origin))
    d = lps_from_ras(volume.direction)
    m = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            m.SetElement(r, c, d[r, c])
    node.SetIJKToRASDirectionMatrix(m)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array))
    node.CreateDefaultDisplayNodes()
    return node


def plan_for_node(node, factor: Optional[int] = None, target_spacing: Optional[float] = None,
                  method: str = "hrinet", thickness: Optional[float] = None):
    """The engine's :class:`hrinet.Plan` from the node's header alone (no voxel copy), so the
    panel can show it on every change of the controls."""
    from hrinet.methods.engine import make_plan

    if node is None or node.GetImageData() is None:
        raise HRINetError("select a scalar volume")
    nz = node.GetImageData().GetDimensions()[2]
    return make_plan(nz, node.GetSpacing(), factor, target_spacing, method, thickness)


def interpolate_node(input_node, factor: Optional[int] = None,
                     target_spacing: Optional[float] = None, method: str = "hrinet",
                     weights: Optional[str] = None, device: str = "auto",
                     progress: Optional[Callable[[int, int], None]] = None,
                     cancel: Optional[Callable[[], bool]] = None, scene=None,
                     name: Optional[str] = None, thickness: Optional[float] = None):
    """Upsample ``input_node`` along z into a NEW node ``"<input> isotropic"``.

    The input node is never modified. Returns ``(output_node, seconds)``.
    """
    plan = plan_for_node(input_node, factor, target_spacing, method, thickness)  # as shown
    volume = volume_from_node(input_node)
    start = time.perf_counter()
    result = upsample_z(volume, plan=plan, device=device, weights=weights or None,
                        progress=progress, cancel=cancel)
    seconds = time.perf_counter() - start
    node = node_from_volume(result, name or f"{input_node.GetName()} isotropic", scene or
                            input_node.GetScene())
    # Keep the input's window/level so the result looks the same in the views.
    src_disp, dst_disp = input_node.GetDisplayNode(), node.GetDisplayNode()
    if src_disp is not None and dst_disp is not None:
        dst_disp.SetAutoWindowLevel(False)
        dst_disp.SetWindowLevel(src_disp.GetWindow(), src_disp.GetLevel())
    return node, seconds


def export_nrrd(node, path, overwrite: bool = False) -> Path:
    """Save ``node`` as compressed NRRD, atomically (what ``hrinet.core.io`` reads back exactly)."""
    return write_volume(volume_from_node(node), path, overwrite=overwrite, compress=True)


def default_runs_folder() -> Path:
    """Where fine-tuning runs go unless the user picks a folder: under Slicer's settings
    directory (kept across sessions), not the temporary directory."""
    app = getattr(slicer, "app", None)
    base = Path(app.slicerUserSettingsFilePath).parent if app is not None else \
        Path.home() / ".hrinet"
    return base / "HRINetSlicer" / "runs"


REQUIREMENTS = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"


def requirements_for(need: str) -> List[str]:
    """The requirement strings of ``Resources/requirements.txt`` that ``need`` uses: "classical"
    (linear, cubic: none beyond Slicer), "flow" (OpenCV) or "learned" (everything)."""
    out = []
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        requirement, _, needs = line.partition("#")
        if requirement.strip() and need in needs.split():
            out.append(requirement.strip())
    return out


def missing_requirements(requirements: Sequence[str]) -> List[str]:
    """Those of ``requirements`` whose distribution is not installed (versions not compared:
    an older one is the user's choice)."""
    import re
    from importlib.metadata import PackageNotFoundError, version

    missing = []
    for req in requirements:
        name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0]
        try:
            version(name)
        except PackageNotFoundError:
            missing.append(req)
    return missing


class TrainingJob:
    """``hrinet train`` in a background process, as SlicerTotalSegmentator runs its jobs.

    The GUI stays responsive: it polls :meth:`poll` on a timer for progress and losses.
    :meth:`stop` sends SIGTERM, on which the trainer saves a checkpoint; :meth:`start` with
    ``resume=True`` continues it.
    """

    def __init__(self, out_dir, volume_nodes: Sequence = (), variant: str = DEFAULT_VARIANT,
                 iterations: int = 500, crop: int = 128, batch: int = 4,
                 init_weights: Optional[str] = None, device: str = "auto",
                 volume_paths: Sequence[str] = ()):
        self.out = Path(out_dir)
        self.variant, self.iterations, self.crop, self.batch = variant, iterations, crop, batch
        self.init_weights, self.device = init_weights, device
        self.paths: List[str] = list(volume_paths)
        self._nodes = list(volume_nodes)
        self.proc = BackgroundProcess()
        self.started_at = 0.0

    def _export_inputs(self) -> List[str]:
        data = self.out / "inputs"
        data.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, node in enumerate(self._nodes):
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in node.GetName())
            p = data / f"{i:02d}-{safe}.nrrd"
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
        cmd = [python_executable(), "-m", "hrinet.cli", "--progress", "jsonl", "train",
               *train_argv(**settings),
               "--out", str(self.out)]
        return cmd + (["--resume"] if resume else [])

    def start(self, resume: bool = False) -> None:
        if self.running():
            raise HRINetError("a training job is already running; stop it first")
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / STOP_FILE).unlink(missing_ok=True)  # an old request must not stop this run
        self.clear_previous_result()
        self.started_at = time.time()
        self.proc.start(self.command(resume), self.out / "job.log", append=True)

    def clear_previous_result(self) -> None:
        """Nothing here before: a training run's weights are judged by their time instead."""

    def running(self) -> bool:
        return self.proc.running()

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
            import csv

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
        if info["returncode"] not in (None, 0):  # the command's error event, not its wording
            try:
                lines = (self.out / "job.log").read_text(errors="replace").splitlines()
            except OSError:
                lines = []
            errors = [e["message"] for e in map(parse_event, lines)
                      if e is not None and e["event"] == "error"]
            info["error"] = (errors or [f"the job failed (see {self.out / 'job.log'})"])[-1]
        return info

    def weights_path(self) -> Path:
        return self.out / f"{self.variant}.safetensors"

    def stop(self, timeout: float = 60) -> None:
        """Ask the trainer to checkpoint and exit, then wait for it: a STOP file that it polls
        every step (works on Windows, where SIGTERM would end it without a checkpoint), and
        SIGTERM as well where it can be caught."""
        if not self.running():
            return
        (self.out / STOP_FILE).write_text("stop\n")
        self.proc.end(timeout, terminate=os.name != "nt")


class AdaptJob(TrainingJob):
    """``hrinet adapt`` in a background process: fine-tuning on the input case, kept only if
    it wins on held-out slices of that case (:mod:`hrinet.training.adapt`)."""

    def command(self, resume: bool = False) -> List[str]:
        if not self.paths:
            self.paths = self._export_inputs()
        cmd = [python_executable(), "-m", "hrinet.cli", "--progress", "jsonl", "adapt",
               self.paths[0], "--out",
               str(self.out), "--iterations", str(self.iterations), "--device", self.device]
        if self.init_weights:
            cmd += ["--weights", str(self.init_weights)]
        return cmd

    def result(self) -> Optional[dict]:
        """``adapt.json`` once the job is done: the held-out comparison and what was kept."""
        try:
            return json.loads((self.out / "adapt.json").read_text())
        except (OSError, ValueError):
            return None

    def clear_previous_result(self) -> None:
        """An earlier verdict must not pass for this job's (a failed job would show it)."""
        (self.out / "adapt.json").unlink(missing_ok=True)

    def poll(self) -> dict:
        info = super().poll()
        result = self.result()
        if result is not None and info["returncode"] == 0:
            info["adaptation"] = result
            info["weights"] = result["weights"]
        return info

    def weights_path(self) -> Path:
        result = self.result()
        return Path(result["weights"]) if result else self.out / "hrinet-adapted.safetensors"


def adapt_job(out_dir, node, iterations: int = 200, crop: int = 128,
              weights: Optional[str] = None, device: str = "auto") -> AdaptJob:
    """"Adapt to this case": conservative fine-tuning on the input volume's own slices,
    guarded by held-out slices of the same case (:mod:`hrinet.training.adapt`); the panel then selects
    the adapted weights, or the starting model when adaptation did not help."""
    from hrinet.learned.weights import DEFAULT_NAME, find_weights, read_metadata

    init = weights or find_weights(DEFAULT_NAME)
    if init is None:
        raise HRINetError("no default weights to adapt; choose a weights file")
    variant = read_metadata(init)["variant"]
    return AdaptJob(out_dir, [node], variant=variant, iterations=iterations, crop=crop,
                    init_weights=str(init), device=device)
