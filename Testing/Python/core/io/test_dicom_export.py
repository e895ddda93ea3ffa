"""A derived DICOM series out (`--format dicom`): a new series of the input's study that says it
is interpolated, with the geometry and voxels of the NRRD output, every type 1 and 2 attribute
of the CT Image IOD, and the input series left untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from helpers import cli, one_line_error
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from hrinet.core.io import read_derived
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume

CT = "1.2.840.10008.5.1.4.1.1.2"

#: The CT Image IOD's (PS3.3 A.3) type 1 and type 2 attributes of its mandatory modules:
#: Patient, General Study, General Series, Frame of Reference, General Equipment, General
#: Image, Image Plane, Image Pixel, CT Image, SOP Common (type 2C ones that apply to CT axial
#: slices included). dicom-validator needs the standard from the network, so the list is here.
TYPE1 = ("StudyInstanceUID", "Modality", "SeriesInstanceUID", "FrameOfReferenceUID",
         "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "SamplesPerPixel",
         "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored",
         "HighBit", "PixelRepresentation", "PixelData", "ImageType", "RescaleIntercept",
         "RescaleSlope", "SOPClassUID", "SOPInstanceUID")
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
         "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber",
         "PositionReferenceIndicator", "Manufacturer", "InstanceNumber", "SliceThickness",
         "KVP", "AcquisitionNumber", "PatientPosition", "ContentDate", "ContentTime")


def make_series(folder: Path, n: int = 6, size: int = 16, spacing: float = 5.0,
                seed: int = 0, blank=()) -> Path:
    """An oblique CT series of ``n`` slices, stored values with intercept -1024, patient and
    study filled in, files named in reverse order of position; ``blank``: attributes left empty
    (as some de-identification does)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    row = np.array([np.cos(0.2), np.sin(0.2), 0.0])
    col = np.array([-np.sin(0.2), np.cos(0.2), 0.2])
    col -= row * np.dot(row, col)
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for i in range(n):
        ds = Dataset()
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = \
            "Doe^Jane", "P123", "19700101", "F"
        ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study, "20240101", "101010"
        ds.ReferringPhysicianName, ds.StudyID, ds.AccessionNumber = "Ref^Doc", "S1", "A9"
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.Modality = series, 3, "CT"
        ds.SeriesDescription, ds.PatientPosition = "Chest 5mm", "HFS"
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame, ""
        ds.Manufacturer, ds.KVP, ds.AcquisitionNumber = "ACME", 120, 1
        ds.SOPClassUID, ds.SOPInstanceUID = CT, generate_uid()
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = i + 1
        position = np.array([-100.0, -120.0, 50.0]) + normal * spacing * i
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in list(row) + list(col)]
        ds.PixelSpacing, ds.SliceThickness = ["0.8", "0.7"], "5"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = rng.integers(0, 2000, (size, size)).astype(np.int16).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CT, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        for keyword in blank:
            setattr(ds, keyword, "")
        ds.save_as(folder / f"slice{n - i:03d}.dcm", enforce_file_format=True)
    return folder


def hashes(folder: Path) -> dict:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir())}


def headers(folder: Path) -> list:
    """The series' datasets in InstanceNumber order."""
    found = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    return sorted(found, key=lambda d: int(d.InstanceNumber))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One input series interpolated x3 with linear, to NRRD and to a derived series."""
    root = tmp_path_factory.mktemp("derived")
    series = make_series(root / "in")
    before = hashes(series)
    r1 = cli("interpolate", series, root / "out.nrrd", "--factor", 3, "--method", "linear")
    r2 = cli("interpolate", series, root / "out", "--factor", 3, "--method", "linear",
             "--format", "dicom")
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    return {"root": root, "in": series, "before": before, "nrrd": root / "out.nrrd",
            "dicom": root / "out"}


def test_the_derived_series_has_the_nrrd_outputs_geometry_and_voxels(run):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(run["dicom"])))
    image = reader.Execute()
    nrrd = sitk.ReadImage(str(run["nrrd"]))
    assert image.GetSize() == nrrd.GetSize() == (16, 16, 16)
    np.testing.assert_allclose(image.GetOrigin(), nrrd.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(image.GetSpacing(), nrrd.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(image.GetDirection(), nrrd.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(nrrd))
    ours = read_volume(run["dicom"])  # hrinet's reader too: every slice at its place
    np.testing.assert_array_equal(ours.array, read_volume(run["nrrd"]).array)


def test_pydicom_reads_the_same_pixel_values_and_positions(run):
    nrrd = read_volume(run["nrrd"])
    for k, ds in enumerate(headers(run["dicom"])):
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(hu, nrrd.array[k])
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient],
                                   nrrd.index_to_physical((0, 0, k)), atol=1e-3)


def test_every_type1_and_type2_attribute_of_the_ct_image_iod_is_present(run):
    for ds in headers(run["dicom"]):
        assert ds.SOPClassUID == CT and ds.file_meta.MediaStorageSOPClassUID == CT
        missing = [k for k in TYPE1 if k not in ds or ds.data_element(k).value in (None, "")]
        assert missing == []
        assert [k for k in TYPE2 if k not in ds] == []
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_patient_study_and_frame_of_reference_are_copied_and_the_series_and_instances_new(run):
    source = headers(run["in"])
    out = headers(run["dicom"])
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
                "StudyID", "AccessionNumber", "FrameOfReferenceUID", "Manufacturer"):
        assert {str(d.data_element(key).value) for d in out} == \
            {str(source[0].data_element(key).value)}, key
    assert len({d.SeriesInstanceUID for d in out}) == 1
    assert out[0].SeriesInstanceUID != source[0].SeriesInstanceUID
    sops = {d.SOPInstanceUID for d in out}
    assert len(sops) == len(out) and not sops & {d.SOPInstanceUID for d in source}


def test_the_series_says_it_is_derived_how_and_from_which_slices(run):
    source = sorted(headers(run["in"]), key=lambda d: float(d.ImagePositionPatient[2]))
    # the oblique series' positions along its normal grow with z here
    for k, ds in enumerate(headers(run["dicom"])):
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        text = ds.DerivationDescription
        assert "method=linear" in text and "factor=3" in text and "hrinet" in text
        code = ds.DerivationCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == \
            ("113085", "DCM", "Spatial resampling")
        refs = [item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence]
        i, frac = divmod(k, 3)
        expected = [source[i].SOPInstanceUID] if frac == 0 else \
            [source[i].SOPInstanceUID, source[i + 1].SOPInstanceUID]
        assert refs == expected
        assert ("acquired" if frac == 0 else "synthesised") in ds.ImageComments
        assert "interpolated" in ds.SeriesDescription and len(ds.SeriesDescription) <= 64
        assert ds.ContributingEquipmentSequence[0].Manufacturer == "hrinet"


def test_slice_thickness_and_spacing_describe_the_output(run):
    ds = headers(run["dicom"])[0]
    assert float(ds.SpacingBetweenSlices) == pytest.approx(5.0 / 3, abs=1e-3)
    # the acquired slabs are 5 mm thick and kept as they are: no slice is thinner than that
    assert float(ds.SliceThickness) == pytest.approx(5.0)


def test_the_input_series_is_untouched(run):
    assert hashes(run["in"]) == run["before"]
    assert sorted(p.name for p in run["root"].iterdir()) == ["in", "out", "out.nrrd"]


def test_hrinet_info_on_the_derived_series_reports_its_provenance(run):
    r = cli("info", run["dicom"])
    assert r.returncode == 0, r.stderr
    assert "provenance: interpolated along z by hrinet (10 of 16 slices synthesised)" in r.stdout
    assert "acquired slices:    0-15/3" in r.stdout
    assert read_derived(run["dicom"])["input_series_uid"] == \
        headers(run["in"])[0].SeriesInstanceUID


def test_a_file_input_refuses_format_dicom_with_one_line(run, tmp_path):
    r = cli("interpolate", run["nrrd"], tmp_path / "out", "--format", "dicom", "--factor", 2)
    one_line_error(r, "--format dicom needs a DICOM series folder")
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_inside_the_input_or_named_like_a_file_is_refused(run, tmp_path):
    one_line_error(cli("interpolate", run["in"], run["in"] / "x", "--format", "dicom"),
                   "outside the input")
    one_line_error(cli("interpolate", run["in"], tmp_path / "x.nrrd", "--format", "dicom"),
                   "the output is a folder")


def test_a_folder_of_the_users_is_never_replaced_an_earlier_derived_series_is(run, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    args = ("--factor", 2, "--method", "linear", "--format", "dicom")
    one_line_error(cli("interpolate", run["in"], mine, *args, "--overwrite"),
                   "not a derived series written by hrinet")
    assert (mine / "notes.txt").read_text() == "keep me"
    one_line_error(cli("interpolate", run["in"], mine, *args), "--overwrite")
    again = tmp_path / "again"
    assert cli("interpolate", run["in"], again, *args).returncode == 0
    assert cli("interpolate", run["in"], again, *args, "--overwrite").returncode == 0
    assert len(list(again.iterdir())) == 11
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "mine"]  # no leftovers


def test_a_failed_write_leaves_no_folder_and_no_partial_files(run, tmp_path, monkeypatch):
    from hrinet.core.io import write_derived_series
    from hrinet.core.io.provenance.record import record
    from hrinet.methods.engine import upsample_z

    volume = read_volume(run["in"])
    result = upsample_z(volume, factor=2, method="linear")
    record(result, input_path=run["in"])
    calls = {"n": 0}
    real = Dataset.save_as

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(Dataset, "save_as", failing)
    with pytest.raises(HRINetError, match="nothing was written"):
        write_derived_series(result, run["in"], tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_batch_format_dicom_writes_a_series_folder_per_case_and_a_rerun_skips_it(tmp_path):
    tree = tmp_path / "tree"
    make_series(tree / "chest")
    out = tmp_path / "out"
    args = ("batch", tree, "--out", out, "--format", "dicom", "--factor", 2, "--method",
            "linear")
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    folders = [p for p in (out / "chest").iterdir()]
    assert len(folders) == 1 and folders[0].is_dir() and len(list(folders[0].iterdir())) == 11
    assert list(headers(folders[0])[0].ImageType)[:2] == ["DERIVED", "SECONDARY"]
    again = cli(*args)
    assert again.returncode == 0 and "0 done, 1 already done" in again.stdout
    changed = cli(*args[:-4], "--factor", 3, "--method", "linear")  # other options: redone
    assert changed.returncode == 0, changed.stderr
    assert len(list(folders[0].iterdir())) == 16


def test_batch_format_dicom_fails_a_file_case_with_its_reason(tmp_path, phantom):
    from hrinet.core.io import write_volume

    tree = tmp_path / "tree"
    tree.mkdir()
    write_volume(phantom, tree / "vol.nrrd")
    r = cli("batch", tree, "--out", tmp_path / "out", "--format", "dicom", "--factor", 2,
            "--method", "linear")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--format dicom needs DICOM series as inputs" in r.stderr


def test_a_series_without_a_study_uid_is_refused_before_any_work(tmp_path):
    series = make_series(tmp_path / "in", blank=("StudyInstanceUID",))
    r = cli("interpolate", series, tmp_path / "out", "--format", "dicom", "--factor", 2,
            "--method", "linear")
    one_line_error(r, "no StudyInstanceUID")
    assert "interpolating" not in r.stderr and not (tmp_path / "out").exists()


def test_blanked_sop_instance_uids_are_referenced_by_their_file_meta(tmp_path):
    series = make_series(tmp_path / "in", blank=("SOPInstanceUID", "SOPClassUID"))
    metas = {pydicom.dcmread(p).file_meta.MediaStorageSOPInstanceUID
             for p in series.iterdir()}
    r = cli("interpolate", series, tmp_path / "out", "--format", "dicom", "--factor", 2,
            "--method", "linear")
    assert r.returncode == 0, r.stderr
    refs = {item.ReferencedSOPInstanceUID for ds in headers(tmp_path / "out")
            for item in ds.SourceImageSequence}
    assert refs == metas


def test_a_series_at_uneven_gaps_is_refused_for_dicom_output_before_any_work(tmp_path):
    """A derived series follows the input's even slice grid; uneven gaps are told at once (was:
    all the work, then a false 'the series changed since it was read')."""
    from helpers import write_dicom_series

    write_dicom_series(tmp_path / "gap", [0.0, 4.0, 8.0, 16.0, 20.0],
                       tags={"0020|0052": "1.2.3.9", "0010|0020": "P1", "0008|0020": "20200101"})
    for cmd in (["interpolate", tmp_path / "gap", tmp_path / "out", "--format", "dicom"],
                ["batch", tmp_path / "gap", "--out", tmp_path / "b", "--format", "dicom"]):
        r = cli(*cmd, "--method", "linear", "--factor", "4")
        text = r.stderr + ((tmp_path / "b" / "results.csv").read_text()
                           if (tmp_path / "b" / "results.csv").exists() else "")
        assert "uneven gaps; write a volume file (.nrrd) instead" in text, text
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
