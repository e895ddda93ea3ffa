"""A derived series hrinet wrote, loaded back through Slicer's DICOM module, against the real
MRML library (PyPI slicer-core): Slicer keeps none of the ``HRINet.*`` attributes on such a
node, so its record is read from the series' files (found through the DICOM database), and
interpolating it again never calls its synthesised slices acquired, and its result names the
input's SeriesInstanceUID as the command line's does.

The DICOM database (ctkDICOMDatabase) exists only in the Slicer application; a stand-in answers
the two questions the module asks of it (the file of an instance UID, a tag of an instance)."""

from __future__ import annotations

import sys
from pathlib import Path

import pydicom
import pytest
import slicer  # the real MRML library from the PyPI package slicer-core (test extra)
from helpers import cli, write_dicom_series
from hrinet.core.io import read_volume
from hrinet.core.io.provenance.slices import parse_indices
from hrinet.core.model_options import ModelOptions

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "HRINetSlicer"))

from HRINetSlicerLib import mrml  # noqa: E402


class _Database:
    """What ``slicer.dicomDatabase.fileForInstance`` answers: the file of each instance."""

    def __init__(self, folder: Path):
        self.files = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): str(p)
                      for p in sorted(folder.iterdir())}

    def fileForInstance(self, uid: str) -> str:  # noqa: N802 (Slicer's name)
        return self.files.get(uid, "")

    def instanceValue(self, uid: str, tag: str) -> str:  # noqa: N802 (Slicer's name)
        group, element = (int(v, 16) for v in tag.split(","))
        ds = pydicom.dcmread(self.files[uid], stop_before_pixels=True)
        return str(ds[group, element].value) if (group, element) in ds else ""


@pytest.fixture
def loaded_derived(tmp_path, scene, monkeypatch):
    """A derived series (6 acquired slices, x2: 5 of 11 synthesised) as Slicer's DICOM module
    loads it: a plain volume node with DICOM.instanceUIDs and no HRINet attributes."""
    write_dicom_series(tmp_path / "orig", [0.0, 4.0, 8.0, 12.0, 16.0, 20.0],
                       tags={"0020|0052": "1.2.3.9", "0010|0020": "P1"})
    derived = tmp_path / "derived"
    r = cli("interpolate", tmp_path / "orig", derived, "--format", "dicom", "--method",
            "linear", "--factor", "2")
    assert r.returncode == 0, r.stderr
    database = _Database(derived)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    volume = read_volume(derived)
    volume.metadata.clear()  # what Slicer's loader knows: the voxels and geometry only
    node = mrml.node_from_volume(volume, "derived", scene)
    assert not [k for k in node.GetAttributeNames() if k.startswith("HRINet.")]
    node.SetAttribute("DICOM.instanceUIDs", " ".join(database.files))
    return node


def test_its_record_is_read_from_its_files(loaded_derived):
    rec = mrml.volume_with_provenance(loaded_derived).metadata["provenance"]
    assert rec["method"] == "linear" and rec["output_slices"] == "11"
    assert parse_indices(rec["acquired_slices"]) == list(range(0, 11, 2))


def test_interpolating_it_again_keeps_its_synthesised_slices_synthesised(loaded_derived):
    out, _ = mrml.interpolate_node(loaded_derived, ModelOptions(factor=2, method="linear"))
    assert parse_indices(out.GetAttribute("HRINet.acquired_slices")) == list(range(0, 21, 4))
    assert "itself interpolated by hrinet: 5 of 11" in out.GetAttribute("HRINet.input")
    series = pydicom.dcmread(next(iter(slicer.dicomDatabase.files.values()))).SeriesInstanceUID
    assert out.GetAttribute("HRINet.input_series_uid") == series  # the input's, as the CLI's


def test_a_node_of_files_hrinet_did_not_write_has_no_record(tmp_path, scene, monkeypatch):
    write_dicom_series(tmp_path / "orig", [0.0, 4.0, 8.0])
    database = _Database(tmp_path / "orig")
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    node = mrml.node_from_volume(read_volume(tmp_path / "orig"), "orig", scene)
    node.SetAttribute("DICOM.instanceUIDs", " ".join(database.files))
    assert "provenance" not in mrml.volume_with_provenance(node).metadata


@pytest.fixture
def result_of_a_dicom_node(tmp_path, scene, monkeypatch):
    """A result interpolated from a node loaded through the DICOM module, and a second series'
    node in the same database (another patient)."""
    folders = {}
    for name, patient, uid in (("orig", "P1", "1.2.3.41"), ("other", "P2", "1.2.3.42")):
        write_dicom_series(tmp_path / name, [0.0, 4.0, 8.0, 12.0], uid=uid,
                           tags={"0010|0020": patient, "0020|0052": uid + ".9"})
        folders[name] = tmp_path / name
    database = _Database(folders["orig"])
    database.files.update(_Database(folders["other"]).files)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    nodes = {}
    for name, folder in folders.items():
        nodes[name] = mrml.node_from_volume(read_volume(folder), name, scene)
        nodes[name].SetAttribute("DICOM.instanceUIDs", " ".join(
            str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for p in sorted(folder.iterdir())))
    out, _ = mrml.interpolate_node(nodes["orig"], ModelOptions(factor=2, method="linear"))
    assert out.GetAttribute("HRINet.input_series_uid") == "1.2.3.41"
    return out, nodes


def test_a_result_whose_input_was_removed_is_not_exported_as_dicom(tmp_path, scene,
                                                                   result_of_a_dicom_node):
    out, nodes = result_of_a_dicom_node
    mrml.export_derived_dicom(out, tmp_path / "ok")  # while the input is there: written
    scene.RemoveNode(nodes["orig"])
    with pytest.raises(mrml.HRINetError, match="was made from is no longer in the scene"):
        mrml.export_derived_dicom(out, tmp_path / "dcm")
    assert not (tmp_path / "dcm").exists()


def test_a_result_pointing_at_another_series_is_not_given_that_patient(tmp_path,
                                                                       result_of_a_dicom_node):
    out, nodes = result_of_a_dicom_node  # the node ID now names another patient's series
    out.SetAttribute(mrml.SOURCE_NODE_ATTRIBUTE, nodes["other"].GetID())
    with pytest.raises(mrml.HRINetError, match=r"other is not the series .* \(series 1\.2\.3\.41"):
        mrml.export_derived_dicom(out, tmp_path / "dcm")
    assert not (tmp_path / "dcm").exists()


def test_a_result_made_from_a_file_never_takes_a_dicom_series_identity(tmp_path, scene,
                                                                      result_of_a_dicom_node):
    _, nodes = result_of_a_dicom_node  # a result whose record names no series (a file input)
    plain = mrml.node_from_volume(read_volume(tmp_path / "orig"), "plain", scene)
    out, _ = mrml.interpolate_node(plain, ModelOptions(factor=2, method="linear"))
    assert not out.GetAttribute("HRINet.input_series_uid")
    out.SetAttribute(mrml.SOURCE_NODE_ATTRIBUTE, nodes["other"].GetID())  # now a DICOM node's
    with pytest.raises(mrml.HRINetError, match="series none: it was made from a file"):
        mrml.export_derived_dicom(out, tmp_path / "dcm")
    assert not (tmp_path / "dcm").exists()
