"""Real thick slices: slab profiles, the thickness option and the slab evaluation protocol."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import write_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume
from hrinet.core.phantom import make_phantom
from hrinet.core.slab import simulate_thick, slab_weights
from hrinet.evaluation.evaluate import evaluate_volume
from hrinet.methods.engine import upsample_z
from hrinet.methods.planning import plan_upsampling


@pytest.mark.parametrize("thickness", [1.0, 2.0, 3.0, 4.0, 6.5])
def test_slab_profile_sums_to_one_is_symmetric_and_as_wide_as_the_slab(thickness):
    w = slab_weights(thickness)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1])
    assert len(w) <= int(np.ceil(thickness)) + 3


def test_a_constant_volume_stays_constant_when_made_thick(phantom):
    flat = phantom.with_array(np.full_like(phantom.array, 40))
    thick = simulate_thick(flat, 3)
    assert np.all(thick.array == 40)
    assert thick.spacing[2] == pytest.approx(flat.spacing[2] * 3)
    assert thick.metadata["slice_thickness_mm"] == pytest.approx(flat.spacing[2] * 3)


@pytest.mark.parametrize("method", ["linear", "cubic", "flow"])
def test_thickness_zero_keeps_known_slices_bit_exact(phantom, method):
    out = upsample_z(phantom, factor=3, method=method, thickness=0)
    np.testing.assert_array_equal(out.array[::3], phantom.array)


def test_classical_methods_ignore_the_thickness_and_copy_known_slices(phantom):
    out = upsample_z(phantom, factor=2, method="cubic", thickness=phantom.spacing[2])
    np.testing.assert_array_equal(out.array[::2], phantom.array)
    assert out.metadata["restored_known"] is False


@pytest.mark.parametrize("thickness, words", [(-1.0, "not valid"), (float("nan"), "not valid"),
                                              (500.0, "implausible"), (70.0, "implausible")])
def test_negative_or_absurd_thickness_is_refused_with_one_line(phantom, thickness, words):
    with pytest.raises(HRINetError, match=words) as exc:
        plan_upsampling(phantom, factor=2, thickness=thickness)
    assert "\n" not in str(exc.value)


def test_cli_refuses_a_negative_thickness_with_one_line(tmp_path, phantom):
    from hrinet.core.io import write_volume

    src = write_volume(phantom, tmp_path / "in.nrrd")
    r = subprocess.run([sys.executable, "-m", "hrinet.cli", "interpolate", str(src),
                        str(tmp_path / "o.nrrd"), "--method", "linear", "--thickness", "-2"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "thickness" in r.stderr
    assert not (tmp_path / "o.nrrd").exists()


def test_plan_states_the_thickness_and_where_it_came_from(phantom):
    assert "assumed thin" in plan_upsampling(phantom, factor=2).describe()
    given = plan_upsampling(phantom, factor=2, thickness=phantom.spacing[2]).describe()
    assert "given" in given and "restore the known positions" in given
    assert plan_upsampling(phantom, factor=2, thickness=0.5).slab_ratio == 0


def test_dicom_slice_thickness_is_read_and_shown_by_info(tmp_path):
    folder = tmp_path / "series"
    write_dicom_series(folder, [0.0, 5.0, 10.0, 15.0])
    for f in sorted(folder.iterdir()):  # add Slice Thickness (0018,0050) = 5 mm
        import SimpleITK as sitk

        img = sitk.ReadImage(str(f))
        img.SetMetaData("0018|0050", "5.0")
        w = sitk.ImageFileWriter()
        w.KeepOriginalImageUIDOn()
        w.SetFileName(str(f))
        w.Execute(img)
    vol = read_volume(folder)
    assert vol.metadata["slice_thickness_mm"] == pytest.approx(5.0)
    plan = plan_upsampling(vol, factor=5)
    # reported, not applied: restoring slabs rewrites the acquired slices, asked for explicitly
    assert plan.thickness_source == "DICOM" and plan.slab_ratio == 0
    assert "give --thickness 5" in plan.describe()
    assert plan_upsampling(vol, factor=5, thickness=5).slab_ratio == pytest.approx(1.0)
    r = subprocess.run([sys.executable, "-m", "hrinet.cli", "info", str(folder)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "thickness:  5 mm" in r.stdout


def sphere_volume(n: int = 25, size: int = 48):
    """A ball whose cross-section changes from slice to slice (1 mm isotropic, int16 HU)."""
    z, y, x = np.mgrid[:n, :size, :size].astype(np.float32)
    r = np.sqrt((z - n / 2) ** 2 + (y - size / 2) ** 2 + (x - size / 2) ** 2)
    arr = np.where(r < 0.42 * size, 300, -900).astype(np.int16)
    return make_phantom(size=(size, size, n), spacing=(1.0, 1.0, 1.0), noise=0).with_array(arr)


def test_slab_protocol_scores_every_output_slice_against_the_thin_truth():
    vol = sphere_volume()
    rows = evaluate_volume(vol, "p", [3], ["linear"], protocol="slab")
    dec = evaluate_volume(vol, "p", [3], ["linear"], protocol="decimate")
    # known positions are blurred slabs under the slab protocol: the score must count them
    assert rows[0].psnr_hu != dec[0].psnr_hu
    with pytest.raises(HRINetError, match="unknown protocol"):
        evaluate_volume(vol, "p", [3], ["linear"], protocol="thick")
