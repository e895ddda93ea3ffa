"""A sixth adversarial round on reading and describing inputs, each finding now a
specification: an hrinet output is no ground truth for ``hrinet evaluate``; a DICOMDIR file
named directly reads its study, and a file it lists that is missing is named (never a gap
interpolated across); ``hrinet info`` says when a record no longer fits its volume; NRRD space
units other than mm are refused (they would be read as mm); the acquired slices of a de-tilted
series are said to be moved, in the record, ``hrinet info`` and a derived series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from helpers import write_dicom_series
from hrinet.cli import main
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_provenance, read_volume, write_volume
from hrinet.core.phantom import make_phantom
from pydicom.fileset import FileSet
from series_phantom import straight_scan, tilted_scan


def _last_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("hrinet: error:")][-1]


@pytest.fixture
def output(tmp_path) -> Path:
    src, out = tmp_path / "thick.nrrd", tmp_path / "iso.nrrd"
    write_volume(make_phantom(size=(24, 24, 6), spacing=(1, 1, 4), seed=2), src)
    assert main(["interpolate", str(src), str(out), "--method", "linear", "--factor", "2"]) == 0
    return out


def test_evaluate_refuses_an_hrinet_output_as_ground_truth(output, tmp_path, capsys):
    assert main(["evaluate", str(output), "--factors", "2", "--methods", "linear", "--out",
                 str(tmp_path / "ev")]) == 2
    assert "itself interpolated by hrinet (5 of 11 slices synthesised), so it is no ground " \
        "truth" in _last_error(capsys)
    assert not (tmp_path / "ev").exists()


def test_info_says_when_a_record_no_longer_fits_its_volume(output, tmp_path, capsys):
    cut = tmp_path / "cut.nrrd"
    text = output.read_bytes()
    volume = read_volume(output)
    volume.array = volume.array[:10]
    volume.metadata["provenance"] = read_provenance(output)  # the header kept, as unu crop does
    write_volume(volume, cut)
    assert text == output.read_bytes()
    capsys.readouterr()
    assert main(["info", str(cut)]) == 0
    assert "the record is of 11 slices but the volume has 10" in capsys.readouterr().out
    assert main(["info", str(output)]) == 0
    assert "cut or changed since" not in capsys.readouterr().out


@pytest.fixture
def study(tmp_path) -> Path:
    """A 6-slice series written as a DICOMDIR study (the index and its nested files)."""
    write_dicom_series(tmp_path / "src", [0.0, 4.0, 8.0, 12.0, 16.0, 20.0],
                       tags={"0020|0052": "1.2.3.9", "0010|0020": "P1", "0008|0020": "20240101",
                             "0008|0030": "120000", "0020|0010": "1", "0020|0011": "3"})
    files = FileSet()
    for f in sorted((tmp_path / "src").iterdir()):
        files.add(pydicom.dcmread(f))
    files.write(tmp_path / "study")
    return tmp_path / "study"


def test_a_dicomdir_named_directly_reads_its_study(study):
    assert read_volume(study / "DICOMDIR").array.shape[0] == 6


def test_a_file_the_dicomdir_lists_that_is_missing_is_named(study, capsys):
    images = sorted(p for p in study.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    images[2].unlink()
    with pytest.raises(HRINetError, match="lists .* of this series, which is missing") as err:
        read_volume(study)
    assert images[2].name in str(err.value) and "\n" not in str(err.value)
    assert main(["info", str(study / "DICOMDIR")]) == 0  # described, the problem listed
    out = capsys.readouterr().out
    assert "problem: the DICOMDIR" in out and "refuses this series" in out


def test_nrrd_space_units_other_than_mm_are_refused(tmp_path):
    path = tmp_path / "cm.nrrd"
    write_volume(make_phantom(size=(8, 8, 4)), path)
    header, _, data = path.read_bytes().partition(b"\n\n")
    path.write_bytes(header + b'\nspace units: "cm" "cm" "cm"\n\n' + data)
    with pytest.raises(HRINetError, match="gives its geometry in cm cm cm"):
        read_volume(path)
    path.write_bytes(header + b'\nspace units: "mm" "mm" "mm"\n\n' + data)
    assert read_volume(path).spacing == (1.5, 1.5, 5.0)  # mm: read as written


def test_the_acquired_slices_of_a_detilted_series_are_said_to_be_moved(tmp_path, capsys):
    series = tilted_scan(tmp_path / "tilted", 20, 4.0, 8, size=32, pixel=3.0,
                         tags={"0020|0052": "1.2.3.99"})
    out, derived = tmp_path / "iso.nrrd", tmp_path / "derived"
    for target, more in ((out, []), (derived, ["--format", "dicom"])):
        assert main(["interpolate", str(series), str(target), "--method", "linear", "--factor",
                     "2", *more]) == 0
    assert read_provenance(out)["detilt_degrees"] == "20.0"
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "to undo a gantry tilt of 20.0 degrees" in capsys.readouterr().out
    first = pydicom.dcmread(sorted(derived.iterdir())[0])
    assert "acquired slice" in first.ImageComments and "unchanged" not in first.ImageComments
    assert "gantry tilt of 20.0 degrees" in first.ImageComments
    assert read_provenance(derived)["detilt_degrees"] == "20.0"
    again = tmp_path / "again.nrrd"  # interpolated again: its acquired slices are still moved
    assert main(["interpolate", str(out), str(again), "--method", "linear", "--factor", "2"]) == 0
    assert read_provenance(again)["detilt_degrees"] == "20.0"


def test_the_acquired_slices_of_a_straight_series_are_unchanged(tmp_path):
    write_dicom_series(tmp_path / "s", [0.0, 3.0, 6.0], tags={"0020|0052": "1.2.3.9"})
    assert main(["interpolate", str(tmp_path / "s"), str(tmp_path / "d"), "--format", "dicom",
                 "--method", "linear", "--factor", "2"]) == 0
    first = pydicom.dcmread(sorted((tmp_path / "d").iterdir())[0])
    assert first.ImageComments.endswith(", unchanged)")
    assert np.array_equal(first.pixel_array, pydicom.dcmread(
        sorted((tmp_path / "s").iterdir())[0]).pixel_array)


def test_a_plan_across_uneven_gaps_says_which_known_slices_are_resampled(tmp_path):
    from hrinet.methods.planning import plan_upsampling

    vol = read_volume(straight_scan(tmp_path / "s", [0, 2, 4, 7, 10, 12, 14, 16], size=24))
    off_grid = plan_upsampling(vol, target_spacing=0.9, method="linear")
    assert off_grid.known_on_grid == 1  # only the first lies on a 0.9 mm grid
    assert "7 of the 8 known slices fall between the grid's points" in off_grid.describe()
    on_grid = plan_upsampling(vol, target_spacing=1.0, method="linear")
    assert on_grid.known_on_grid == 8 and "fall between" not in on_grid.describe()


def test_a_dicomdir_study_shown_in_lower_case_reads_and_its_missing_files_are_named(study):
    for path in sorted(study.rglob("*"), key=lambda p: -len(p.parts)):  # deepest first
        path.rename(path.with_name(path.name.lower()))
    assert read_volume(study / "dicomdir").array.shape[0] == 6  # complete: every file found
    images = sorted(p for p in study.rglob("*") if p.is_file() and p.name != "dicomdir")
    images[3].unlink()
    with pytest.raises(HRINetError, match="which is missing"):
        read_volume(study)


def test_a_nifti_whose_qform_and_sform_disagree_says_which_it_was_read_by(tmp_path):
    import struct

    path = tmp_path / "v.nii"
    write_volume(make_phantom(size=(8, 8, 4)), path)
    assert not any("qform" in w for w in read_volume(path).metadata["warnings"])
    head = bytearray(path.read_bytes())
    struct.pack_into("<hh", head, 252, 1, 1)  # both forms set, as scanners' converters do
    qoffset_z = struct.unpack_from("<f", head, 276)[0]
    struct.pack_into("<f", head, 280 + 11 * 4, qoffset_z + 100.0)  # srow_z[3]: 100 mm away
    path.write_bytes(bytes(head))
    (warning,) = [w for w in read_volume(path).metadata["warnings"] if "qform" in w]
    assert "qform and sform disagree (origins 100 mm apart)" in warning
    assert "it was read as its " in warning and "neither" not in warning


def test_the_widest_of_uneven_gaps_decides_whether_a_learned_plan_is_beyond_what_was_measured(
        tmp_path):
    from hrinet.methods.planning import plan_upsampling, reach_warning

    vol = read_volume(straight_scan(tmp_path / "s", [0, 5, 10, 15, 105], size=16))
    assert reach_warning(plan_upsampling(vol, factor=4, method="hrinet")).startswith(
        "x72 across 90 mm gaps is beyond")  # the median gap is 5 mm, the widest 90
    assert reach_warning(plan_upsampling(vol, factor=4, method="linear")) == ""
