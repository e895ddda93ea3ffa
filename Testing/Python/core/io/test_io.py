"""Volume I/O: what reads, what round-trips, and what is refused with one clear line."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import write_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import check_output_path, read_volume, write_volume


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.uint16, np.int32, np.float32,
                                   np.float64])
@pytest.mark.parametrize("ext", [".nrrd", ".nii.gz", ".mha"])
def test_round_trip_keeps_geometry_and_pixel_type(tmp_path, oblique_phantom, dtype, ext):
    vol = oblique_phantom.with_array(np.clip(oblique_phantom.array, 0, 255).astype(dtype))
    path = write_volume(vol, tmp_path / f"v{ext}")
    back = read_volume(path)
    assert back.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.spacing, vol.spacing, rtol=1e-6)
    np.testing.assert_allclose(back.origin, vol.origin, atol=1e-4)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-6)


def test_write_is_atomic_and_leaves_no_partial_file(tmp_path, phantom):
    out = tmp_path / "v.nrrd"
    write_volume(phantom, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nrrd"]


def test_write_refuses_existing_output_without_overwrite(tmp_path, phantom):
    out = tmp_path / "v.nrrd"
    out.write_bytes(b"precious")
    with pytest.raises(HRINetError, match="exists; allow replacing it"):
        write_volume(phantom, out)
    assert out.read_bytes() == b"precious"
    write_volume(phantom, out, overwrite=True)
    assert read_volume(out).array.shape == phantom.array.shape


def test_failed_write_keeps_previous_file_and_leaves_no_partial(tmp_path, phantom, monkeypatch):
    out = tmp_path / "v.nrrd"
    out.write_bytes(b"precious")

    def disk_full(image, path, **_kw):  # writes part of the file, then the disk is full
        with open(path, "wb") as f:
            f.write(b"NRRD0004\n partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sitk, "WriteImage", disk_full)
    with pytest.raises(HRINetError, match="free disk space.*nothing was written"):
        write_volume(phantom, out, overwrite=True)
    assert out.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["v.nrrd"]


def test_output_equal_to_input_is_refused(tmp_path, phantom):
    p = write_volume(phantom, tmp_path / "in.nrrd")
    with pytest.raises(HRINetError, match="is the input"):
        check_output_path(tmp_path / "." / "in.nrrd", [p], overwrite=True)


def _file(name, content: bytes):
    def make(folder):
        (folder / name).write_bytes(content)
        return folder / name
    return make


def _folder(folder):
    (folder / "folder").mkdir()
    return folder / "folder"


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.nrrd", "does not exist"),
    (_file("empty.nrrd", b""), "empty"),
    (_file("text.nrrd", b"this is not an image\n"), "cannot read"),
    (_file("text.nii.gz", b"hello"), "cannot read"),
    (_file("text.mha", b"hello"), "cannot read"),
    (_folder, "no DICOM series"),
])
def test_unreadable_inputs_get_one_clear_line(tmp_path, make, message):
    with pytest.raises(HRINetError, match=message) as err:
        read_volume(make(tmp_path))
    assert "\n" not in str(err.value)


def test_truncated_nrrd_is_refused(tmp_path, phantom):
    good = write_volume(phantom, tmp_path / "good.nrrd", compress=False)
    data = good.read_bytes()
    bad = tmp_path / "truncated.nrrd"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(HRINetError, match="cannot read"):
        read_volume(bad)


def test_2d_image_is_refused(tmp_path):
    p = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.int16)), str(p))
    with pytest.raises(HRINetError, match="2D image"):
        read_volume(p)


def test_vector_image_is_refused(tmp_path):
    p = tmp_path / "rgb.nrrd"
    img = sitk.GetImageFromArray(np.zeros((4, 8, 8, 3), np.uint8), isVector=True)
    sitk.WriteImage(img, str(p))
    with pytest.raises(HRINetError, match="3 components"):
        read_volume(p)


def test_4d_image_is_refused(tmp_path):
    p = tmp_path / "t.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 8, 8), np.int16), isVector=False), str(p))
    with pytest.raises(HRINetError, match="4 dimensions"):
        read_volume(p)


def test_dicom_slices_are_ordered_by_position_not_file_name(tmp_path):
    write_dicom_series(tmp_path / "d", [12.0, 0.0, 4.0, 8.0])
    vol = read_volume(tmp_path / "d")
    assert vol.spacing[2] == pytest.approx(4.0)
    assert list(vol.array[:, 0, 0]) == [10, 20, 30, 0]  # written order was 12, 0, 4, 8 mm


def test_dicom_missing_slice_is_read_at_the_known_positions_and_the_gap_named(tmp_path):
    write_dicom_series(tmp_path / "d", [0.0, 2.0, 4.0, 8.0, 10.0])
    vol = read_volume(tmp_path / "d")
    assert vol.metadata["slice_positions_mm"] == [0.0, 2.0, 4.0, 8.0, 10.0]
    assert any("missing slice" in w and "slices 2 and 3" in w for w in vol.metadata["warnings"])
