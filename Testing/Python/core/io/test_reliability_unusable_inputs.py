"""Inputs whose values cannot be used as they are: a DICOM series without a usable pixel size
or HU scale, and paths that are no volume file at all (a device, a pipe, a system file). Each is
refused in one line naming what it is, never read as something else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume


def _edited_series(folder, edit):
    """A five-slice DICOM series with ``edit(dataset)`` applied to every file (pydicom)."""
    import pydicom
    from helpers import write_dicom_series

    write_dicom_series(folder, [0.0, 2.0, 4.0, 6.0, 8.0])
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(f)
    return folder


def _spacing(value):
    def edit(ds):
        if value is None:
            del ds.PixelSpacing
        else:
            ds.PixelSpacing = value
    return edit


def _slope(value):
    def edit(ds):
        ds.RescaleSlope, ds.RescaleIntercept = value, "-1024"
    return edit


@pytest.mark.parametrize("edit, said", [
    (_spacing(["0", "0"]), "no valid PixelSpacing"),
    (_spacing(["nan", "nan"]), "no valid PixelSpacing"),
    (_spacing(None), "no valid PixelSpacing"),
    (_slope("0"), "has RescaleSlope '0'"),
    (_slope("nan"), "has RescaleSlope 'nan'"),
    (_slope("inf"), "has RescaleSlope 'inf'"),
])
def test_a_dicom_series_whose_pixel_size_or_hu_scale_is_unusable_is_refused(tmp_path, edit, said):
    """Read on, ITK would take the pixels for 1 mm and a slope of 0 for 1: a volume of the wrong
    size or values, silently. Refused in one line naming the tag."""
    folder = _edited_series(tmp_path / "s", edit)
    with pytest.raises(HRINetError, match=said):
        read_volume(folder)


@pytest.mark.parametrize("value", [["0.7"], ["0.7", "0.7", "1"], [" 0.7", "0.7 "]])
def test_a_pixel_spacing_written_loosely_still_reads_as_what_it_says(tmp_path, value):
    vol = read_volume(_edited_series(tmp_path / "s", _spacing(value)))
    assert vol.spacing[:2] == pytest.approx((0.7, 0.7))


def test_a_device_a_pipe_or_a_system_file_is_named_as_such_not_as_an_empty_file(tmp_path):
    import os

    fifo = tmp_path / "pipe.nrrd"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo, Path("/proc/self/status")):
        with pytest.raises(HRINetError, match="is not a regular file"):
            read_volume(path)
