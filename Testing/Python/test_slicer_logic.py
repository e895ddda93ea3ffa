"""The Slicer module's logic against the real MRML library (PyPI slicer-core), no mocks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import slicer  # the real MRML library from the PyPI package slicer-core (test extra)
import vtk

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "HRINetSlicer"))

from hrinet.core.errors import Cancelled, HRINetError  # noqa: E402
from hrinet.core.io import read_volume  # noqa: E402
from HRINetSlicerLib.jobs import TrainingJob  # noqa: E402
from HRINetSlicerLib.mrml import (  # noqa: E402
    export_nrrd,
    interpolate_node,
    node_from_volume,
    plan_for_node,
    volume_from_node,
)


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def ijk_to_ras(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


@pytest.fixture
def thick_node(scene, oblique_phantom):
    return node_from_volume(oblique_phantom, "thick", scene)


def test_node_to_volume_to_node_keeps_ijk_to_ras_and_voxels(scene, thick_node):
    vol = volume_from_node(thick_node)
    again = node_from_volume(vol, "again", scene)
    np.testing.assert_allclose(ijk_to_ras(again), ijk_to_ras(thick_node), atol=1e-9)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(again),
                                  slicer.util.arrayFromVolume(thick_node))


def test_volume_geometry_is_lps_like_itk(thick_node, oblique_phantom):
    """Voxel (i, j, k) is at the same physical point in Slicer (RAS) and in hrinet (LPS)."""
    vol = volume_from_node(thick_node)
    ras = ijk_to_ras(thick_node) @ np.array([3, 4, 5, 1.0])
    lps = vol.index_to_physical((3, 4, 5))
    np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-9)
    np.testing.assert_allclose(lps, oblique_phantom.index_to_physical((3, 4, 5)), atol=1e-9)


def test_interpolate_creates_a_new_node_and_keeps_known_slices_in_place(scene, thick_node):
    before = slicer.util.arrayFromVolume(thick_node).copy()
    before_matrix = ijk_to_ras(thick_node)
    nodes_before = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    out, seconds = interpolate_node(thick_node, factor=3, method="linear")
    assert out.GetName() == "thick isotropic" and out is not thick_node
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == nodes_before + 1
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(thick_node), before)
    np.testing.assert_array_equal(ijk_to_ras(thick_node), before_matrix)
    a = slicer.util.arrayFromVolume(out)
    np.testing.assert_array_equal(a[::3], before)
    m_in, m_out = ijk_to_ras(thick_node), ijk_to_ras(out)
    for k in range(before.shape[0]):
        np.testing.assert_allclose(m_out @ [7, 2, 3 * k, 1], m_in @ [7, 2, k, 1], atol=1e-9)
    assert out.GetDisplayNode() is not None and seconds >= 0


def test_cancel_leaves_the_scene_unchanged(scene, thick_node):
    n = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    with pytest.raises(Cancelled):
        interpolate_node(thick_node, factor=2, method="cubic", cancel=lambda: True)
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n


def test_label_maps_are_refused(scene):
    lab = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "seg")
    slicer.util.updateVolumeFromArray(lab, np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(HRINetError, match="label map"):
        volume_from_node(lab)


def test_export_writes_nrrd_that_hrinet_and_slicer_read_back_identically(tmp_path, scene,
                                                                       thick_node):
    out, _ = interpolate_node(thick_node, factor=2, method="linear")
    path = export_nrrd(out, tmp_path / "iso.nrrd")
    back = read_volume(path)
    vol = volume_from_node(out)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.spacing, vol.spacing, rtol=1e-6)
    np.testing.assert_allclose(back.origin, vol.origin, atol=1e-5)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-6)
    # Slicer's own NRRD reader places the file exactly where the node was.
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    loaded = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "loaded")
    assert storage.ReadData(loaded)
    np.testing.assert_allclose(ijk_to_ras(loaded), ijk_to_ras(out), atol=1e-5)
    with pytest.raises(HRINetError, match="exists"):
        export_nrrd(out, path)


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
    out, _ = interpolate_node(thin, factor=2, method="hrinet", weights=info["weights"])
    assert slicer.util.arrayFromVolume(out).shape[0] == 31


@pytest.mark.slow
def test_adapt_to_this_case_runs_the_guarded_adaptation_on_the_input_volume(tmp_path, scene):
    from hrinet.core.phantom import make_phantom
    from hrinet.learned.models import ModelConfig
    from hrinet.learned.variants import build_generator
    from hrinet.learned.weights import save_weights
    from HRINetSlicerLib.jobs import adapt_job

    start = save_weights(build_generator(ModelConfig.for_variant("hrinet-flow")),
                         tmp_path / "start.safetensors", {"training": {}})
    thick = node_from_volume(make_phantom(size=(64, 64, 24), spacing=(3, 3, 6)), "case", scene)
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

    from HRINetSlicerLib.jobs import AdaptJob

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
    assert info["returncode"] not in (None, 0) and "does not exist" in info["error"]
    assert not info["error"].startswith("hrinet:")  # the error event, not the human line
    assert info["weights"] is None and "adaptation" not in info
    assert old.read_text() == "an earlier run's weights"


def test_a_node_under_a_transform_is_refused_until_hardened(scene, thick_node):
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "t")
    thick_node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(HRINetError, match="harden the transform"):
        volume_from_node(thick_node)


def test_the_panel_plan_from_the_header_matches_the_engine(thick_node):
    from hrinet.methods.engine import plan_upsampling

    vol = volume_from_node(thick_node)
    for kw in ({}, {"factor": 3}, {"target_spacing": 1.25}):
        assert plan_for_node(thick_node, method="linear", **kw) == plan_upsampling(
            vol, method="linear", **kw)
    with pytest.raises(HRINetError, match="not finer"):
        plan_for_node(thick_node, target_spacing=50)


def _wait(job, until, timeout=120):
    start = time.time()
    while time.time() - start < timeout:
        info = job.poll()
        if until(info):
            return info
        time.sleep(0.1)
    raise AssertionError(f"timed out: {job.poll()}")


@pytest.mark.slow
def test_interpolation_runs_in_the_background_cancels_cleanly_then_matches_the_cli(scene,
                                                                                 tmp_path):
    import os
    import subprocess

    from hrinet.core.phantom import make_phantom
    from HRINetSlicerLib.jobs import InterpolationJob

    big = make_phantom(size=(320, 320, 40), spacing=(1.0, 1.0, 5.0), seed=3)
    node = node_from_volume(big, "thick", scene)
    before = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")

    job = InterpolationJob(node, factor=6, method="flow")
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

    job = InterpolationJob(node, factor=3, method="cubic")
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
    job = InterpolationJob(node, factor=2, method="hrinet", weights="/nonexistent.safetensors")
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
    from HRINetSlicerLib.jobs import default_runs_folder

    folder = default_runs_folder()
    assert folder.parts[-2:] == ("HRINetSlicer", "runs")
    assert "tmp" not in folder.parts and "Temp" not in folder.parts


def test_dependencies_are_asked_for_per_need_from_the_requirements_file():
    from HRINetSlicerLib.requirements import missing_requirements, requirements_for

    assert requirements_for("classical") == []  # linear and cubic: nothing beyond Slicer
    assert requirements_for("flow") == ["opencv-python-headless>=4.8"]
    learned = requirements_for("learned")
    assert set(requirements_for("flow")) < set(learned) and "safetensors>=0.4" in learned
    declared = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    for req in learned:  # the same pins as the library declares
        assert f'"{req}"' in declared, req
    assert missing_requirements(learned) == []  # all installed in the test environment
    assert missing_requirements(["surely-not-installed-pkg>=1"]) == ["surely-not-installed-pkg>=1"]


def _panel_fields() -> dict:
    import ast

    tree = ast.parse((REPO / "HRINetSlicer" / "HRINetSlicerLib" / "parameters.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef)
               and n.name == "HRINetSlicerParameterNode")
    return {a.target.id: ast.unparse(a.annotation) for a in cls.body if isinstance(a, ast.AnnAssign)}


def test_every_panel_setting_comes_back_from_a_saved_scene(tmp_path, scene, thick_node):
    """The parameter node's fields, stored as Slicer's parameterNodeWrapper stores them (values
    as strings, volumes as node references), survive writing the scene and reading it back."""
    fields = _panel_fields()
    assert len(fields) >= 14  # every setting of every section, not only the interpolation ones
    values = {"str": "cubic", "int": "1234", "float": "0.75", "Path": str(tmp_path / "w.nrrd"),
              "bool": "True"}
    params = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    params.SetName("HRINetSlicer")
    for name, kind in fields.items():
        if kind.startswith("vtkMRML"):
            params.SetNodeReferenceID(name, thick_node.GetID())
        else:
            params.SetParameter(name, values[kind] + name)  # distinct per field
    scene.SetURL(str(tmp_path / "settings.mrml"))
    assert scene.Commit()
    again = slicer.vtkMRMLScene()
    again.SetURL(str(tmp_path / "settings.mrml"))
    assert again.Connect()
    back = again.GetFirstNodeByName("HRINetSlicer")
    for name, kind in fields.items():
        if kind.startswith("vtkMRML"):
            assert back.GetNodeReference(name).GetName() == "thick", name
        else:
            assert back.GetParameter(name) == values[kind] + name, name


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


def test_the_acquired_slices_are_kept_unless_the_slab_checkbox_asks_to_restore_them(thick_node):
    from hrinet.methods.engine import make_plan
    from HRINetSlicerLib.mrml import dicom_thickness
    from HRINetSlicerLib.targets import (
        RESTORE_HOW,
        default_slab_thickness,
        interpolation_target,
    )

    kept = interpolation_target("factor", 3, 1.0, restore_slabs=False, thickness=5.0)
    assert kept == {"thickness": None, "factor": 3}
    assert plan_for_node(thick_node, method="hrinet", **kept).slab_ratio == 0
    restored = interpolation_target("factor", 3, 1.0, restore_slabs=True, thickness=5.0)
    assert plan_for_node(thick_node, method="hrinet", **restored).slab_ratio > 0
    assert interpolation_target("spacing", 3, 0.7, False, 0.0)["target_spacing"] == 0.7
    # a node that did not come through Slicer's DICOM database: the checkbox starts from the
    # slice spacing (contiguous slabs)
    assert dicom_thickness(thick_node) is None
    assert default_slab_thickness(thick_node) == thick_node.GetSpacing()[2]
    # with a DICOM thickness, the plan line names the checkbox, not a command-line option
    plan = make_plan(20, (0.7, 0.7, 5.0), 5, None, "hrinet", None, 5.0)
    line = plan.describe(restore_how=RESTORE_HOW)
    assert "check 'Restore the acquired slices' (5 mm)" in line and "--thickness" not in line
