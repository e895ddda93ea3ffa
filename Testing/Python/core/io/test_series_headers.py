"""What one slice's header can do to a series: a slice rescaled differently from the others (ITK
would read them all in the first slice's pixel type, wrapping negative HU into an unsigned one),
and a scout filed under the series' UID that sorts first (the series is then neither called a
scout nor are its own slices blamed for the scout's orientation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_dicom_folder, read_volume
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_slice(path: Path, z: float, stored: int, intercept: float = -1024,
             iop=(1, 0, 0, 0, 1, 0), image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
             size: int = 8) -> None:
    """One ``size`` x ``size`` CT slice at z, every pixel stored as ``stored`` (unsigned 16
    bits)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = "1.2.3", "1.2.3.4", "CT"
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, z], list(iop)
    ds.ImageType, ds.PixelSpacing, ds.Rows, ds.Columns = list(image_type), [0.8, 0.8], size, size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.RescaleIntercept, ds.RescaleSlope = intercept, 1
    ds.PixelData = np.full((size, size), stored, np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def test_slices_rescaled_differently_are_each_read_in_hu(tmp_path):
    # the first slice's intercept is 0 (stored unsigned): its type cannot hold the others' air
    ct_slice(tmp_path / "s0.dcm", 0, 24, intercept=0)
    for k in range(1, 5):
        ct_slice(tmp_path / f"s{k}.dcm", 5 * k, 24)
    vol = read_volume(tmp_path)
    assert [int(s.mean()) for s in vol.array] == [24, -1000, -1000, -1000, -1000]
    assert any("RescaleSlope/RescaleIntercept differ" in w for w in vol.metadata["warnings"])


def test_a_fractional_rescale_on_some_slices_keeps_its_fractions(tmp_path):
    for k in range(4):
        ct_slice(tmp_path / f"s{k}.dcm", 5 * k, 1001, intercept=-1024 if k else -1024.5)
    assert [float(s.mean()) for s in read_volume(tmp_path).array] == [-23.5, -23, -23, -23]


def test_a_scout_sorted_first_is_named_not_the_series_slices(tmp_path):
    ct_slice(tmp_path / "a_scout.dcm", 0, 24, iop=(1, 0, 0, 0, 0, -1),
             image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    for k in range(5):
        ct_slice(tmp_path / f"s{k}.dcm", 100 + 5 * k, 1024)
    vol = read_dicom_folder(tmp_path, lenient=True)  # what hrinet info reads
    assert vol.metadata["dicom_series"][0]["kind"] == "image"
    (problem,) = vol.metadata["problems"]
    assert problem.startswith(f"{tmp_path / 'a_scout.dcm'} is oriented differently")
    assert "and 4 more" not in problem


def test_a_slice_of_another_size_is_named_with_what_to_do(tmp_path):
    for k in range(4):
        ct_slice(tmp_path / f"s{k}.dcm", 5 * k, 1024, size=10 if k == 2 else 8)
    for lenient in (False, True):  # hrinet info too: the problem, not ITK's words
        with pytest.raises(HRINetError, match="s2.dcm has 10 x 10 pixels where the series' "
                           "other slices have 8 x 8; it belongs to another acquisition: move "
                           "it out") as err:
            read_dicom_folder(tmp_path, lenient=lenient)
        assert "0x" not in str(err.value)  # no address of ITK's objects


def test_half_scouts_half_slices_names_the_scouts_and_nothing_else(tmp_path):
    for k in range(3):  # three coronal scouts, then three axial slices, one series UID
        ct_slice(tmp_path / f"a{k}.dcm", 0, 24, iop=(1, 0, 0, 0, 0, -1),
                 image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
        ct_slice(tmp_path / f"s{k}.dcm", 5 * k, 1024)
    (problem,) = read_dicom_folder(tmp_path, lenient=True).metadata["problems"]
    assert problem.startswith(f"{tmp_path / 'a0.dcm'} is oriented differently")
    assert "(and 2 more slice(s))" in problem


def test_one_rescale_written_two_ways_is_one_rescale(tmp_path):
    for k in range(4):
        ct_slice(tmp_path / f"s{k}.dcm", 5 * k, 1024, intercept="-1024" if k % 2 else "-1024.0")
    vol = read_volume(tmp_path)
    assert not any("differ" in w for w in vol.metadata["warnings"])
    assert int(vol.array.mean()) == 0  # HU: 1024 stored, intercept -1024


def test_a_derived_series_of_slices_rescaled_with_different_fractions_is_refused(tmp_path):
    from hrinet.core.io import check_derivable

    for k in range(4):
        ct_slice(tmp_path / f"s{k}.dcm", 5 * k, 1001, intercept=-1024 if k else -1024.5)
    with pytest.raises(HRINetError, match="rescaled differently, with fractions"):
        check_derivable(read_volume(tmp_path))  # one rescale would round the acquired slices
    for k in range(4):  # whole numbers: stored exactly under one rescale
        ct_slice(tmp_path / f"s{k}.dcm", 5 * k, 24, intercept=0 if k else -1024)
    check_derivable(read_volume(tmp_path))
