"""Enhanced multi-frame DICOM (one file holding a whole series): its geometry is read from every
frame's functional groups, as a series' slices are, never GDCM's guess (which takes uneven
frames for 1 mm pixels and slices, and a repeated position for an even gap)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hrinet.cli import main
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_provenance, read_volume
from hrinet.core.io.provenance.slices import parse_indices
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import EnhancedCTImageStorage, ExplicitVRLittleEndian, generate_uid


def multiframe(path: Path, zs, values=None, iops=None, size=16, rescales=None, pixels=None,
               modality="CT") -> Path:
    """An Enhanced CT file: frame ``i`` at z ``zs[i]`` filled with ``values[i]`` HU (default
    ``10 i``), stored unsigned with RescaleIntercept -1024, pixels 0.8 (rows) x 0.7 (columns)
    mm, 2 mm thick; ``iops``: an orientation per frame (default one shared, axial);
    ``rescales``: a (slope, intercept) per frame; ``pixels``: a PixelSpacing per frame."""
    hu = np.stack([np.full((size, size), 10 * i if values is None else values[i])
                   for i in range(len(zs))])
    stored = (hu + 1024).astype(np.uint16)
    if rescales is not None:
        stored = np.stack([np.rint((h - b) / a) for h, (a, b) in zip(hu, rescales)]
                          ).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = (EnhancedCTImageStorage,
                                                                     generate_uid())
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = EnhancedCTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "1.2.3", "1.2.3.4", "1.5"
    ds.Modality, ds.PatientID, ds.InstanceNumber = modality, "1", 1
    ds.Rows = ds.Columns = size
    ds.NumberOfFrames = len(zs)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    measures, transform = Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = [0.8, 0.7], 2
    transform.RescaleIntercept, transform.RescaleSlope, transform.RescaleType = -1024, 1, "HU"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PixelValueTransformationSequence = Sequence([transform])
    if iops is None:
        orientation = Dataset()
        orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for i, z in enumerate(zs):
        position, frame = Dataset(), Dataset()
        position.ImagePositionPatient = [5.0, -3.0, z]
        frame.PlanePositionSequence = Sequence([position])
        if iops is not None:
            orientation = Dataset()
            orientation.ImageOrientationPatient = list(iops[i])
            frame.PlaneOrientationSequence = Sequence([orientation])
        if rescales is not None:
            own = Dataset()
            own.RescaleSlope, own.RescaleIntercept, own.RescaleType = *rescales[i], "HU"
            frame.PixelValueTransformationSequence = Sequence([own])
        if pixels is not None:
            own = Dataset()
            own.PixelSpacing, own.SliceThickness = list(pixels[i]), 2
            frame.PixelMeasuresSequence = Sequence([own])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = stored.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def test_uneven_frames_keep_their_pixel_size_and_positions(tmp_path):
    vol = read_volume(multiframe(tmp_path / "ct.dcm", [0, 2, 4, 10, 12]))
    assert vol.spacing[:2] == pytest.approx((0.7, 0.8))  # x: columns, y: rows
    assert vol.origin == pytest.approx((5.0, -3.0, 0.0))
    assert vol.metadata["slice_positions_mm"] == pytest.approx([0, 2, 4, 10, 12])
    assert vol.metadata["slice_thickness_mm"] == 2
    assert any("uneven slice gaps" in w for w in vol.metadata["warnings"])
    assert [int(s.mean()) for s in vol.array] == [0, 10, 20, 30, 40]  # HU: rescaled


def test_an_uneven_file_is_interpolated_with_each_frame_at_its_position(tmp_path):
    src, out = multiframe(tmp_path / "ct.dcm", [0, 2, 4, 10, 12]), tmp_path / "iso.nrrd"
    assert main(["interpolate", str(src), str(out), "--method", "linear", "--factor", "2"]) == 0
    assert parse_indices(read_provenance(out)["acquired_slices"]) == [0, 2, 4, 10, 12]
    result = read_volume(out)
    assert result.array.shape[0] == 13 and result.spacing[2] == pytest.approx(1.0)
    assert result.array[7].mean() == pytest.approx(20 + 10 * 3 / 6, abs=0.5)  # z 7 mm


def test_frames_stored_in_any_order_are_read_along_their_normal(tmp_path):
    vol = read_volume(multiframe(tmp_path / "ct.dcm", [8, 2, 6, 0, 4]))
    assert vol.metadata["slice_positions_mm"] == pytest.approx([0, 2, 4, 6, 8])
    assert [int(s.mean()) for s in vol.array] == [30, 10, 40, 20, 0]
    assert vol.origin[2] == pytest.approx(0.0)


def test_a_repeated_frame_is_read_once_and_a_conflicting_one_is_refused(tmp_path):
    same = read_volume(multiframe(tmp_path / "same.dcm", [0, 2, 2, 4], values=[0, 10, 10, 20]))
    assert same.array.shape[0] == 3 and any("read once" in w for w in same.metadata["warnings"])
    with pytest.raises(HRINetError, match="two frames at position 2 mm") as err:
        read_volume(multiframe(tmp_path / "two.dcm", [0, 2, 2, 4]))
    assert "\n" not in str(err.value)


def test_frames_of_several_orientations_are_refused_in_one_line(tmp_path):
    iops = [(1, 0, 0, 0, 1, 0)] * 3 + [(1, 0, 0, 0, 0, -1)]
    with pytest.raises(HRINetError, match="frame 4 of ct.dcm is oriented differently"):
        read_volume(multiframe(tmp_path / "ct.dcm", [0, 2, 4, 6], iops=iops))


def test_a_folder_holding_one_multiframe_file_reads_it(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    multiframe(folder / "IM0001", [0, 2, 4, 10, 12])
    vol = read_volume(folder)
    assert vol.array.shape[0] == 5 and vol.spacing[:2] == pytest.approx((0.7, 0.8))
    assert vol.metadata["slice_positions_mm"] == pytest.approx([0, 2, 4, 10, 12])


def test_a_derived_dicom_series_of_a_multiframe_file_is_refused_before_any_work(tmp_path, capsys):
    folder, out = tmp_path / "series", tmp_path / "derived"
    folder.mkdir()
    multiframe(folder / "IM0001", [0, 2, 4, 6])
    assert main(["interpolate", str(folder), str(out), "--format", "dicom", "--method",
                 "linear", "--factor", "2"]) == 2
    err = capsys.readouterr().err
    assert "one multi-frame file" in err and "interpolating" not in err and not out.exists()


def test_frames_rescaled_differently_are_each_read_in_hu(tmp_path):
    rescales = [(1, -1024)] * 2 + [(2, -2048)] * 2  # as enhanced MR (and some CT) files do
    values = [-1000, -500, -1000, -400]
    vol = read_volume(multiframe(tmp_path / "ct.dcm", [0, 2, 4, 6], values, rescales=rescales))
    assert [int(s.mean()) for s in vol.array] == [-1000, -500, -1000, -400]


def test_frames_of_several_pixel_sizes_are_refused_in_one_line(tmp_path):
    pixels = [(0.8, 0.7)] * 2 + [(1.0, 1.0)] * 2
    with pytest.raises(HRINetError, match="frame 3 of ct.dcm has pixels of 1 x 1 mm"):
        read_volume(multiframe(tmp_path / "ct.dcm", [0, 2, 4, 6], pixels=pixels))


def test_a_multiframe_mr_file_is_said_not_to_be_ct(tmp_path):
    vol = read_volume(multiframe(tmp_path / "mr.dcm", [0, 2, 4], modality="MR"))
    assert any("modality is MR, not CT" in w for w in vol.metadata["warnings"])


def test_a_study_lists_a_multiframe_file_by_its_frames_and_reads_it_as_the_largest(tmp_path):
    from helpers import write_dicom_series

    multiframe(tmp_path / "enhanced.dcm", [0, 2, 4, 6, 8, 10])
    write_dicom_series(tmp_path, [0.0, 3.0, 6.0, 9.0], uid="1.2.3.77")
    vol = read_volume(tmp_path)
    listed = {s["uid"]: s for s in vol.metadata["dicom_series"]}
    assert listed["1.2.3.4"]["slices"] == 6 and listed["1.2.3.4"]["pixel_spacing"] == "0.8 x 0.7"
    assert vol.array.shape[0] == 6 and vol.metadata["series_uid"] == "1.2.3.4"
