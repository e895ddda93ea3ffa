"""Series as scanners write them: gantry-tilted slices are de-tilted onto an orthogonal grid and
unevenly spaced slices are interpolated across their own gaps, the geometry kept exact in
patient space (issue 41, items 1 and 2).

The phantom is analytic and defined in patient space (series_phantom.py), so every output is
checked against the truth on its own grid.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import cli, write_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.geometry import describe_gaps, grid_fractions, uneven_grid
from hrinet.core.io import read_volume
from hrinet.core.volume import Volume
from hrinet.methods.engine import upsample_z
from hrinet.methods.planning import plan_upsampling
from series_phantom import (
    POINT,
    point_position,
    psnr,
    sample,
    straight_scan,
    tilted_scan,
    write_series,
)

TILT, TABLE_STEP, SLICES = 18.5, 3.2, 24


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """The phantom scanned with an 18.5-degree gantry tilt, and the same slice planes stacked
    straight (the same scan untilted)."""
    root = tmp_path_factory.mktemp("scans")
    return (tilted_scan(root / "tilted", TILT, TABLE_STEP, SLICES),
            tilted_scan(root / "untilted", TILT, TABLE_STEP, SLICES, sheared=False))


def _error_in_voxels(volume: Volume, position: np.ndarray) -> np.ndarray:
    """``position - POINT`` along the volume's axes, in voxels."""
    return np.abs(np.linalg.inv(volume.direction) @ (position - POINT)) / np.asarray(volume.spacing)


# ---- gantry tilt -----------------------------------------------------------------------------

def test_a_tilted_series_is_read_on_an_orthogonal_grid_with_the_tilt_named(scans):
    tilted, untilted = scans
    vol, ref = read_volume(tilted), read_volume(untilted)
    assert any(w.startswith("gantry tilt 18.5 degrees: slices de-tilted onto an orthogonal grid")
               for w in vol.metadata["warnings"]), vol.metadata["warnings"]
    assert vol.metadata["gantry_tilt_degrees"] == pytest.approx(TILT, abs=0.01)
    # slice spacing along the normal, the grid the untilted scan has
    assert vol.spacing == pytest.approx(ref.spacing, abs=1e-5)
    assert vol.spacing[2] == pytest.approx(TABLE_STEP * np.cos(np.radians(TILT)), abs=1e-5)
    assert np.allclose(vol.direction, ref.direction, atol=1e-6)
    assert np.allclose(vol.origin, ref.origin, atol=1e-4)
    assert np.allclose(vol.direction.T @ vol.direction, np.eye(3), atol=1e-9)


def test_de_tilted_slices_hold_the_phantom_where_it_lies_in_patient_space(scans):
    vol = read_volume(scans[0])
    truth = sample(vol.origin, vol.direction, vol.spacing, vol.array.shape)
    assert psnr(vol.array, truth) > 50
    assert _error_in_voxels(vol, point_position(vol)).max() < 0.1


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_the_isotropic_output_of_a_tilted_scan_matches_the_untilted_scan(scans, method):
    """Against the phantom on the output's grid: the bright point within half a voxel, and the
    PSNR within 0.5 dB of the same phantom scanned untilted."""
    results = {}
    for name, folder in zip(("tilted", "untilted"), scans):
        out = upsample_z(read_volume(folder), factor=2, method=method)
        truth = sample(out.origin, out.direction, out.spacing, out.array.shape)
        results[name] = (out, psnr(out.array, truth), point_position(out))
    out, tilted_psnr, point = results["tilted"]
    assert _error_in_voxels(out, point).max() < 0.5
    assert abs(tilted_psnr - results["untilted"][1]) < 0.5, (tilted_psnr, results["untilted"][1])


def test_a_tilted_series_given_to_interpolate_lines_up_with_the_untilted_scan(scans, tmp_path):
    tilted, untilted = scans
    r = cli("interpolate", tilted, tmp_path / "t.nrrd", "--method", "cubic", "--factor", "2")
    assert r.returncode == 0, r.stderr
    assert "gantry tilt 18.5 degrees: slices de-tilted onto an orthogonal grid" in r.stderr
    assert cli("interpolate", untilted, tmp_path / "u.nrrd", "--method", "cubic", "--factor",
               "2").returncode == 0
    t, u = sitk.ReadImage(str(tmp_path / "t.nrrd")), sitk.ReadImage(str(tmp_path / "u.nrrd"))
    on_u = sitk.GetArrayFromImage(sitk.Resample(t, u, sitk.Transform(), sitk.sitkLinear, -1000.0))
    assert psnr(on_u, sitk.GetArrayFromImage(u)) > 45
    a, b = (read_volume(tmp_path / n) for n in ("t.nrrd", "u.nrrd"))
    assert np.linalg.norm(point_position(a) - point_position(b)) < 0.5 * min(a.spacing)


def test_a_gantry_tilt_in_plane_along_the_rows_is_de_tilted_too(tmp_path):
    """Axial slices whose positions drift sideways (a tilt written with straight orientation)."""
    half = 99 / 2 * 1.6
    ipps = [np.array([-half + 0.9 * k, -half, 10.0 + 3.0 * k]) for k in range(12)]
    vol = read_volume(write_series(tmp_path / "drift", ipps))
    assert vol.metadata["gantry_tilt_degrees"] == pytest.approx(np.degrees(np.arctan(0.3)), abs=0.01)
    truth = sample(vol.origin, vol.direction, vol.spacing, vol.array.shape)
    assert psnr(vol.array, truth) > 45
    assert np.allclose(vol.direction, np.eye(3))


def test_a_slice_out_of_line_in_a_tilted_series_is_still_named(tmp_path):
    folder = tilted_scan(tmp_path / "t", TILT, TABLE_STEP, 8)
    moved = folder / "IM0005"
    image = sitk.ReadImage(str(moved))
    x, y, z = (float(v) for v in image.GetMetaData("0020|0032").split("\\"))
    image.SetMetaData("0020|0032", f"{x + 6}\\{y}\\{z}")
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")
    writer.SetFileName(str(moved))
    writer.Execute(image)
    with pytest.raises(HRINetError, match="IM0005 lies .* in-plane off the line"):
        read_volume(folder)


# ---- uneven slice positions ------------------------------------------------------------------

GAPS = [4.2] * 7 + [1.1] + [4.2] * 7 + [7.4]
ZS = np.concatenate([[0.0], np.cumsum(GAPS)])


def test_uneven_gaps_are_described_most_common_first():
    assert describe_gaps(ZS) == "14 gaps of 4.2 mm, one of 1.1, one of 7.4"


def test_an_uneven_series_is_read_with_its_gaps_named(tmp_path):
    vol = read_volume(straight_scan(tmp_path / "u", ZS))
    assert np.allclose(vol.metadata["slice_positions_mm"], ZS + vol.metadata[
        "slice_positions_mm"][0], atol=1e-4)
    assert any("uneven slice gaps (14 gaps of 4.2 mm, one of 1.1, one of 7.4)" in w
               for w in vol.metadata["warnings"]), vol.metadata["warnings"]


def test_uneven_known_slices_land_at_their_positions_on_one_regular_grid(tmp_path):
    vol = read_volume(straight_scan(tmp_path / "u", ZS))
    plan = plan_upsampling(vol, target_spacing=1.0, method="linear")
    out = upsample_z(vol, plan=plan)
    assert out.spacing[2] == pytest.approx(1.0)
    assert out.array.shape[0] == plan.output_slices == uneven_grid(ZS, 1.0)
    assert "slice_positions_mm" not in out.metadata  # the output is regular
    for i, z in enumerate(ZS):
        j = z / out.spacing[2]
        assert abs(j - round(j)) <= 0.5
        if abs(j - round(j)) < 1e-3:  # a grid point on the known slice: the slice itself
            assert np.array_equal(out.array[int(round(j))], vol.array[i])
    truth = sample(out.origin, out.direction, out.spacing, out.array.shape)
    assert psnr(out.array, truth) > 37


def test_every_known_slice_on_the_grid_is_kept_bit_exact(tmp_path):
    zs = [0.0, 4.0, 8.0, 10.0, 16.0, 20.0]
    vol = read_volume(straight_scan(tmp_path / "u", zs))
    out = upsample_z(vol, target_spacing=1.0, method="cubic")
    assert out.array.shape[0] == 21
    for i, z in enumerate(zs):
        assert np.array_equal(out.array[int(z)], vol.array[i]), z


def test_slices_between_uneven_known_ones_use_the_fraction_of_their_own_gap(tmp_path):
    """Slices whose value is 10 x their position: linear interpolation across each own gap
    gives 10 x the position at every output slice (a regular grid would not)."""
    zs = [0.0, 4.0, 5.0, 12.0, 16.0]
    write_dicom_series(tmp_path / "u", zs, values=[int(10 * z) for z in zs])
    out = upsample_z(read_volume(tmp_path / "u"), target_spacing=0.5, method="linear")
    assert list(out.array[:, 0, 0]) == [int(round(10 * 0.5 * j)) for j in range(33)]


def test_grid_fractions_name_the_pair_and_its_fraction():
    got = grid_fractions(np.array([0.0, 4.0, 5.0]), 1.0, 6)
    assert got == [(0, 0.0), (0, 0.25), (0, 0.5), (0, 0.75), (1, 0.0), (1, 1.0)]


def test_evenly_spaced_series_take_the_regular_path_unchanged(tmp_path):
    vol = read_volume(straight_scan(tmp_path / "e", [0.0, 3.0, 6.0, 9.0, 12.0]))
    out = upsample_z(vol, factor=3, method="cubic")
    plain = upsample_z(vol.with_array(vol.array.copy()), factor=3, method="cubic")
    assert out.array.shape[0] == 13 and np.array_equal(out.array, plain.array)
    assert not any("uneven" in w for w in vol.metadata["warnings"])


def test_duplicate_slices_with_the_same_pixels_are_read_once(tmp_path):
    write_dicom_series(tmp_path / "d", [0.0, 2.0, 2.0, 4.0], values=[0, 10, 10, 20])
    vol = read_volume(tmp_path / "d")
    assert list(vol.array[:, 0, 0]) == [0, 10, 20]
    assert any("repeats" in w for w in vol.metadata["warnings"])


def test_duplicate_positions_with_different_pixels_are_refused_naming_them(tmp_path):
    write_dicom_series(tmp_path / "d", [0.0, 2.0, 2.0, 4.0], values=[0, 10, 11, 20])
    with pytest.raises(HRINetError) as info:
        read_volume(tmp_path / "d")
    message = str(info.value)
    assert "s001.dcm and s002.dcm are both at position 2 mm" in message and "\n" not in message


def test_mixed_slice_thickness_is_recorded_per_slice_and_said(tmp_path):
    vol = read_volume(straight_scan(tmp_path / "m", ZS, thickness=[4] * 12 + [7] * 5))
    assert vol.metadata["slice_thickness_mm"] == 4.0
    assert vol.metadata["slice_thicknesses_mm"] == [4.0] * 12 + [7.0] * 5
    assert any("12 slice(s) 4 mm, 5 slice(s) 7 mm" in w for w in vol.metadata["warnings"])


def test_a_tilted_uneven_mixed_thickness_series_is_interpolated(tmp_path):
    folder = tmp_path / "clinic"
    a = np.radians(TILT)
    col = np.array([0.0, np.cos(a), np.sin(a)])
    half = 99 / 2 * 1.6
    table = np.concatenate([[0.0], np.cumsum([4.4] * 6 + [1.2] + [4.4] * 5 + [7.8])])
    ipps = [np.array([-half, 0.0, 10.0]) - half * col + np.array([0, 0, t]) for t in table]
    write_series(folder, ipps, col=tuple(col), thickness=[4] * 10 + [7] * 4,
                 tags={"0018|1120": "18.5"})
    r = cli("interpolate", folder, tmp_path / "o.nrrd", "--method", "linear", "--spacing", "1")
    assert r.returncode == 0, r.stderr
    assert "gantry tilt 18.5 degrees" in r.stderr and "uneven slice gaps" in r.stderr
    out = read_volume(tmp_path / "o.nrrd")
    assert out.spacing[2] == pytest.approx(1.0)
    truth = sample(out.origin, out.direction, out.spacing, out.array.shape)
    assert psnr(out.array, truth) > 35
    assert np.linalg.norm(point_position(out) - POINT) < 0.5 * max(out.spacing)


def test_de_tilting_moves_the_padding_as_it_is_never_blending_it_into_the_body():
    """Padding outside the scan circle (-3024) stays exactly -3024 after a sub-pixel move: no
    value between it and air appears, and what comes in from outside the field is padding."""
    from hrinet.core.geometry import detilt

    y, x = np.mgrid[:40, :40]
    slice_ = np.where((y - 19.5) ** 2 + (x - 19.5) ** 2 < 18 ** 2, 40, -3024).astype(np.int16)
    array = np.stack([slice_] * 3)
    out = detilt(array, np.array([[0.0, 0.0], [0.4, -1.3], [2.5, 0.7]]))
    assert np.array_equal(out[0], array[0])
    values = np.unique(out)
    assert not np.any((values > -3024) & (values < -1024)), values
    assert out[2, :2].min() == -3024 and out.dtype == np.int16
