"""A study as a hospital exports it (issue 41, item 6): series in subfolders, or a DICOMDIR with
its files in nested folders, are listed by ``info`` and read by ``interpolate``; scouts, dose
reports and secondary captures are listed but never chosen by default. And ``info`` describes
every series it can read (item 4): tilt, gaps, thickness, orientation, padding, what
``interpolate`` will do, and every problem at once."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import cli, one_line_error, write_dicom_series
from hrinet.core.io import read_dicom_folder, series_kind, study_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume

CT_UID, SCOUT_UID, SC_UID, SR_UID = "1.2.826.5.1", "1.2.826.5.2", "1.2.826.5.3", "1.2.826.5.4"


def _series(folder, *args, **kwargs):
    folder.parent.mkdir(parents=True, exist_ok=True)
    write_dicom_series(folder, *args, **kwargs)
    return folder


def _study(root):
    """A study: the CT series (6 slices), a scout (LOCALIZER), a larger secondary capture
    (screenshots, Modality OT) and a dose report (Modality SR), each in its own subfolder."""
    _series(root / "2_CT_HEAD", [3.0 * i for i in range(6)], uid=CT_UID,
                       description="Head 3mm")
    _series(root / "1_SCOUT", [0.0, 1.0], uid=SCOUT_UID, description="Topogram",
                       tags={"0008|0008": "ORIGINAL\\PRIMARY\\LOCALIZER"})
    _series(root / "9_SC", [float(i) for i in range(10)], uid=SC_UID,
                       modality="OT", description="Screen capture")
    _series(root / "8_DOSE", [0.0], uid=SR_UID, modality="SR",
                       description="Dose report")
    return root


@pytest.mark.parametrize("modality,image_type,kind", [
    ("CT", "ORIGINAL\\PRIMARY\\AXIAL", "image"), ("CT", "ORIGINAL\\PRIMARY\\LOCALIZER", "scout"),
    ("SR", "", "dose report"), ("OT", "DERIVED\\SECONDARY", "secondary capture"),
    ("DOC", "", "secondary capture"), ("MR", "", "image")])
def test_series_kinds_are_told_apart_from_their_headers(modality, image_type, kind):
    assert series_kind(modality, image_type, "") == kind


def test_secondary_capture_is_told_by_its_sop_class():
    assert series_kind("CT", "", "1.2.840.10008.5.1.4.1.1.7") == "secondary capture"


def test_a_study_folder_lists_the_series_of_its_subfolders_ct_first(tmp_path):
    series = study_series(_study(tmp_path / "study"))
    assert [(s["folder"], s["kind"]) for s in series] == [
        ("2_CT_HEAD", "image"), ("9_SC", "secondary capture"), ("1_SCOUT", "scout"),
        ("8_DOSE", "dose report")]


def test_a_study_folder_reads_its_ct_series_by_default_never_a_capture_or_scout(tmp_path):
    vol = read_volume(_study(tmp_path / "study"))
    assert vol.metadata["series_uid"] == CT_UID and vol.array.shape[0] == 6
    assert vol.metadata["series_folder"] == "2_CT_HEAD"
    assert any("holds 4 series (3 scout, report or secondary-capture series set aside)" in w
               and "Head 3mm in 2_CT_HEAD" in w for w in vol.metadata["warnings"])


@pytest.mark.parametrize("wanted", ["2", SC_UID, "9_SC", "9_SC/"])
def test_a_study_series_is_chosen_by_number_uid_or_subfolder(tmp_path, wanted):
    vol = read_volume(_study(tmp_path / "study"), series_uid=wanted)
    assert vol.metadata["series_uid"] == SC_UID and vol.array.shape[0] == 10


def test_info_on_a_study_lists_each_series_with_its_subfolder_and_kind(tmp_path):
    r = cli("info", _study(tmp_path / "study"))
    assert r.returncode == 0, r.stderr
    assert "series in this folder (4;" in r.stdout
    assert "* 1. Head 3mm (CT) in 2_CT_HEAD: 6 slices" in r.stdout
    assert "Topogram (CT) in 1_SCOUT: 2 slices" in r.stdout and "[scout: not chosen" in r.stdout
    assert "[dose report: not chosen by default]" in r.stdout
    assert "[secondary capture: not chosen by default]" in r.stdout


def test_interpolate_on_a_study_takes_series_as_a_single_folder_does(tmp_path):
    study = _study(tmp_path / "study")
    r = cli("interpolate", study, tmp_path / "ct.nrrd", "--method", "linear", "--factor", "3")
    assert r.returncode == 0, r.stderr
    assert sitk.ReadImage(str(tmp_path / "ct.nrrd")).GetSize()[2] == 16
    r = cli("interpolate", study, tmp_path / "sc.nrrd", "--method", "linear", "--factor", "2",
            "--series", "2")
    assert r.returncode == 0, r.stderr
    assert sitk.ReadImage(str(tmp_path / "sc.nrrd")).GetSize()[2] == 19
    one_line_error(cli("interpolate", study, tmp_path / "x.nrrd", "--series", "7"),
                   "give a number from 1 to 4")


def test_a_dicomdir_export_is_read_through_its_nested_folders(tmp_path):
    """A DICOMDIR written as media exports write it (pydicom's File-set: PT/ST/SE folders of
    files without an extension) holding the CT series and a scout."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.fileset import FileSet

    src = tmp_path / "src"
    write_dicom_series(src, [2.5 * i for i in range(5)], uid=CT_UID)
    write_dicom_series(src, [0.0, 1.0], uid=SCOUT_UID, prefix="loc",
                       tags={"0008|0008": "ORIGINAL\\PRIMARY\\LOCALIZER"})
    fileset = FileSet()
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        ds.PatientID, ds.StudyDate, ds.StudyTime, ds.StudyID = "PHANTOM", "20260101", "1200", "1"
        ds.SeriesNumber = 2 if f.name.startswith("loc") else 1
        fileset.add(ds)
    fileset.write(tmp_path / "cd")
    assert (tmp_path / "cd" / "DICOMDIR").is_file()
    vol = read_volume(tmp_path / "cd")
    assert vol.array.shape[0] == 5 and vol.metadata["series_uid"] == CT_UID
    assert vol.metadata["series_folder"].startswith("PT000000/ST000000/SE")
    r = cli("info", tmp_path / "cd")
    assert r.returncode == 0 and "size:       8 x 8 x 5" in r.stdout, r.stderr
    assert "[scout: not chosen by default]" in r.stdout


def test_a_study_of_only_scouts_and_reports_says_so_and_reads_one_when_named(tmp_path):
    root = tmp_path / "study"
    _series(root / "SCOUT", [0.0, 1.0], uid=SCOUT_UID,
                       tags={"0008|0008": "ORIGINAL\\PRIMARY\\LOCALIZER"})
    with pytest.raises(HRINetError, match="no CT or other image series, only scout"):
        read_volume(root)
    assert read_volume(root, series_uid="1").array.shape[0] == 2


def test_a_folder_with_nothing_in_its_subfolders_still_says_no_series(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("x")
    one_line_error(cli("info", tmp_path / "empty"), "no DICOM series found")


def test_a_folder_with_a_series_of_its_own_ignores_its_subfolders(tmp_path):
    write_dicom_series(tmp_path / "ct", [0.0, 2.0, 4.0], uid=CT_UID)
    write_dicom_series(tmp_path / "ct" / "old", [0.0, 2.0, 4.0, 6.0], uid=SC_UID)
    vol = read_volume(tmp_path / "ct")
    assert vol.metadata["series_uid"] == CT_UID and len(vol.metadata["dicom_series"]) == 1


# ---- info describes what it can read ---------------------------------------------------------

def test_info_names_every_problem_of_a_series_and_exits_0(tmp_path):
    """A slice out of line and two slices at one position with other pixels: interpolate
    names both in one line; info describes the series, lists both and says it is refused."""
    positions = [(0.0, 0.0, 2.0 * i) for i in range(8)]
    positions[3] = (6.0, 0.0, 6.0)
    positions[6] = (0.0, 0.0, 10.0)  # beside slice 5, other pixels
    write_dicom_series(tmp_path / "bad", positions)
    r = cli("interpolate", tmp_path / "bad", tmp_path / "o.nrrd", "--method", "linear")
    one_line_error(r, "the series has 2 problems: (1) s003.dcm lies 6 mm in-plane off the line")
    assert "s005.dcm and s006.dcm are both at position 10 mm" in r.stderr
    r = cli("info", tmp_path / "bad")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("problem: ") == 2 and "s003.dcm lies 6 mm" in r.stdout
    assert "interpolate: refuses this series until its 2 problem(s) above are fixed" in r.stdout


def test_info_describes_orientation_gaps_thickness_padding_and_the_plan(tmp_path):
    write_dicom_series(tmp_path / "u", [0.0, 4.0, 8.0, 9.0, 13.0, 20.0], size=16,
                       tags={"0018|0050": "4"})
    r = cli("info", tmp_path / "u")
    assert r.returncode == 0, r.stderr
    for words in ("orientation: axial", "slice gaps: uneven: 3 gaps of 4 mm, one of 1, one of 7",
                  "thickness:  4 mm", "padding: none", "interpolate: x"):
        assert words in r.stdout, r.stdout


def test_info_on_an_even_series_says_the_gaps_are_even(tmp_path):
    write_dicom_series(tmp_path / "e", [0.0, 3.0, 6.0, 9.0])
    r = cli("info", tmp_path / "e")
    assert r.returncode == 0 and "slice gaps: even, 3 mm" in r.stdout, r.stdout


def test_reading_leniently_keeps_the_problems_for_info(tmp_path):
    positions = [(0.0, 0.0, 2.0 * i) for i in range(6)]
    positions[2] = (0.0, 7.0, 4.0)
    write_dicom_series(tmp_path / "b", positions)
    vol = read_dicom_folder(tmp_path / "b", None, lenient=True)
    assert len(vol.metadata["problems"]) == 1 and vol.array.shape[0] == 6
    with pytest.raises(HRINetError, match="s002.dcm lies 7 mm"):
        read_dicom_folder(tmp_path / "b", None)
    assert np.isfinite(vol.array).all()
