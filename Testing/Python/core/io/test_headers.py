"""What a file's header promises is checked before it is read: never zero-filled, never a
spacing made up, never a data file outside the header's folder (hrinet.core.io.headers)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hrinet.core.errors import HRINetError
from hrinet.core.io import check_output_path, read_volume, write_volume
from hrinet.core.phantom import make_phantom

FORMATS = (".nii", ".nii.gz", ".nrrd", ".mha")


@pytest.fixture
def volume():
    return make_phantom(size=(32, 32, 10), spacing=(1.0, 1.0, 2.5))


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("where", [0.05, 0.25, 0.5, 0.75, 0.999])
def test_a_file_cut_anywhere_is_refused_in_one_line_never_zero_filled(tmp_path, volume, ext,
                                                                       where):
    data = write_volume(volume, tmp_path / f"v{ext}").read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: max(1, int(len(data) * where))])
    try:
        back = read_volume(cut)
    except HRINetError as exc:
        assert "\n" not in str(exc)
        return
    np.testing.assert_array_equal(back.array, volume.array)  # read whole, or refused


@pytest.mark.parametrize("value", [0.0, float("nan"), float("inf")])
def test_a_nifti_spacing_that_is_no_number_of_mm_is_refused_not_made_1_mm(tmp_path, volume,
                                                                          value):
    data = bytearray(write_volume(volume, tmp_path / "v.nii").read_bytes())
    data[88:92] = struct.pack("<f", value)  # pixdim[3]
    (tmp_path / "w.nii").write_bytes(bytes(data))
    with pytest.raises(HRINetError, match="spacing"):
        read_volume(tmp_path / "w.nii")


def _nhdr(folder, data_file: str, spacing: str = "2") -> object:
    header = folder / "v.nhdr"
    header.write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 3\n"
                      f"spacings: 1 1 {spacing}\nendian: little\nencoding: raw\n"
                      f"data file: {data_file}\n\n")
    return header


@pytest.mark.parametrize("spacing", ["nan", "inf"])
def test_an_nrrd_spacing_that_is_no_number_is_refused(tmp_path, spacing):
    (tmp_path / "v.raw").write_bytes(np.zeros(48, np.int16).tobytes())
    with pytest.raises(HRINetError, match="not a number"):
        read_volume(_nhdr(tmp_path, "v.raw", spacing))


@pytest.mark.parametrize("target", ["../secret.raw", "/etc/hostname"])
def test_a_detached_header_pointing_outside_its_folder_is_refused(tmp_path, target):
    inner = tmp_path / "case"
    inner.mkdir()
    (tmp_path / "secret.raw").write_bytes(np.arange(48, dtype=np.int16).tobytes())
    with pytest.raises(HRINetError, match="outside its own folder"):
        read_volume(_nhdr(inner, target))
    mhd = inner / "v.mhd"
    mhd.write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 4 3\nElementType = MET_SHORT\n"
                   f"ElementDataFile = {target}\n")
    with pytest.raises(HRINetError, match="outside its own folder"):
        read_volume(mhd)


def test_the_output_may_not_be_the_data_file_of_a_detached_input(tmp_path):
    raw = tmp_path / "victim.nii"
    raw.write_bytes(np.zeros(48, np.int16).tobytes())
    header = _nhdr(tmp_path, "victim.nii")
    with pytest.raises(HRINetError, match="holds the voxels of the input"):
        check_output_path(raw, inputs=[header], overwrite=True)
    assert raw.stat().st_size == 96


def test_a_cut_off_nifti_output_never_passes_the_read_back(tmp_path, volume, monkeypatch):
    """The NIfTI reader zero-fills what is missing, so the read-back alone would pass it."""
    import SimpleITK as sitk

    real = sitk.WriteImage

    def cut_writer(image, path, *a, **k):
        real(image, path, *a, **k)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) - 100])

    monkeypatch.setattr(sitk, "WriteImage", cut_writer)
    with pytest.raises(HRINetError):
        write_volume(volume, tmp_path / "o.nii")
    assert not (tmp_path / "o.nii").exists()


@pytest.mark.parametrize("ext", [".mha", ".nrrd"])
def test_a_header_describing_more_voxels_than_memory_is_refused_before_reading(tmp_path, ext):
    """The reader allocates what the header describes before reading a byte: a damaged or
    crafted header (a fuzzed MetaImage DimSize of 1e9 once took the machine's memory)."""
    if ext == ".mha":
        header = ("ObjectType = Image\nNDims = 3\nDimSize = 4 4 1000000000\nElementType = MET_SHORT\n"
                  "ElementDataFile = LOCAL\n")
    else:
        header = ("NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 1000000000\n"
                  "encoding: raw\nendian: little\n\n")
    path = tmp_path / f"huge{ext}"
    path.write_bytes(header.encode() + bytes(96))
    with pytest.raises(HRINetError, match="more than this machine's .* GiB of memory"):
        read_volume(path)


@pytest.mark.parametrize("ext, dims, sizes", [(".mha", "4", "1000"), (".mha", "x", "4 4 3"),
                                              (".mha", "3", "4 4 1e9"), (".nrrd", "3", "4 4"),
                                              (".nrrd", "3", "4 -4 3"), (".nrrd", "3", "4 4.5 3")])
def test_a_header_whose_sizes_do_not_match_its_dimension_is_refused_as_damaged(tmp_path, ext,
                                                                               dims, sizes):
    if ext == ".mha":
        header = (f"ObjectType = Image\nNDims = {dims}\nDimSize = {sizes}\n"
                  "ElementType = MET_SHORT\nElementDataFile = LOCAL\n")
    else:
        header = (f"NRRD0004\ntype: short\ndimension: {dims}\nsizes: {sizes}\n"
                  "encoding: raw\nendian: little\n\n")
    path = tmp_path / f"v{ext}"
    path.write_bytes(header.encode() + bytes(96))
    with pytest.raises(HRINetError, match="header is damaged: .* needs a whole number"):
        read_volume(path)
