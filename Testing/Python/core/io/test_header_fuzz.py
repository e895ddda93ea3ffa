"""Readers under fault injection and fuzzing: a file cut at ten points in every format, and a few
thousand generated headers (NRRD and detached NHDR, MetaImage, NIfTI fields, the DICOM tags that
decide geometry). Each is read correctly or refused in one line: never zero-filled, never an
internal error, never a read of a file outside the header's folder."""

from __future__ import annotations

import functools
import gzip
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import write_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume, write_volume
from hrinet.core.phantom import make_phantom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=800, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
#: What the data file outside the header's folder holds: a read of it would show in the voxels.
SECRET = b"SECRET" * 64


def _volume():
    return make_phantom(size=(24, 20, 6), spacing=(0.8, 0.8, 2.5), seed=4)


def _header_length(data: bytes, ext: str) -> int:
    if ext == ".nii":
        return int(struct.unpack("<f", data[108:112])[0])  # vox_offset
    if ext in (".nrrd", ".nrrd-raw"):
        return data.index(b"\n\n") + 2
    if ext in (".mha", ".mha-raw"):
        return data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    return 0  # .nii.gz: the whole file is one compressed stream


def _written(tmp_path, ext: str) -> bytes:
    volume = _volume()
    if ext.endswith("-raw"):  # uncompressed NRRD and MetaImage: the data is the file's tail
        image = sitk.GetImageFromArray(volume.array)
        image.SetSpacing(volume.spacing)
        path = tmp_path / f"w{ext[:-4]}"
        sitk.WriteImage(image, str(path), useCompression=False)
        return path.read_bytes()
    return write_volume(volume, tmp_path / f"w{ext}").read_bytes()


def _ten_points(data: bytes, ext: str):
    """Header start, middle and end, the first data byte, each quarter of the data, the last
    byte; for a compressed stream, ten places spread over the file."""
    n, h = len(data), _header_length(data, ext)
    if h == 0:
        return sorted({max(1, int(n * f)) for f in (0.01, 0.1, 0.2, 0.3, 0.45, 0.55, 0.7, 0.85,
                                                     0.95)} | {n - 1})
    d = n - h
    return sorted({1, h // 2, h - 1, h, h + 1, h + d // 4, h + d // 2, h + 3 * d // 4,
                   h + d - 2, n - 1})


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".nrrd", ".nrrd-raw", ".mha", ".mha-raw"])
def test_a_file_cut_at_ten_points_is_read_whole_or_refused_never_zero_filled(tmp_path, ext):
    data = _written(tmp_path, ext)
    points = _ten_points(data, ext)
    assert len(points) == 10
    suffix = ext.replace("-raw", "")
    for at in points:
        cut = tmp_path / f"cut{at}{suffix}"
        cut.write_bytes(data[:at])
        try:
            back = read_volume(cut)
        except HRINetError as exc:
            assert "\n" not in str(exc), (at, str(exc))
            continue
        np.testing.assert_array_equal(back.array, _volume().array, err_msg=f"cut at {at}")


def _check(path, sizes=None):
    """One-line refusal or a plausible read; never another exception, never the secret."""
    try:
        volume = read_volume(path)
    except HRINetError as exc:
        assert "\n" not in str(exc)
        return None
    assert volume.array.ndim == 3
    assert all(np.isfinite(s) and s > 0 for s in volume.spacing)
    assert SECRET[:12] not in volume.array.tobytes()
    if sizes is not None:
        assert tuple(volume.array.shape[::-1]) == tuple(sizes)
    return volume


_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.integers(-3, 40).map(float), st.sampled_from(["x", "", "1e-320", "-0"]))
_size = st.one_of(st.integers(-2, 9), st.sampled_from(["x", "", "1e9", "4.5"]))
_data_file = st.sampled_from(["d.raw", "../secret.raw", "/tmp/../etc/hostname",
                              "sub/../../secret.raw", "missing.raw", "LIST", "d.raw.gz"])
#: A valid 4 x 4 x 3 short volume, 96 bytes, 1 x 1 x 2.5 mm; each field of a generated header
#: keeps its valid value two times in three, so that reads succeed as well as fail.
SIZES, SPACINGS, PAYLOAD = (4, 4, 3), (1.0, 1.0, 2.5), 96


def _mostly(valid, fuzz):
    return st.one_of(st.just(valid), st.just(valid), fuzz)


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "secret.raw").write_bytes(SECRET * 64)
    inner = tmp_path / "in"
    inner.mkdir()
    return inner


def _payload(n: int) -> bytes:
    return (bytes(range(7, 256)) * (n // 249 + 1))[:n]


def _is_the_payload(volume) -> None:
    """A header left valid reads exactly the voxels written (little-endian shorts, x fastest)."""
    expected = np.frombuffer(_payload(PAYLOAD), "<i2").reshape(SIZES[::-1])
    np.testing.assert_array_equal(volume.array, expected)
    np.testing.assert_allclose(volume.spacing, SPACINGS)


@FUZZ
@given(kind=_mostly("short", st.sampled_from(["float", "uchar", "junk"])),
       dim=_mostly(3, st.one_of(st.integers(1, 5), st.just("x"))),
       sizes=_mostly(SIZES, st.lists(_size, min_size=1, max_size=5)),
       spacings=_mostly(SPACINGS, st.lists(_number, min_size=0, max_size=5)),
       encoding=_mostly("raw", st.sampled_from(["gzip", "ascii", "junk"])),
       data_file=_mostly("d.raw", _data_file), payload=_mostly(PAYLOAD, st.integers(0, 3000)),
       detached=st.booleans())
def test_generated_nrrd_headers_are_read_or_refused_in_one_line(folders, kind, dim, sizes,
                                                                spacings, encoding, data_file,
                                                                payload, detached):
    lines = ["NRRD0004", f"type: {kind}", f"dimension: {dim}",
             "sizes: " + " ".join(map(str, sizes)), f"encoding: {encoding}", "endian: little"]
    if spacings:
        lines.append("spacings: " + " ".join(map(str, spacings)))
    body = _payload(payload)
    body = gzip.compress(body) if encoding == "gzip" else body
    if detached:
        lines.append(f"data file: {data_file}")
        if data_file == "LIST":
            lines.append("d.raw")
        (folders / "d.raw").write_bytes(body)
        (folders / "v.nhdr").write_text("\n".join(lines) + "\n\n")
        volume = _check(folders / "v.nhdr")
    else:
        (folders / "v.nrrd").write_bytes(("\n".join(lines) + "\n\n").encode() + body)
        volume = _check(folders / "v.nrrd")
    valid = (kind, dim, sizes, spacings, encoding, payload) == ("short", 3, SIZES, SPACINGS,
                                                                "raw", PAYLOAD)
    if volume is not None and valid and data_file in ("d.raw", "LIST"):
        _is_the_payload(volume)


@FUZZ
@given(ndims=_mostly(3, st.one_of(st.integers(1, 4), st.just("x"))),
       sizes=_mostly(SIZES, st.lists(_size, min_size=1, max_size=4)),
       spacings=_mostly(SPACINGS, st.lists(_number, min_size=0, max_size=4)),
       etype=_mostly("MET_SHORT", st.sampled_from(["MET_FLOAT", "MET_UCHAR", "MET_JUNK"])),
       data_file=_mostly("LOCAL", _data_file), compressed=_mostly(False, st.just(True)),
       payload=_mostly(PAYLOAD, st.integers(0, 3000)),
       header_size=_mostly(None, st.integers(-1, 5000)))
def test_generated_metaimage_headers_are_read_or_refused_in_one_line(folders, ndims, sizes,
                                                                     spacings, etype, data_file,
                                                                     compressed, payload,
                                                                     header_size):
    lines = ["ObjectType = Image", f"NDims = {ndims}", "DimSize = " + " ".join(map(str, sizes)),
             f"ElementType = {etype}", "BinaryData = True", "BinaryDataByteOrderMSB = False",
             f"CompressedData = {compressed}"]
    if spacings:
        lines.append("ElementSpacing = " + " ".join(map(str, spacings)))
    if header_size is not None:
        lines.append(f"HeaderSize = {header_size}")
    body = _payload(payload)
    if data_file == "LOCAL":
        (folders / "v.mha").write_bytes(("\n".join(lines + ["ElementDataFile = LOCAL"])
                                         + "\n").encode() + body)
        volume = _check(folders / "v.mha")
    else:
        (folders / "d.raw").write_bytes(body)
        (folders / "v.mhd").write_text("\n".join(lines + [f"ElementDataFile = {data_file}"])
                                       + "\n")
        volume = _check(folders / "v.mhd")
    valid = (ndims, sizes, spacings, etype, compressed, payload, header_size) == (
        3, SIZES, SPACINGS, "MET_SHORT", False, PAYLOAD, None)
    if volume is not None and valid and data_file in ("LOCAL", "d.raw"):
        _is_the_payload(volume)


#: NIfTI-1 header fields: (byte offset, struct format).
NIFTI_FIELDS = {"dim0": (40, "<h"), "dim1": (42, "<h"), "dim2": (44, "<h"), "dim3": (46, "<h"),
                "dim4": (48, "<h"), "datatype": (70, "<h"), "bitpix": (72, "<h"),
                "pixdim1": (80, "<f"), "pixdim2": (84, "<f"), "pixdim3": (88, "<f"),
                "vox_offset": (108, "<f"), "scl_slope": (112, "<f"), "qform": (252, "<h"),
                "sform": (254, "<h"), "srow_x0": (280, "<f"), "srow_z2": (320, "<f"),
                "magic": (344, "4s")}


@functools.lru_cache(maxsize=1)
def _nifti() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return write_volume(_volume(), Path(folder) / "v.nii").read_bytes()


@FUZZ
@given(edits=st.dictionaries(st.sampled_from(sorted(NIFTI_FIELDS)),
                             st.one_of(st.integers(-3, 70000), _number.filter(
                                 lambda v: isinstance(v, float))), min_size=1, max_size=4),
       gz=st.booleans())
def test_generated_nifti_headers_are_read_or_refused_in_one_line(tmp_path, edits, gz):
    data = bytearray(_nifti())
    for name, value in edits.items():
        offset, fmt = NIFTI_FIELDS[name]
        if fmt == "4s":
            packed = b"n+1\0" if hash(value) % 2 else b"ni1\0"
        elif fmt == "<h":
            packed = struct.pack(fmt, int(np.clip(np.nan_to_num(value), -32768, 32767)))
        else:
            packed = struct.pack(fmt, float(value))
        data[offset:offset + len(packed)] = packed
    path = tmp_path / ("v.nii.gz" if gz else "v.nii")
    path.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    _check(path)




_text = st.one_of(_number.map(str), st.sampled_from(["", "a\\b", "1\\2\\x", "\\\\"]))
_valid_positions = st.integers(2, 4).map(lambda n: [(0.0, 0.0, 2.5 * i) for i in range(n)])


@FUZZ
@given(positions=_mostly([(0.0, 0.0, 0.0), (0.0, 0.0, 2.5), (0.0, 0.0, 5.0)], st.one_of(
           _valid_positions, st.lists(st.tuples(_number, _number, _number), min_size=2,
                                      max_size=4))),
       orientation=_mostly("1\\0\\0\\0\\1\\0", st.one_of(
           st.lists(_number, min_size=6, max_size=6).map(lambda v: "\\".join(map(str, v))),
           _text)),
       pixel_spacing=_mostly("0.7\\0.7", st.one_of(
           _text, st.tuples(_number, _number).map(lambda v: f"{v[0]}\\{v[1]}"))),
       thickness=_mostly("2.5", _text))
def test_generated_dicom_geometry_tags_are_read_or_refused_in_one_line(tmp_path, positions,
                                                                       orientation,
                                                                       pixel_spacing,
                                                                       thickness):
    folder = tmp_path / "dicom"
    for f in folder.glob("*") if folder.exists() else []:
        f.unlink()
    try:
        write_dicom_series(folder, positions, tags={"0020|0037": orientation,
                                                    "0028|0030": pixel_spacing,
                                                    "0018|0050": thickness})
    except RuntimeError:  # a header the DICOM writer itself refuses: no such file to read
        return
    _check(folder)


@pytest.mark.parametrize("header", ["NRRD0004\ntype: short\n", "NRRD0004\nsizes: 4 4 3\n",
                                    "NRRD0004\ndimension: 3\n\n", "NRRD0004\n"])
def test_an_nrrd_header_missing_its_fields_is_one_line(tmp_path, header):
    (tmp_path / "v.nrrd").write_text(header)
    _check(tmp_path / "v.nrrd")
