"""Readers read only what the user named, and all of it (issue 40, items 4, 5, 18, 19).

Every data file a detached header can name (one name, a file-name pattern, a LIST; NRRD and
MetaImage alike) lies in the header's folder; a NIfTI/Analyze pair's ``.img`` holds every voxel
its ``.hdr`` describes; a NIfTI orientation in use is made of numbers; a DICOM slice whose pixel
spacing or in-plane position differs from its series' is named, not read with the first slice's
geometry.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from hrinet.core.errors import HRINetError
from hrinet.core.io import check_output_path, read_volume

#: What the files outside the header's folder hold: a read of them would show in the voxels.
SECRET = np.full((3, 4, 4), 4242, np.int16)
META = ("ObjectType = Image\nNDims = 3\nDimSize = 4 4 3\nElementSpacing = 1 1 2\n"
        "ElementType = MET_SHORT\nBinaryDataByteOrderMSB = False\n")
NRRD = ("NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 3\nspacings: 1 1 2\nencoding: raw\n"
        "endian: little\n")


@pytest.fixture
def case(tmp_path):
    """A folder ``case`` for the header; beside it, outside, the secret slices ``secre0..2.raw``
    and the whole ``secret.raw``; inside, the user's own slices ``s0..2.raw`` and ``own.raw``."""
    inner = tmp_path / "case"
    inner.mkdir()
    for i in range(3):
        (tmp_path / f"secre{i}.raw").write_bytes(SECRET[i].tobytes())
        (inner / f"s{i}.raw").write_bytes(np.full((4, 4), i + 1, np.int16).tobytes())
    (tmp_path / "secret.raw").write_bytes(SECRET.tobytes())
    (inner / "own.raw").write_bytes(np.arange(48, dtype=np.int16).tobytes())
    return inner


def _refused_outside(header, data_file: str) -> None:
    with pytest.raises(HRINetError) as info:
        read_volume(header)
    message = str(info.value)
    assert "\n" not in message
    assert str(header) in message and data_file in message, message
    assert "outside its own folder" in message and "beside the header" in message, message


# ---- item 4: every data file a header names lies in the header's folder ---------------------

@pytest.mark.parametrize("listed", ["../secre0.raw\n../secre1.raw\n../secre2.raw\n",
                                    "s0.raw\ns1.raw\n../secre2.raw\n",
                                    "s0.raw\nsub/../../secre1.raw\ns2.raw\n"])
def test_a_metaimage_list_naming_a_file_outside_the_header_folder_is_refused(case, listed):
    header = case / "v.mhd"
    header.write_text(META + "ElementDataFile = LIST\n" + listed)
    outside = next(n for n in listed.split() if ".." in n)
    _refused_outside(header, outside)


@pytest.mark.parametrize("pattern, first", [("../secre%d.raw 0 2 1", "../secre0.raw"),
                                            ("../secre%d.raw 0", "../secre0.raw"),
                                            ("../secre%01d.raw 2 0 -1", "../secre2.raw"),
                                            ("../secre%d.raw 0 0 1", "../secre0.raw")])
def test_an_nhdr_file_name_pattern_reaching_outside_the_header_folder_is_refused(case, pattern,
                                                                                 first):
    if pattern.endswith(" 0"):  # min only: not a pattern to the NRRD reader, a name
        pattern, first = "../secre%d.raw 0 2 1 2", "../secre0.raw"
    header = case / "v.nhdr"
    header.write_text(NRRD + f"data file: {pattern}\n\n")
    _refused_outside(header, first)


@pytest.mark.parametrize("pattern, first", [("../secre%d.raw 0 2 1", "../secre0.raw"),
                                            ("../secre%d.raw 0", "../secre0.raw"),
                                            ("../secre%03d.raw 0 2 1", "../secre000.raw"),
                                            ("s%d.raw 0 1 1\n", None)])
def test_a_metaimage_file_name_pattern_reaching_outside_the_header_folder_is_refused(
        case, pattern, first):
    header = case / "v.mhd"
    if first is None:  # inside, but its third slice would come from the parent: 0, 1, then 2
        (case.parent / "s2.raw").write_bytes(SECRET[2].tobytes())
        header.write_text(META + "ElementDataFile = ../case/s%d.raw 0 1 1\n")
        with pytest.raises(HRINetError, match="2 data file.s. with the pattern .* for 3 slices"):
            read_volume(header)
        return
    header.write_text(META + f"ElementDataFile = {pattern}\n")
    _refused_outside(header, first)


def test_the_pattern_the_issue_names_is_refused_as_the_issue_shows_it(case):
    """``ElementDataFile = ../secre%d.raw 0 0 1`` with a single-slice volume; ``data file:
    ../secre%d.raw 0 0 1 3`` for NRRD."""
    mhd = case / "one.mhd"
    mhd.write_text(META.replace("DimSize = 4 4 3", "DimSize = 4 4 1")
                   + "ElementDataFile = ../secre%d.raw 0 0 1\n")
    _refused_outside(mhd, "../secre0.raw")
    (case.parent / "secre0.raw").write_bytes(SECRET.tobytes())  # the whole volume in one file
    nhdr = case / "one.nhdr"
    nhdr.write_text(NRRD + "data file: ../secre%d.raw 0 0 1 3\n\n")
    _refused_outside(nhdr, "../secre0.raw")


@pytest.mark.parametrize("ext, field", [(".mhd", "ElementDataFile = "), (".nhdr", "data file: ")])
@pytest.mark.parametrize("form", ["s%d.raw 0 2 1", "LIST\ns0.raw\ns1.raw\ns2.raw"])
def test_patterns_and_lists_inside_the_header_folder_still_read_every_slice(case, ext, field,
                                                                          form):
    header = case / f"v{ext}"
    header.write_text((META if ext == ".mhd" else NRRD) + field + form + "\n")
    volume = read_volume(header)
    assert [int(volume.array[z].max()) for z in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("value, fragment", [
    ("s%s.raw 0 2 1", "not a file name with one number"),
    ("s%d%d.raw 0 2 1", "not a file name with one number"),
    ("s%d.raw 0 2", "names no file or never ends"),        # step (2 - 0) / 3 = 0
    ("s%d.raw 0 2 0", "names no file or never ends"),
    ("s%d.raw 5 0 1", "names no file or never ends"),
    ("s%d.raw 2 0 -1", "step goes down"),
    ("s%d.raw 0 1 1", "2 data file"),                       # three slices, two files
])
def test_a_metaimage_pattern_the_reader_cannot_follow_is_refused_in_one_line(case, value,
                                                                             fragment):
    """The reader divides by a step of 0 (the process dies), counts up forever on a step down,
    and leaves the slices a pattern does not reach as whatever memory held."""
    header = case / "v.mhd"
    header.write_text(META + f"ElementDataFile = {value}\n")
    code = ("import sys\nfrom hrinet.core.io import read_volume\nfrom hrinet.core.errors import "
            "HRINetError\ntry:\n    read_volume(sys.argv[1])\nexcept HRINetError as e:\n"
            "    print('refused:', e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(header)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, (r.returncode, r.stderr)  # not killed by the reader
    assert r.stdout.startswith("refused:") and fragment in r.stdout, r.stdout
    assert r.stdout.count("\n") == 1


def test_a_metaimage_list_shorter_than_its_slices_is_refused_not_read_from_memory(case):
    header = case / "v.mhd"
    header.write_text(META + "ElementDataFile = LIST\ns0.raw\ns1.raw\ns2.raw")  # no last \n
    with pytest.raises(HRINetError, match="lists 2 data file.s. for 3 slices"):
        read_volume(header)


def test_the_output_may_not_be_a_data_file_a_pattern_or_list_names(case):
    header = case / "v.mhd"
    header.write_text(META + "ElementDataFile = s%d.raw 0 2 1\n")
    listed = case / "l.nhdr"
    listed.write_text(NRRD + "data file: LIST\ns0.raw\ns1.raw\ns2.raw\n")
    for src in (header, listed):
        with pytest.raises(HRINetError, match="holds the voxels of the input"):
            check_output_path(case / "s2.raw", inputs=[src], overwrite=True)
    pair_header, pair_data = _pair(case)
    with pytest.raises(HRINetError, match="holds the voxels of the input"):
        check_output_path(pair_data, inputs=[pair_header], overwrite=True)


# ---- item 5: a NIfTI/Analyze pair's .img holds every voxel its .hdr describes ----------------

def _pair(folder, gz: bool = False, analyze: bool = False):
    """A 16 x 16 x 20 int16 pair (no zero voxel); returns (header, data)."""
    array = (np.arange(20 * 16 * 16, dtype=np.int16).reshape(20, 16, 16) % 100) + 1
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.7, 2.0))
    suffix = ".gz" if gz else ""
    header, data = folder / f"pair.hdr{suffix}", folder / f"pair.img{suffix}"
    sitk.WriteImage(image, str(header))
    if analyze:  # NIfTI magic cleared: read as Analyze 7.5, the same size fields
        raw = bytearray(gzip.decompress(header.read_bytes()) if gz else header.read_bytes())
        raw[344:348] = b"\0\0\0\0"
        header.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    return header, data


@pytest.mark.parametrize("keep", [0.0, 1 / 3, 0.999])
@pytest.mark.parametrize("named", ["hdr", "img"])
def test_a_nifti_pair_with_a_cut_off_img_is_refused_never_zero_filled(tmp_path, keep, named):
    header, data = _pair(tmp_path)
    full = data.read_bytes()
    data.write_bytes(full[: int(len(full) * keep)])
    target = header if named == "hdr" or keep == 0 else data  # a 0-byte file is refused as empty
    with pytest.raises(HRINetError, match="cut off|empty") as info:
        read_volume(target)
    assert "\n" not in str(info.value)
    if target == header:
        assert "pair.img" in str(info.value) and str(len(full)) in str(info.value)


@pytest.mark.parametrize("gz, analyze", [(True, False), (False, True)])
def test_a_compressed_or_analyze_pair_cut_off_is_refused_too(tmp_path, gz, analyze):
    header, data = _pair(tmp_path, gz=gz, analyze=analyze)
    assert read_volume(header).array.min() > 0  # whole, it reads
    raw = gzip.decompress(data.read_bytes()) if gz else data.read_bytes()
    cut = raw[: len(raw) // 2]
    data.write_bytes(gzip.compress(cut) if gz else cut)
    with pytest.raises(HRINetError, match="cut off"):
        read_volume(header)


def test_a_whole_nifti_pair_still_reads_by_either_name(tmp_path):
    header, data = _pair(tmp_path)
    for name in (header, data):
        volume = read_volume(name)
        assert volume.array.shape == (20, 16, 16) and volume.array.min() > 0


def test_a_nifti_pair_missing_its_img_is_refused_in_one_line(tmp_path):
    header, data = _pair(tmp_path)
    data.unlink()
    with pytest.raises(HRINetError, match="data file .* is missing"):
        read_volume(header)


# ---- item 19: a NIfTI qform or sform in use holds numbers ----------------------------------

def _nifti(folder, qform_code: int, sform_code: int, edits: dict, gz: bool = False):
    image = sitk.GetImageFromArray(np.ones((4, 5, 6), np.int16))
    image.SetOrigin((10.0, -20.0, 30.0))
    path = folder / ("v.nii.gz" if gz else "v.nii")
    sitk.WriteImage(image, str(path))
    raw = bytearray(gzip.decompress(path.read_bytes()) if gz else path.read_bytes())
    struct.pack_into("<hh", raw, 252, qform_code, sform_code)
    for offset, value in edits.items():
        struct.pack_into("<f", raw, offset, value)
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    return path


#: NIfTI-1 byte offsets of the qform's quaternion and offset, and of sform entries.
QFORM = {"quatern_b": 256, "quatern_c": 260, "quatern_d": 264, "qoffset_x": 268,
         "qoffset_y": 272, "qoffset_z": 276}
SFORM = {"srow_x[0]": 280, "srow_y[3]": 308, "srow_z[2]": 320}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("field", sorted(QFORM))
def test_a_nifti_qform_in_use_holding_nan_or_inf_is_refused(tmp_path, field, value):
    path = _nifti(tmp_path, 1, 0, {QFORM[field]: value})
    with pytest.raises(HRINetError, match=f"qform .*{field}") as info:
        read_volume(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("field", sorted(SFORM))
@pytest.mark.parametrize("gz", [False, True])
def test_a_nifti_sform_in_use_holding_nan_is_refused(tmp_path, field, gz):
    path = _nifti(tmp_path, 0, 1, {SFORM[field]: float("nan")}, gz=gz)
    with pytest.raises(HRINetError, match=r"sform .*" + field.replace("[", r"\[")):
        read_volume(path)


def test_a_nan_in_a_form_the_header_does_not_use_is_no_reason_to_refuse(tmp_path):
    path = _nifti(tmp_path, 0, 1, {QFORM["quatern_d"]: float("nan")})  # qform_code 0: unused
    volume = read_volume(path)
    assert np.all(np.isfinite(volume.origin)) and np.all(np.isfinite(volume.direction))


def test_a_nifti_whose_qform_holds_numbers_reads_with_its_origin(tmp_path):
    volume = read_volume(_nifti(tmp_path, 1, 0, {}))
    np.testing.assert_allclose(volume.origin, (10.0, -20.0, 30.0))


# ---- item 18: a DICOM slice of another pixel spacing or in-plane place is named --------------

def _series(folder, positions, spacings=None):
    """Axial CT slices ``s000-.dcm, ...`` of one series at ``positions`` (x, y, z in mm), pixel
    spacing ``spacings[i]`` (x, y in mm; 0.7 by default). The DICOM writer takes PixelSpacing
    from the image's spacing, so each slice is written with its own."""
    folder.mkdir(exist_ok=True)
    for i, (x, y, z) in enumerate(positions):
        image = sitk.GetImageFromArray(np.full((1, 8, 8), 10 * i, np.int16))
        image.SetSpacing((*(spacings[i] if spacings else (0.7, 0.7)), 1.0))
        for key, value in {"0020|000e": "1.2.3.4", "0020|000d": "1.2.3", "0008|0060": "CT",
                           "0020|0013": str(i + 1), "0008|0018": f"1.2.3.4.{i + 1}",
                           "0020|0032": f"{x}\\{y}\\{z}",
                           "0020|0037": "1\\0\\0\\0\\1\\0"}.items():
            image.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"s{i:03d}-.dcm"))
        writer.Execute(image)
    return folder


STRAIGHT = [(0.0, 0.0, 2.5 * i) for i in range(8)]


@pytest.mark.parametrize("odd", [0, 3, 7])
def test_a_dicom_slice_with_another_pixel_spacing_is_refused_naming_it(tmp_path, odd):
    spacings = [(0.7, 0.7)] * 8
    spacings[odd] = (0.8, 0.8)
    folder = _series(tmp_path / "ct", STRAIGHT, spacings)
    with pytest.raises(HRINetError) as info:
        read_volume(folder)
    message = str(info.value)
    assert f"s{odd:03d}-" in message and "0.8 x 0.8" in message and "0.7 x 0.7" in message
    assert "\n" not in message


@pytest.mark.parametrize("odd", [0, 3, 7])
@pytest.mark.parametrize("shift", [(5.0, 0.0), (0.0, -5.0), (3.0, 4.0)])
def test_a_dicom_slice_shifted_in_plane_is_refused_naming_it(tmp_path, odd, shift):
    positions = list(STRAIGHT)
    positions[odd] = (shift[0], shift[1], positions[odd][2])
    folder = _series(tmp_path / "ct", positions)
    with pytest.raises(HRINetError) as info:
        read_volume(folder)
    message = str(info.value)
    assert f"s{odd:03d}-" in message and "5 mm in-plane off the line" in message, message
    assert "more slice" not in message and "\n" not in message


def test_a_slice_out_of_line_in_a_gantry_tilted_series_is_named_too(tmp_path):
    tilt = [(0.0, 0.4 * i, 2.5 * i) for i in range(8)]  # 0.4 mm in y per slice: about 9 degrees
    tilt[5] = (5.0, tilt[5][1], tilt[5][2])
    with pytest.raises(HRINetError, match="s005-.* in-plane off the line"):
        read_volume(_series(tmp_path / "ct", tilt))


def test_a_gantry_tilted_series_is_not_taken_for_slices_out_of_line(tmp_path):
    """An even in-plane drift is a tilt: whatever the tilt check decides, no slice is blamed."""
    tilt = [(0.0, 0.4 * i, 2.5 * i) for i in range(8)]
    try:
        read_volume(_series(tmp_path / "ct", tilt))
    except HRINetError as exc:
        assert "off the line" not in str(exc) and "tilt" in str(exc), str(exc)


def test_a_three_slice_series_names_the_slice_out_of_line_not_its_neighbour(tmp_path):
    positions = [(0.0, 0.0, 0.0), (0.0, 0.0, 2.5), (5.0, 0.0, 5.0)]
    with pytest.raises(HRINetError, match="s002-"):
        read_volume(_series(tmp_path / "ct", positions))


def test_positions_and_spacings_rounded_as_scanners_write_them_still_read(tmp_path):
    rng = np.random.default_rng(3)
    jitter = rng.uniform(-0.04, 0.04, size=(8, 2))  # positions written to 0.1 mm
    positions = [(-249.5 + jitter[i, 0], -437.5 + jitter[i, 1], 2.5 * i) for i in range(8)]
    spacings = [(0.703125, 0.703125)] * 8
    spacings[4] = (0.7031, 0.7031)
    volume = read_volume(_series(tmp_path / "ct", positions, spacings))
    assert volume.array.shape == (8, 8, 8)
    np.testing.assert_allclose(volume.spacing[:2], (0.703125, 0.703125))


def _nifti2(quatern_d: float) -> bytes:
    """A NIfTI-2 header (540 bytes, doubles) with qform_code 1, and its 4 x 5 x 6 int16 voxels."""
    head = bytearray(540)
    struct.pack_into("<i8s", head, 0, 540, b"n+2\0\r\n\x1a\n")
    struct.pack_into("<hh8q", head, 12, 4, 16, 3, 6, 5, 4, 1, 1, 1, 1)
    struct.pack_into("<8dq", head, 104, 1, 1, 1, 1, 1, 1, 1, 1, 544)
    struct.pack_into("<ii6d", head, 344, 1, 0, 0.0, 0.0, quatern_d, 10.0, -20.0, 30.0)
    return bytes(head) + bytes(4) + np.ones((4, 5, 6), np.int16).tobytes()


def test_a_nifti2_qform_in_use_holding_nan_is_refused_by_the_header_check(tmp_path):
    from hrinet.core.io.headers.nifti import check_nifti

    (tmp_path / "ok.nii").write_bytes(_nifti2(0.0))
    check_nifti(tmp_path / "ok.nii")
    (tmp_path / "nan.nii").write_bytes(_nifti2(float("nan")))
    with pytest.raises(HRINetError, match="qform .*quatern_d"):
        check_nifti(tmp_path / "nan.nii")

