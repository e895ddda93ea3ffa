"""Every output says how it was made: software, method, model and its sha256, factor, spacing,
input, slab thickness, which slices are acquired and which synthesised; in NRRD, MetaImage and
NIfTI files, read back by `hrinet info`, on Slicer nodes; and a run ends by naming the
synthesised slices with the highest predicted error when the method estimates it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import cli
from hypothesis import given, settings
from hypothesis import strategies as st

from hrinet.cli.events import Events
from hrinet.core.io import read_volume, write_volume
from hrinet.core.io import read_provenance
from hrinet.core.io.provenance.record import record
from hrinet.core.io.provenance.slices import (
    SLICE_ERROR_KEY,
    format_indices,
    parse_indices,
    report_worst_slices,
    slice_roles,
    worst_slices,
)
from hrinet.core.model_options import ModelOptions
from hrinet.methods.engine import upsample_z
from hrinet.methods.planning import plan_upsampling

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def thick(tmp_path_factory):
    from hrinet.core.phantom import make_phantom

    path = tmp_path_factory.mktemp("prov") / "thick.nrrd"
    write_volume(make_phantom(size=(24, 24, 12), spacing=(1.0, 1.0, 4.0), seed=3), path)
    return path


@pytest.mark.parametrize("ext", [".nrrd", ".mha", ".nii", ".nii.gz"])
def test_every_output_format_carries_provenance_that_hrinet_info_reports(thick, tmp_path, ext):
    out = tmp_path / f"iso{ext}"
    r = cli("interpolate", thick, out, "--factor", 4, "--method", "linear")
    assert r.returncode == 0, r.stderr
    rec = read_provenance(out)
    assert rec["method"] == "linear" and rec["factor"] == "4" and rec["input"] == "thick.nrrd"
    assert rec["software"].startswith("hrinet ") and rec["output_slices"] == "45"
    assert rec["acquired_slices"] == "0-44/4"
    assert rec["synthesised_slices"] == "1-41/4,2-42/4,3-43/4"
    assert rec["synthesised_count"] == "33"
    assert rec["spacing_mm"].split() == ["1", "1", "1"]
    info = cli("info", out)
    assert info.returncode == 0, info.stderr
    assert "provenance: interpolated along z by hrinet (33 of 45 slices synthesised)" \
        in info.stdout
    assert "method:             linear" in info.stdout
    assert "input:              thick.nrrd" in info.stdout
    assert "acquired slices:    0-44/4" in info.stdout
    assert np.array_equal(read_volume(out).array[::4], read_volume(thick).array)


def test_the_nrrd_content_field_says_it_is_interpolated(thick, tmp_path):
    out = tmp_path / "iso.nrrd"
    assert cli("interpolate", thick, out, "--factor", 2, "--method", "linear").returncode == 0
    header = out.read_bytes().split(b"\n\n", 1)[0].decode()
    assert "content: interpolated along z by hrinet (11 of 23 slices synthesised)" in header
    assert "hrinet_method:=linear" in header and "hrinet_acquired_slices:=0-22/2" in header


def test_nifti_holds_a_descrip_line_and_the_whole_record_in_a_comment_extension(thick,
                                                                               tmp_path):
    out = tmp_path / "iso.nii.gz"
    assert cli("interpolate", thick, out, "--factor", 3, "--method", "linear").returncode == 0
    raw = gzip.decompress(out.read_bytes())
    descrip = raw[148:228].rstrip(b"\0").decode()
    assert descrip.startswith("hrinet ") and "22 of 34 slices synthesised" in descrip
    assert raw[348] == 1
    size, code = struct.unpack("<ii", raw[352:360])
    assert code == 6 and size % 16 == 0
    found = json.loads(raw[360:352 + size].rstrip(b"\0"))["hrinet_provenance"]
    assert found["acquired_slices"] == "0-33/3"
    offset = int(struct.unpack("<f", raw[108:112])[0])
    assert offset == 352 + size and len(raw) == offset + 24 * 24 * 34 * 2
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))),
                          read_volume(tmp_path / "iso.nii.gz").array)


def test_a_volume_that_is_no_interpolation_is_written_without_provenance(thick, tmp_path):
    write_volume(read_volume(thick), tmp_path / "copy.nrrd")
    assert read_provenance(tmp_path / "copy.nrrd") is None
    assert b"hrinet_" not in (tmp_path / "copy.nrrd").read_bytes()[:2000]


def test_a_result_written_through_the_python_api_alone_still_says_it_is_synthesised(thick,
                                                                                 tmp_path):
    result = upsample_z(read_volume(thick), factor=2, method="cubic")
    write_volume(result, tmp_path / "api.mha")
    rec = read_provenance(tmp_path / "api.mha")
    assert rec["method"] == "cubic" and rec["synthesised_count"] == "11"


class _Learned:
    """What record() reads from a learned interpolator."""

    name = "hrinet"

    def __init__(self, weights: Path):
        self.weights_path = weights
        self.metadata = {"variant": "hrinet-flow"}


def test_the_model_is_recorded_with_its_weights_sha256_and_the_slab_thickness(thick, tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights")
    volume = read_volume(thick)
    plan = plan_upsampling(volume, 2, None, "linear", 6.0)
    result = upsample_z(volume, plan=plan)
    rec = record(result, plan=plan, interpolator=_Learned(weights), input_path=thick)
    assert rec["model"] == "hrinet-flow (model.safetensors)"
    assert rec["model_sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert rec["slab_thickness_mm"] == "6"
    write_volume(result, tmp_path / "m.nrrd")
    assert read_provenance(tmp_path / "m.nrrd")["model_sha256"] == rec["model_sha256"]


def test_restored_slabs_count_every_slice_as_synthesised():
    acquired, synthesised = slice_roles(9, 4, restored=True)
    assert acquired == [] and synthesised == list(range(9))
    assert slice_roles(9, 4) == ([0, 4, 8], [1, 2, 3, 5, 6, 7])


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 300), max_size=60))
def test_slice_lists_parse_back_exactly(values):
    assert parse_indices(format_indices(values)) == sorted(values)


@pytest.mark.parametrize("n,k", [(12, 2), (30, 6), (8, 12), (100, 64)])
def test_an_upsamplings_slice_lists_stay_short(n, k):
    out = (n - 1) * k + 1
    acquired, synthesised = slice_roles(out, k)
    assert format_indices(acquired) == f"0-{out - 1}/{k}"
    assert len(format_indices(synthesised).split(",")) <= min(k - 1, n - 1)  # the shorter
    assert parse_indices(format_indices(synthesised)) == synthesised


# ---- the per-slice summary ------------------------------------------------------------------
def _fake_errors(n_out: int, k: int) -> list:
    errors = [None if i % k == 0 else float(i % 7) for i in range(n_out)]
    errors[5] = 250.0
    errors[6] = float("nan")
    return errors


def test_the_worst_synthesised_slices_are_named_highest_first_acquired_ones_never():
    meta = {"factor": 4, SLICE_ERROR_KEY: _fake_errors(21, 4)}
    meta[SLICE_ERROR_KEY][8] = 999.0  # an acquired slice: never named
    worst = worst_slices(meta)
    assert worst[0] == (5, 250.0) and len(worst) == 5
    assert all(i % 4 for i, _ in worst) and 6 not in [i for i, _ in worst]
    assert [e for _, e in worst] == sorted((e for _, e in worst), reverse=True)
    assert worst_slices({"factor": 4}) == [] and worst_slices({SLICE_ERROR_KEY: None}) == []


def test_report_prints_one_line_and_emits_a_summary_event():
    meta = {"factor": 4, SLICE_ERROR_KEY: _fake_errors(21, 4)}
    log, stream = io.StringIO(), io.StringIO()
    report_worst_slices(meta, Events(True, stream), log)
    assert log.getvalue().count("\n") == 1 and "5 (250 HU)" in log.getvalue()
    event = json.loads(stream.getvalue())
    assert event["event"] == "summary" and event["worst_slices"][0] == \
        {"slice": 5, "error_hu": 250.0}


def _run_main(monkeypatch, capsys, argv, errors: bool):
    """`hrinet interpolate` in this process, the engine's result given a fake estimate."""
    from hrinet.cli import app

    real = app.upsample_z

    def with_estimate(volume, **kw):
        result = real(volume, **kw)
        if errors:
            result.metadata[SLICE_ERROR_KEY] = _fake_errors(result.array.shape[0], 4)
        return result

    monkeypatch.setattr(app, "upsample_z", with_estimate)
    assert app.main(argv) == 0
    return capsys.readouterr()


def test_the_run_log_and_the_jsonl_stream_end_with_the_worst_slices(thick, tmp_path,
                                                                   monkeypatch, capsys):
    args = ["interpolate", str(thick), str(tmp_path / "a.nrrd"), "--factor", "4", "--method",
            "linear"]
    human = _run_main(monkeypatch, capsys, args, errors=True)
    assert human.err.strip().splitlines()[-1].startswith(
        "synthesised slices with the highest predicted error")
    jsonl = _run_main(monkeypatch, capsys, ["--progress", "jsonl", *args[:2],
                                            str(tmp_path / "b.nrrd"), *args[3:]], errors=True)
    last = json.loads(jsonl.out.strip().splitlines()[-1])
    assert last["event"] == "summary" and last["worst_slices"][0]["slice"] == 5


def test_without_an_estimate_nothing_is_added(thick, tmp_path, monkeypatch, capsys):
    args = ["--progress", "jsonl", "interpolate", str(thick), str(tmp_path / "c.nrrd"),
            "--factor", "4", "--method", "linear"]
    out = _run_main(monkeypatch, capsys, args, errors=False)
    assert json.loads(out.out.strip().splitlines()[-1])["event"] == "wrote"
    assert "highest predicted error" not in out.err


# ---- Slicer ---------------------------------------------------------------------------------
def _slicer_lib():
    pytest.importorskip("slicer")
    if str(REPO / "HRINetSlicer") not in sys.path:
        sys.path.insert(0, str(REPO / "HRINetSlicer"))
    from HRINetSlicerLib import mrml

    return mrml


def test_a_slicer_output_node_carries_the_record_and_says_it_is_synthesised(thick_node,
                                                                           tmp_path):
    mrml = _slicer_lib()
    node, _ = mrml.interpolate_node(thick_node, ModelOptions(factor=3, method="linear"))
    assert node.GetName() == "thick isotropic (interpolated x3, 16 of 25 slices synthesised)"
    assert node.GetAttribute("HRINet.method") == "linear"
    assert node.GetAttribute("HRINet.input") == "thick"
    assert node.GetAttribute("HRINet.acquired_slices") == "0-24/3"
    assert node.GetAttribute("HRINet.sourceNodeID") == thick_node.GetID()
    saved = mrml.export_nrrd(node, tmp_path / "saved.nrrd")  # Export NRRD keeps it
    assert read_provenance(saved)["synthesised_slices"] == "1-22/3,2-23/3"
    plain = mrml.node_from_volume(mrml.volume_from_node(thick_node), "plain",
                                  thick_node.GetScene())
    assert plain.GetName() == "plain" and plain.GetAttribute("HRINet.method") is None


def test_a_node_read_from_an_output_file_carries_its_record(thick, tmp_path, scene):
    mrml = _slicer_lib()
    out = tmp_path / "iso.nrrd"
    assert cli("interpolate", thick, out, "--factor", 2, "--method", "linear").returncode == 0
    node = mrml.node_from_volume(read_volume(out), "thick isotropic", scene)
    assert node.GetName().endswith("(interpolated x2, 11 of 23 slices synthesised)")
    assert node.GetAttribute("HRINet.factor") == "2"


def test_export_as_derived_dicom_refuses_a_node_not_loaded_from_dicom(thick_node, tmp_path):
    from hrinet.core.errors import HRINetError

    mrml = _slicer_lib()
    node, _ = mrml.interpolate_node(thick_node, ModelOptions(factor=2, method="linear"))
    with pytest.raises(HRINetError, match="DICOM module"):
        mrml.export_derived_dicom(node, tmp_path / "dcm")
    with pytest.raises(HRINetError, match="interpolated"):
        mrml.export_derived_dicom(thick_node, tmp_path / "dcm")
    assert list(tmp_path.iterdir()) == []


def test_the_panels_background_job_makes_a_node_with_the_record_and_the_inputs_name(
        thick_node):
    import time

    _slicer_lib()
    from HRINetSlicerLib.jobs import InterpolationJob

    job = InterpolationJob(thick_node, ModelOptions(factor=2, method="linear"))
    job.start()
    deadline = time.time() + 120
    while job.poll()["running"] and time.time() < deadline:
        time.sleep(0.2)
    node = job.finish()
    assert node.GetName() == "thick isotropic (interpolated x2, 8 of 17 slices synthesised)"
    assert node.GetAttribute("HRINet.input") == "thick"  # not the job's temporary file
    assert node.GetAttribute("HRINet.method") == "linear"
    assert node.GetAttribute("HRINet.sourceNodeID") == thick_node.GetID()


def test_slices_filled_across_uneven_gaps_are_never_called_acquired(tmp_path):
    """Known slices at 0, 3, 8, 13 and 20 mm filled to 1 mm, and to 2.5 mm:
    only the grid points that are known slices are acquired, wherever they land."""
    from helpers import write_dicom_series

    write_dicom_series(tmp_path / "gap", [0.0, 3.0, 8.0, 13.0, 20.0])
    vol = read_volume(tmp_path / "gap")
    for spacing, acquired in ((1.0, [0, 3, 8, 13, 20]), (2.5, [0, 8])):
        plan = plan_upsampling(vol, target_spacing=spacing, method="linear")
        rec = record(upsample_z(vol, plan=plan), plan=plan, input_path=tmp_path / "gap")
        assert parse_indices(rec["acquired_slices"]) == acquired, spacing
        assert int(rec["synthesised_count"]) == plan.output_slices - len(acquired)
    # a grid point past the last slice (25 mm, the last acquired at 24) takes that slice's
    # voxels but was not acquired there
    write_dicom_series(tmp_path / "end", [0.0, 5.0, 10.0, 17.5, 22.5, 24.0])
    vol = read_volume(tmp_path / "end")
    plan = plan_upsampling(vol, target_spacing=2.5, method="linear")
    rec = record(upsample_z(vol, plan=plan), plan=plan, input_path=tmp_path / "end")
    assert parse_indices(rec["acquired_slices"]) == [0, 2, 4, 7, 9]


@pytest.mark.parametrize("ext", [".nrrd", ".nii.gz"])
def test_an_interpolated_volume_interpolated_again_keeps_its_synthesised_slices_synthesised(
        thick, tmp_path, ext):
    once, twice = tmp_path / f"once{ext}", tmp_path / f"twice{ext}"
    for src, dst in ((thick, once), (once, twice)):
        r = cli("interpolate", src, dst, "--method", "linear", "--factor", "2")
        assert r.returncode == 0, r.stderr
    rec = read_provenance(twice)
    assert parse_indices(rec["acquired_slices"]) == list(range(0, 45, 4))  # 12 acquired of 45
    assert rec["synthesised_count"] == "33"
    assert "itself interpolated by hrinet: 11 of 23 slices synthesised" in rec["input"]
    from hrinet.core.io.provenance.record import input_acquired

    assert input_acquired(rec, 45) == set(range(0, 45, 4))
    assert input_acquired(rec, 44) == set()  # a record that no longer fits vouches for nothing
    assert input_acquired(None, 44) is None  # no record: every slice is the scanner's


def test_a_derived_series_in_its_own_subfolder_of_a_study_keeps_its_record(tmp_path):
    """A study folder with a folder per series: the derived series (read by default, it has
    the most slices) is described with its record by ``hrinet info`` and keeps its synthesised
    slices synthesised when interpolated again."""
    import shutil

    from helpers import write_dicom_series

    study = tmp_path / "study"
    study.mkdir()
    write_dicom_series(study / "orig", [0.0, 4.0, 8.0, 12.0, 16.0, 20.0],
                       tags={"0020|0052": "1.2.3.9", "0010|0020": "P1"})
    r = cli("interpolate", study / "orig", tmp_path / "derived", "--format", "dicom",
            "--method", "linear", "--factor", "2")
    assert r.returncode == 0, r.stderr
    shutil.move(str(tmp_path / "derived"), str(study / "derived"))
    info = cli("info", study)  # reads the derived series, and says what it is
    assert info.returncode == 0, info.stderr
    assert "provenance: interpolated along z by hrinet (5 of 11 slices synthesised)" in \
        info.stdout
    r = cli("interpolate", study, tmp_path / "again.nrrd", "--method", "linear", "--factor", "2")
    assert r.returncode == 0, r.stderr
    rec = read_provenance(tmp_path / "again.nrrd")
    assert parse_indices(rec["acquired_slices"]) == list(range(0, 21, 4)), rec
    assert "itself interpolated by hrinet" in rec["input"]
    r = cli("interpolate", study, tmp_path / "again-dicom", "--format", "dicom", "--method",
            "linear", "--factor", "2", "--series", "2")  # the original, from its subfolder
    assert r.returncode == 0, r.stderr
    assert parse_indices(read_provenance(tmp_path / "again-dicom")["acquired_slices"]) == \
        list(range(0, 11, 2))


def test_a_result_interpolated_again_in_python_keeps_its_synthesised_slices_synthesised(thick):
    vol = read_volume(thick)
    once = upsample_z(vol, factor=2, method="linear")
    before = dict(once.metadata)
    twice = upsample_z(once, factor=2, method="linear")
    assert once.metadata == before  # the input is not touched, its metadata included
    rec = record(twice)
    assert parse_indices(rec["acquired_slices"]) == list(range(0, 45, 4))
    written = record(once)  # a result whose record was made, then interpolated again
    again = upsample_z(once, factor=2, method="linear")
    assert "provenance" not in again.metadata or again.metadata["provenance"] is not written
    assert parse_indices(record(again)["acquired_slices"]) == list(range(0, 45, 4))
