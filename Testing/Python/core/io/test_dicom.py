"""DICOM folders: every file accounted for, every slice of one orientation (hrinet.core.io.dicom)."""

from __future__ import annotations

import os

import pytest
from helpers import write_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume


@pytest.fixture
def series(tmp_path):
    folder = tmp_path / "ct"
    write_dicom_series(folder, [float(z) for z in range(6)])
    return folder


def test_a_complete_series_reads_every_slice(series):
    assert read_volume(series).array.shape[0] == 6


def test_a_cut_off_first_slice_is_named_not_silently_dropped(series):
    first = sorted(series.iterdir())[0]
    data = first.read_bytes()
    first.write_bytes(data[: len(data) - 100])
    with pytest.raises(HRINetError, match=f"{first.name} .a DICOM file that cannot be read"):
        read_volume(series)


@pytest.mark.parametrize("kind", ["broken link", "pipe"])
def test_a_broken_link_or_a_pipe_in_the_folder_is_named(series, kind):
    odd = series / "s999.dcm"
    if kind == "broken link":
        odd.symlink_to(series / "gone.dcm")
    else:
        os.mkfifo(odd)
    with pytest.raises(HRINetError, match="s999.dcm"):
        read_volume(series)


def test_notes_beside_the_slices_are_not_slices(series):
    (series / "notes.txt").write_text("scanned on Tuesday")
    (series / "DICOMDIR").write_bytes(b"\0" * 200)
    assert read_volume(series).array.shape[0] == 6


def test_a_slice_of_another_orientation_under_the_same_uid_is_refused(tmp_path):
    folder = tmp_path / "mixed"
    write_dicom_series(folder, [float(z) for z in range(5)])
    write_dicom_series(folder, [5.0], prefix="coronal",
                       tags={"0020|0037": "1\\0\\0\\0\\0\\-1", "0020|0013": "6"})
    with pytest.raises(HRINetError, match="oriented differently"):
        read_volume(folder)
