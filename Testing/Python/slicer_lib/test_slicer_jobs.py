"""The Slicer module's background jobs (interpolation, training, adaptation, batch) against the
real MRML library (PyPI slicer-core) and real ``hrinet`` processes, no mocks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import slicer  # the real MRML library from the PyPI package slicer-core (test extra)
from helpers import ijk_to_ras  # noqa: F401

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "HRINetSlicer"))

from hrinet.core.errors import HRINetError  # noqa: E402
from hrinet.core.io import read_volume  # noqa: E402
from hrinet.core.model_options import ModelOptions  # noqa: E402
from HRINetSlicerLib.jobs import interpolate_node  # noqa: E402
from HRINetSlicerLib.training_job import TrainingJob  # noqa: E402
from HRINetSlicerLib.mrml import (  # noqa: E402
    export_nrrd,
    node_from_volume,
)


def run_to_end(job: TrainingJob, timeout: float = 240) -> dict:
    """Start a background job, wait for it as the panel's timer would, return its last poll."""
    job.start()
    deadline = time.time() + timeout
    while job.running() and time.time() < deadline:
        time.sleep(0.5)
    info = job.poll()
    assert info["returncode"] == 0, (job.out / "job.log").read_text()[-2000:]
    return info


@pytest.mark.slow
def test_training_job_runs_in_a_background_process_and_saves_weights(tmp_path, scene):
    from hrinet.core.phantom import make_phantom

    thin = node_from_volume(make_phantom(size=(64, 64, 16), spacing=(3, 3, 2)), "thin", scene)
    job = TrainingJob(tmp_path / "run", [thin], variant="hrinet-plus", iterations=3, crop=64,
                      batch=2, device="cpu")
    info = run_to_end(job)
    assert info["step"] == 3 and info["weights"].endswith("hrinet-plus.safetensors")
    assert [s for s, _ in info["history"]] == [1, 2, 3]
    out, _ = interpolate_node(thin, ModelOptions(factor=2, method="hrinet",
                                                 weights=info["weights"]))
    assert slicer.util.arrayFromVolume(out).shape[0] == 31


def test_adapt_to_this_case_runs_the_guarded_adaptation_on_the_input_volume(tmp_path, scene):
    from hrinet.core.phantom import make_phantom
    from hrinet.learned.models import ModelConfig
    from hrinet.learned.networks import build_generator
    from hrinet.learned.weights import save_weights
    from HRINetSlicerLib.adaptation import adapt_job

    start = save_weights(build_generator(ModelConfig.for_variant("hrinet-flow")),
                         tmp_path / "start.safetensors", {"training": {}})
    thick = node_from_volume(make_phantom(size=(64, 64, 26), spacing=(3, 3, 6)), "case", scene)
    job = adapt_job(tmp_path / "adapt", thick, iterations=2, crop=64, weights=str(start),
                    device="cpu")
    assert "adapt" in job.command() and job.variant == "hrinet-flow"
    info = run_to_end(job)
    result = info["adaptation"]
    assert result["case"] == "00-case" and result["holdout_slices"] >= 9
    # whatever the guard decided, the panel is handed weights that exist
    assert info["weights"] == result["weights"] and Path(info["weights"]).is_file()


@pytest.mark.parametrize("kind", ["training", "adaptation"])
def test_a_failed_job_selects_nothing_not_an_earlier_runs_weights_or_verdict(tmp_path, kind):
    import json

    from HRINetSlicerLib.adaptation import AdaptJob

    out = tmp_path / "run"
    out.mkdir()
    old = out / "hrinet-flow.safetensors"
    old.write_text("an earlier run's weights")
    (out / "adapt.json").write_text(json.dumps({"weights": str(old), "kept": "adapted"}))
    missing = str(tmp_path / "no-such-volume.nrrd")  # the job fails at once: one line, exit 2
    job = (TrainingJob if kind == "training" else AdaptJob)(
        out, variant="hrinet-flow", iterations=2, device="cpu", volume_paths=[missing])
    job.start()
    deadline = time.time() + 120
    while job.running() and time.time() < deadline:
        time.sleep(0.2)
    info = job.poll()
    assert info["returncode"] not in (None, 0)
    assert ("does not exist" in info["error"]  # the volume, or (training) the earlier weights
            or "which a new run would replace" in info["error"]), info["error"]
    assert not info["error"].startswith("hrinet:")  # the error event, not the human line
    assert info["weights"] is None and "adaptation" not in info
    assert old.read_text() == "an earlier run's weights"


def _wait(job, until, timeout=120):
    start = time.time()
    while time.time() - start < timeout:
        info = job.poll()
        if until(info):
            return info
        time.sleep(0.1)
    raise AssertionError(f"timed out: {job.poll()}")


def test_interpolation_runs_in_the_background_cancels_cleanly_then_matches_the_cli(scene,
                                                                                 tmp_path):
    import os
    import subprocess

    from hrinet.core.phantom import make_phantom
    from HRINetSlicerLib.jobs import InterpolationJob

    big = make_phantom(size=(320, 320, 40), spacing=(1.0, 1.0, 5.0), seed=3)
    node = node_from_volume(big, "thick", scene)
    before = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")

    job = InterpolationJob(node, ModelOptions(factor=6, method="flow"))
    job.start()
    first = job.poll()
    assert first["running"] and first["phase"] == "reading the volume and loading the model"
    seen = _wait(job, lambda i: i["phase"] == "interpolating" and i["done"] > 0)
    assert 0 < seen["done"] < seen["total"] == 39
    pid, folder = job.proc.popen.pid, job.folder
    job.cancel()
    with pytest.raises(ProcessLookupError):  # the process and its group are gone
        os.killpg(pid, 0)
    assert not folder.exists()
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == before

    job = InterpolationJob(node, ModelOptions(factor=3, method="cubic"))
    job.start()
    _wait(job, lambda i: not i["running"])
    result = job.finish()
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == before + 1

    export_nrrd(node, tmp_path / "in.nrrd")
    r = subprocess.run([sys.executable, "-m", "hrinet.cli", "interpolate",
                        str(tmp_path / "in.nrrd"), str(tmp_path / "cli.nrrd"), "--factor", "3",
                        "--method", "cubic"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cli = node_from_volume(read_volume(tmp_path / "cli.nrrd"), "cli", scene)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(result),
                                  slicer.util.arrayFromVolume(cli))
    np.testing.assert_allclose(ijk_to_ras(result), ijk_to_ras(cli), atol=1e-9)


def test_a_failed_background_interpolation_reports_the_one_line_and_adds_nothing(scene):
    from hrinet.core.phantom import make_phantom
    from HRINetSlicerLib.jobs import InterpolationJob

    node = node_from_volume(make_phantom(size=(32, 32, 4), spacing=(1, 1, 3)), "t", scene)
    before = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    job = InterpolationJob(node, ModelOptions(factor=2, method="hrinet",
                                              weights="/nonexistent.safetensors"))
    job.start()
    info = _wait(job, lambda i: not i["running"])
    assert info["phase"] == "failed" and "does not exist" in info["error"]
    with pytest.raises(HRINetError, match="does not exist"):
        job.finish()
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == before


def test_the_interpolation_job_reads_events_not_the_human_lines():
    """The command's wording may change for people; the panel reads --progress jsonl events."""
    import inspect

    from HRINetSlicerLib import jobs

    source = inspect.getsource(jobs)  # every job of the panel: interpolation, training, adapt
    assert "--progress" in source and "parse_event" in source
    for human in ("hrinet: error", "interpolating:", "wrote ", "re.compile", "[-1:]"):
        assert human not in source, human


def test_the_commands_warnings_reach_the_panels_status_line_once_each(scene, tmp_path):
    """A warning the command gives (a slow precision, a reading doubt) is in the job's poll and
    on the status line, each once, whether it came at the start or at the end."""
    from hrinet.cli.events import Event, Events
    from hrinet.core.phantom import make_phantom
    from HRINetSlicerLib.jobs import InterpolationJob, warning_words

    node = node_from_volume(make_phantom(size=(16, 16, 4), spacing=(1, 1, 3)), "thick", scene)
    job = InterpolationJob(node, ModelOptions(factor=2, method="hrinet"))
    job.folder = tmp_path
    with open(job.log_path, "w") as log:  # the log as the command writes it
        events = Events(enabled=True, stream=log)
        print("hrinet: warning: bf16 is slow here", file=log)  # a line for people: not read
        events.emit(Event.WARNING, message="bf16 is slow here")
        events.emit(Event.PLAN, factor=2, input_slices=4, output_slices=7, method="hrinet",
                    description="x2")
        events.emit(Event.WARNING, message="bf16 is slow here")
        events.emit(Event.WARNING, message="uneven gaps")
    info = job.poll()
    assert info["warnings"] == ["bf16 is slow here", "uneven gaps"]
    assert warning_words(info["warnings"]) == " (warning: bf16 is slow here; uneven gaps)"
    assert warning_words([]) == ""


@pytest.mark.slow  # 11-15 s on two busy workers
def test_stopping_a_training_job_saves_a_checkpoint_through_the_stop_file(tmp_path, scene):
    """The stop file works where SIGTERM cannot be caught (Windows); the job's log is closed."""
    from hrinet.core.phantom import make_phantom
    from hrinet.training.options import STOP_FILE
    from HRINetSlicerLib.process import library_env

    node = node_from_volume(make_phantom(size=(64, 64, 24), spacing=(1, 1, 1), seed=2), "t",
                            scene)
    job = TrainingJob(tmp_path / "run", [node], variant="hrinet-flow", iterations=100000,
                      crop=64, batch=1)
    job.start()
    _wait(job, lambda i: i.get("step", 0) > 0, timeout=180)
    (tmp_path / "run" / STOP_FILE).write_text("stop\n")  # what stop() writes first
    job.proc.popen.wait(120)
    assert (tmp_path / "run" / "checkpoint.safetensors").is_file()
    assert not (tmp_path / "run" / STOP_FILE).exists()  # consumed: a resume runs on
    assert not job.running() and not job.proc.log_open
    assert "" not in library_env()["PYTHONPATH"].split(__import__("os").pathsep)


def test_fine_tune_runs_default_to_a_folder_that_outlives_the_session():
    from HRINetSlicerLib.training_job import default_runs_folder

    folder = default_runs_folder()
    assert folder.parts[-2:] == ("HRINetSlicer", "runs")
    assert "tmp" not in folder.parts and "Temp" not in folder.parts


def test_background_jobs_run_pythonslicer_beside_slicer_or_say_it_is_missing(tmp_path,
                                                                              monkeypatch):
    """Inside Slicer, sys.executable is the application, not a Python: the jobs run the
    PythonSlicer beside it, and say in one line when the installation lacks it."""
    from HRINetSlicerLib.process import python_executable

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    app = tmp_path / "bin" / "SlicerApp-real"
    app.parent.mkdir()
    app.write_text("")
    monkeypatch.setattr(sys, "executable", str(app))
    with pytest.raises(HRINetError, match="PythonSlicer was not found.*reinstall Slicer"):
        python_executable()
    (app.parent / "PythonSlicer").write_text("")
    assert python_executable() == str(app.parent / "PythonSlicer")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))  # outside Slicer
    assert python_executable() == str(tmp_path / "python3")


def test_a_batch_from_the_panel_runs_in_the_background_and_shows_every_case(tmp_path):
    """The panel's Batch section: the command's progress events and its results table; a bad
    case is a row with its reason, not a failed batch."""
    from hrinet.core.io import write_volume
    from hrinet.core.phantom import make_phantom
    from HRINetSlicerLib.batch_job import BatchJob

    cohort = tmp_path / "cohort"
    (cohort / "b").mkdir(parents=True)
    write_volume(make_phantom(size=(48, 48, 6), spacing=(1, 1, 3), seed=1), cohort / "a.nrrd")
    write_volume(make_phantom(size=(48, 48, 5), spacing=(1, 1, 2), seed=2), cohort / "b" / "c.nii.gz")
    (cohort / "broken.nrrd").write_text("NRRD0004\ntype: short\n")  # a damaged file
    job = BatchJob(cohort, tmp_path / "iso", ModelOptions(method="cubic", factor=2))
    job.start()
    info = _wait(job, lambda i: not i["running"], timeout=180)
    assert info["error"] is None and info["returncode"] == 1  # ended; one case failed
    assert (info["done"], info["total"], info["failed"]) == (3, 3, 1)
    status = {r["input"]: r["status"] for r in info["rows"]}
    assert status == {"a.nrrd": "ok", "b/c.nii.gz": "ok", "broken.nrrd": "failed"}
    assert (tmp_path / "iso" / "a.nrrd").is_file() and (tmp_path / "iso" / "b" / "c.nrrd").is_file()
    with pytest.raises(HRINetError, match="other than the input folder"):
        BatchJob(cohort, cohort).start()
    again = BatchJob(cohort, tmp_path / "iso", ModelOptions(method="cubic", factor=2))
    again.start()  # resumable: what is done is skipped
    assert _wait(again, lambda i: not i["running"], timeout=180)["done"] == 3


def test_the_panel_downloads_a_model_only_through_the_verified_command(tmp_path, monkeypatch):
    """Download runs `hrinet models --get` in the background: a present model is reported
    without fetching; an unknown one is the command's one line; nothing is missing here."""
    from HRINetSlicerLib.download_job import DownloadJob, missing_models

    monkeypatch.setenv("HRINET_CACHE", str(tmp_path / "cache"))
    assert missing_models() == []  # a checkout holds every model of the catalog
    job = DownloadJob("acai", source=str(tmp_path / "no-assets"))
    job.start()
    info = _wait(job, lambda i: not i["running"])
    assert info["error"] is None and info["path"].endswith("hrinet-variant-acai.safetensors")
    assert not (tmp_path / "cache").exists()  # present and intact: nothing fetched
    job.cleanup()
    job = DownloadJob("no-such-model")
    job.start()
    info = _wait(job, lambda i: not i["running"])
    assert "no model 'no-such-model'" in info["error"] and info["path"] is None
    job.cleanup()


def test_a_node_name_becomes_one_safe_file_name_part():
    """The adapt folder and exported inputs are named after the node: never a path."""
    from HRINetSlicerLib.training_job import safe_name

    assert safe_name("../../etc") == "______etc" and safe_name("a/b c") == "a_b_c"
    assert safe_name("") == "volume" and safe_name("CT-1_a") == "CT-1_a"


def test_an_interpolation_that_cannot_start_leaves_no_temporary_copy(scene, thick_node,
                                                                     monkeypatch):
    """The input is exported to a temporary folder first: a failed start removes it (it held
    a full copy of the volume), and says why in one line."""
    import tempfile

    import HRINetSlicerLib.jobs as jobs

    before = set(Path(tempfile.gettempdir()).glob("hrinet-interpolate-*"))
    monkeypatch.setattr(jobs, "python_executable", lambda: "/nonexistent/PythonSlicer")
    job = jobs.InterpolationJob(thick_node, ModelOptions(factor=2, method="linear"))
    with pytest.raises(HRINetError, match="cannot start /nonexistent/PythonSlicer"):
        job.start()
    assert set(Path(tempfile.gettempdir()).glob("hrinet-interpolate-*")) == before
    assert job.folder is None and not job.running()
