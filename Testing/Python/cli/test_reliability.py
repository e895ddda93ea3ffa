"""Bad input and faults in reading, interpolating and evaluating: each case gets a clear line
and loses nothing.

Every row of docs/RELIABILITY.md points at a test here or in the suites it names (training runs
and weights: test_reliability_runs.py).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from helpers import cli, one_line_error, write_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume, write_volume
from hrinet.core.phantom import make_phantom
from hrinet.core.volume import Volume
from hrinet.methods import engine, planning
from hrinet.methods.engine import intensity_warnings, upsample_z
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def test_truncated_nifti_is_refused(tmp_path, phantom):
    good = write_volume(phantom, tmp_path / "v.nii.gz")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(good.read_bytes()[:200])
    r = cli("interpolate", bad, tmp_path / "o.nrrd", "--method", "linear")
    one_line_error(r, "cut off")
    assert not (tmp_path / "o.nrrd").exists()


def test_several_series_in_one_folder_read_the_largest_and_say_so(tmp_path):
    folder = tmp_path / "mixed"
    write_dicom_series(folder, [0.0, 3.0, 6.0, 9.0], uid="1.2.3.9")  # 4 slices
    write_dicom_series(folder, [0.0, 5.0], uid="1.2.3.1", prefix="loc", values=[7, 7])
    vol = read_volume(folder)
    assert vol.array.shape[0] == 4 and vol.metadata["series_uid"] == "1.2.3.9"
    assert "holds 2 series" in vol.metadata["warnings"][0]
    assert read_volume(folder, series_uid="1.2.3.1").array.shape[0] == 2
    r = cli("info", folder)
    assert r.returncode == 0 and "holds 2 series" in r.stdout


def test_gantry_tilt_is_de_tilted_and_named_with_the_angle(tmp_path):
    folder = tmp_path / "tilt"
    # in-plane shift as slices advance: about 19 degrees of tilt
    write_dicom_series(folder, [(0.0, 1.05 * i, 3.0 * i) for i in range(4)], uid="1.2.5")
    vol = read_volume(folder)
    assert any("gantry tilt 19.3 degrees: slices de-tilted" in w
               for w in vol.metadata["warnings"])


def test_two_slices_are_enough(phantom):
    out = upsample_z(phantom.with_array(phantom.array[:2].copy()), factor=4, method="cubic")
    assert out.array.shape[0] == 5


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_voxels_are_refused(phantom, bad):
    v = phantom.with_array(phantom.array.astype(np.float64))
    v.array[-1, 0, 0] = bad
    with pytest.raises(HRINetError, match="NaN or infinite"):
        upsample_z(v, factor=2)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.int64, np.uint64, np.float32, np.float64])
def test_every_pixel_type_comes_back_as_itself(phantom, dtype):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    a = phantom.array.astype(np.float64)
    if info is not None:
        a = np.clip(a, max(info.min, -1e6), min(info.max, 1e6))
    v = phantom.with_array(a.astype(dtype))
    for method in ("linear", "cubic"):
        out = upsample_z(v, factor=3, method=method)
        assert out.array.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out.array[::3], v.array)


def test_non_ct_intensities_warn_but_still_work(tmp_path, phantom):
    eight_bit = phantom.with_array(np.clip(phantom.array + 1024, 0, 2000) // 8)
    eight_bit = eight_bit.with_array(eight_bit.array.astype(np.uint8))
    assert "8-bit" in intensity_warnings(eight_bit.array)[0]
    mri = phantom.with_array((phantom.array.astype(np.int32) + 1024).astype(np.uint16))
    assert "MRI" in intensity_warnings(mri.array)[0]
    assert intensity_warnings(phantom.array) == []
    from hrinet.learned.inference import LearnedInterpolator
    from hrinet.learned.models import Generator, ModelConfig

    interp = LearnedInterpolator(Generator(ModelConfig.for_variant("hrinet-plus")),
                                 torch.device("cpu"))
    out = upsample_z(eight_bit, factor=2, interpolator=interp)
    assert out.array.dtype == np.uint8
    assert "8-bit" in out.metadata["runtime_warnings"][0]


def test_too_large_output_is_refused_before_any_work(phantom, monkeypatch):
    monkeypatch.setattr(engine, "available_memory", lambda: 10 * 2 ** 20)
    with pytest.raises(HRINetError, match="GiB of memory is free"):
        upsample_z(phantom, factor=50)


def _nhdr(folder, z_direction: str):
    raw = folder / "v.raw"
    raw.write_bytes(np.arange(4 * 4 * 3, dtype=np.int16).tobytes())
    p = folder / f"v{z_direction}.nhdr"
    p.write_text("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
                 f"sizes: 4 4 3\nspace directions: (1,0,0) (0,1,0) (0,0,{z_direction})\n"
                 "endian: little\nencoding: raw\nspace origin: (0,0,0)\n"
                 f"data file: {raw.name}\n\n")
    return p


def test_zero_spacing_header_is_refused(tmp_path):
    with pytest.raises(HRINetError, match="zero voxel spacing"):
        read_volume(_nhdr(tmp_path, "0"))


@pytest.mark.parametrize("z", ["1e155", "1e300", "-2e4", "1.e155", "100000."])
def test_a_spacing_beyond_ten_metres_is_refused_never_read_as_1_mm(tmp_path, z):
    with pytest.raises(HRINetError, match="voxel spacing over 10000 mm"):
        read_volume(_nhdr(tmp_path, z))


def test_negative_spacing_header_reads_as_a_flipped_axis_at_the_same_positions(tmp_path):
    vol = read_volume(_nhdr(tmp_path, "-2"))
    assert vol.spacing[2] == 2.0 and vol.direction[2, 2] == -1.0
    np.testing.assert_allclose(vol.index_to_physical((0, 0, 2)), [0, 0, -4])
    out = upsample_z(vol, factor=2, method="linear")
    np.testing.assert_allclose(out.index_to_physical((0, 0, 4)), [0, 0, -4])


def test_missing_write_permission_says_so_and_leaves_nothing(tmp_path, phantom, monkeypatch):
    def denied(image, path, **_kw):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(sitk, "WriteImage", denied)
    with pytest.raises(HRINetError, match="write permission"):
        write_volume(phantom, tmp_path / "o.nrrd")
    assert list(tmp_path.iterdir()) == []


def test_unknown_output_extension_is_refused_before_work(tmp_path, phantom):
    p = write_volume(phantom, tmp_path / "in.nrrd")
    r = cli("interpolate", p, tmp_path / "out.png", "--factor", 2)
    one_line_error(r, "unknown extension")


def test_gpu_out_of_memory_lowers_the_batch_then_falls_back_to_cpu(phantom):
    from hrinet.learned.inference import LearnedInterpolator
    from hrinet.learned.models import Generator, ModelConfig

    interp = LearnedInterpolator(Generator(ModelConfig.for_variant("hrinet-plus")),
                                 torch.device("cpu"), batch_size=4)
    real_run = interp._run
    calls = []

    def flaky(*args):  # a too-small GPU: out of memory at batch 4, 2 and even 1
        calls.append(interp.batch_size)
        if len(calls) <= 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_run(*args)

    interp._run = flaky
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        out = upsample_z(phantom, factor=2, interpolator=interp)
    assert calls[:4] == [4, 2, 1, 1]
    assert interp.runtime_warnings[:2] == ["GPU out of memory: batch size lowered to 2",
                                           "GPU out of memory: batch size lowered to 1"]
    assert "continuing on the CPU" in interp.runtime_warnings[-1]
    assert out.metadata["runtime_warnings"] == interp.runtime_warnings
    np.testing.assert_array_equal(out.array[::2], phantom.array)


DTYPES = [np.int16, np.uint8, np.int32, np.float32, np.float64, np.uint16]


@st.composite
def volumes(draw):
    nz = draw(st.integers(2, 6))
    ny, nx = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    dtype = draw(st.sampled_from(DTYPES))
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    lo, hi = (max(info.min, -3000), min(info.max, 3000)) if info else (-3000.0, 3000.0)
    seed = draw(st.integers(0, 2 ** 16))
    arr = np.random.default_rng(seed).uniform(lo, hi, (nz, ny, nx)).astype(dtype)
    spacing = tuple(draw(st.floats(0.1, 10.0)) for _ in range(3))
    angles = [draw(st.floats(-np.pi, np.pi)) for _ in range(3)]
    d = sitk.Euler3DTransform((0, 0, 0), *angles).GetMatrix()
    origin = tuple(draw(st.floats(-500, 500)) for _ in range(3))
    return Volume(array=arr, spacing=spacing, origin=origin, direction=np.reshape(d, (3, 3)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vol=volumes(), k=st.integers(2, 5), method=st.sampled_from(["linear", "cubic"]))
def test_engine_invariants_hold_for_any_shape_spacing_direction_and_type(vol, k, method):
    before = vol.array.copy()
    out = upsample_z(vol, factor=k, method=method)
    n = vol.array.shape[0]
    assert out.array.shape == ((n - 1) * k + 1,) + vol.array.shape[1:]
    assert out.array.dtype == vol.array.dtype
    np.testing.assert_array_equal(out.array[::k], vol.array)
    np.testing.assert_array_equal(vol.array, before)
    assert out.origin == vol.origin and np.array_equal(out.direction, vol.direction)
    np.testing.assert_allclose(out.index_to_physical((1, 1, k * (n - 1))),
                               vol.index_to_physical((1, 1, n - 1)), rtol=1e-9, atol=1e-9)
    if method == "linear":  # linear never leaves the range of its two neighbours
        lo = np.minimum(vol.array[:-1], vol.array[1:]).astype(np.float64)
        hi = np.maximum(vol.array[:-1], vol.array[1:]).astype(np.float64)
        for j in range(1, k):
            s = out.array[j::k].astype(np.float64)
            assert np.all(s >= np.floor(lo) - 1e-6 * np.abs(lo)) and np.all(s <= np.ceil(hi) + 1e-6 * np.abs(hi))


def test_unreadable_file_says_so(tmp_path, phantom, monkeypatch):
    p = write_volume(phantom, tmp_path / "v.nrrd")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(p)
                        else real_access(path, mode))  # tests run as root, who reads anything
    with pytest.raises(HRINetError, match="not readable; check its permissions"):
        read_volume(p)


def test_cuda_asked_for_without_a_gpu_says_what_to_use(monkeypatch):
    from hrinet.learned.inference import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(HRINetError, match="no CUDA GPU is available; use the CPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(HRINetError, match="unknown device"):
        resolve_device("tpu")


def test_evaluate_weights_without_a_method_name_is_one_line(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")
    r = cli("evaluate", src, "--weights", "model.safetensors", "--out", tmp_path / "e")
    one_line_error(r, "needs the form METHOD=FILE")


def test_evaluate_out_naming_a_file_is_one_line(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")
    (tmp_path / "e").write_text("mine")
    r = cli("evaluate", src, "--out", tmp_path / "e")
    one_line_error(r, "is a file")
    assert (tmp_path / "e").read_text() == "mine"


@pytest.mark.parametrize("method", ["linear", "cubic"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float64])
def test_wide_integers_and_float64_keep_their_precision(method, dtype):
    big = {np.int64: 2 ** 40, np.int32: 2 ** 30, np.float64: 1.0}[dtype]
    step = {np.int64: 3, np.int32: 3, np.float64: 1e-9}[dtype]
    z = np.arange(6, dtype=np.float64)[:, None, None]
    arr = (big + step * (z * z + np.zeros((6, 4, 5)))).astype(dtype)
    vol = Volume(array=arr, spacing=(1.0, 1.0, 2.0))
    out = upsample_z(vol, factor=2, method=method)
    mids = out.array[1::2].astype(np.float64)
    if method == "linear":  # the exact midpoints, in float64 (rounded for integers)
        want = (arr[:-1].astype(np.float64) + arr[1:]) / 2
        want = np.rint(want) if dtype != np.float64 else want
        np.testing.assert_array_equal(mids, want)
    lost = np.abs(np.float32(big) - big) + step  # what a float32 detour would cost
    assert np.abs(mids - np.sort(mids, axis=0)).max() == 0  # monotone, no float32 steps
    assert np.abs(mids - (big + step * ((z[:-1] + 0.5) ** 2))).max() < max(lost, step * 2)


def test_progress_lines_reach_a_log_file_when_stderr_is_not_a_terminal(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")
    r = cli("interpolate", src, tmp_path / "o.nrrd", "--method", "linear", "--factor", "2")
    assert r.returncode == 0
    lines = [l for l in r.stderr.splitlines() if l.startswith("interpolating: ")]
    assert lines and lines[-1].startswith("interpolating: 11/11 pairs (100%")


def test_the_plan_line_names_the_model_and_its_weights(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")
    r = cli("interpolate", src, tmp_path / "o.nrrd", "--factor", "2", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    plan = r.stderr.splitlines()[0]
    assert "; model hrinet-flow (hrinet-default.safetensors) on cpu" in plan


def test_options_a_classical_method_does_not_use_are_named(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")
    r = cli("interpolate", src, tmp_path / "o.nrrd", "--factor", "2", "--method", "cubic",
            "--weights", "x.safetensors", "--device", "cuda")
    assert r.returncode == 0, r.stderr
    assert "--weights is not used by the cubic method" in r.stderr
    assert "--device is not used by the cubic method" in r.stderr


def test_a_crop_larger_than_the_slices_is_named_and_refused_if_it_fits_no_volume(phantom):
    from hrinet.training.data import SliceSampler

    with pytest.raises(HRINetError, match="crop 128 is larger than the slices of small .*"
                                          "training would see padding"):
        SliceSampler([phantom], crop=128, names=["small"])  # 64 x 64 slices
    big = make_phantom(size=(160, 160, 12), spacing=(2.0, 2.0, 6.0), seed=1)
    sampler = SliceSampler([phantom, big], crop=128, names=["small", "big"])
    assert sampler.warnings == ["crop 128 is larger than the slices of small (64 x 64): crops "
                                "there are padded with air; a crop of 64 or less avoids it"]
    tiny = make_phantom(size=(48, 48, 12), spacing=(2.0, 2.0, 6.0), seed=1)
    with pytest.raises(HRINetError, match="the smallest crop is 64 .* slices of at least 64 x 64"):
        SliceSampler([tiny], crop=64, names=["tiny"])  # no crop fits: never "0 or less"


def test_a_confidence_map_named_as_the_output_is_called_the_output(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")
    r = cli("interpolate", src, tmp_path / "o.nrrd", "--method", "linear", "--confidence",
            tmp_path / "o.nrrd")
    one_line_error(r, "--confidence")
    assert "is the output file" in r.stderr and not (tmp_path / "o.nrrd").exists()


def test_an_empty_factor_list_is_refused(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "v.nrrd")
    r = cli("evaluate", src, "--factors", ",", "--out", tmp_path / "e")
    one_line_error(r, "is not a comma-separated list of integers")
    assert not (tmp_path / "e").exists()


def test_a_finer_spacing_that_is_no_whole_factor_lists_the_reachable_ones():
    with pytest.raises(HRINetError, match=r"is finer than the slice spacing 5 mm by a factor of "
                       r"1.43; .* 2.5 mm \(x2\), 1.667 mm \(x3\), 1.25 mm \(x4\)"):
        planning.resolve_factor(5.0, 0.7, target_spacing=3.5)


def test_a_dicom_series_that_is_not_ct_warns(tmp_path):
    write_dicom_series(tmp_path / "mr", [0.0, 3.0, 6.0], modality="MR")
    vol = read_volume(tmp_path / "mr")
    assert any("modality is MR, not CT" in w for w in vol.metadata["warnings"])


def test_info_lists_the_series_of_a_folder_and_interpolate_reads_the_chosen_one(tmp_path):
    folder = tmp_path / "mixed"
    write_dicom_series(folder, [0.0, 3.0, 6.0, 9.0], uid="1.2.3.9", description="thin")
    write_dicom_series(folder, [0.0, 5.0], uid="1.2.3.1", prefix="loc", values=[7, 7],
                       description="localiser")
    r = cli("info", folder)
    assert r.returncode == 0, r.stderr
    assert " * 1. thin (CT): 4 slices" in r.stdout and "   2. localiser (CT): 2 slices" in r.stdout
    r = cli("interpolate", folder, tmp_path / "o.nrrd", "--series", "2", "--factor", "2",
            "--method", "linear")
    assert r.returncode == 0, r.stderr
    assert read_volume(tmp_path / "o.nrrd").array.shape[0] == 3
    one_line_error(cli("info", folder, "--series", "7"), "give a number from 1 to 2")


@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_an_output_that_is_a_link_to_nothing_is_refused_before_any_work(tmp_path, phantom, link):
    src = write_volume(phantom, tmp_path / "thick.nrrd")
    out = tmp_path / "iso.nrrd"
    if link == "dangling":
        out.symlink_to(tmp_path / "gone.nrrd")
    else:
        out.symlink_to(tmp_path / "other.nrrd")
        (tmp_path / "other.nrrd").symlink_to(out)
    r = cli("interpolate", src, out, "--method", "cubic", "--overwrite")
    one_line_error(r, "symbolic link to nothing")
    assert "interpolating" not in r.stderr  # refused before the work
    assert out.is_symlink()  # the user's link is left as it was
    r = cli("export", tmp_path / "no-run", out.with_suffix(".safetensors"))
    assert r.returncode != 0


@pytest.mark.slow  # 11-15 s on two busy workers
def test_evaluate_train_and_adapt_say_which_series_of_a_folder_they_read(tmp_path, phantom):
    """Each command that reads a DICOM folder warns when it holds several series, and evaluate
    and adapt read another with --series, as interpolate does."""
    folder = tmp_path / "mixed"
    positions = [float(3 * i) for i in range(12)]
    write_dicom_series(folder, positions, uid="1.2.3.9", size=64)
    write_dicom_series(folder, positions[:10], uid="1.2.3.1", prefix="loc", size=64)
    r = cli("evaluate", folder, "--factors", "2", "--methods", "linear", "--out", tmp_path / "e")
    assert r.returncode == 0 and "hrinet: warning:" in r.stderr and "holds 2 series" in r.stderr
    r = cli("evaluate", folder, "--factors", "2", "--methods", "linear", "--series", "2",
            "--out", tmp_path / "e2")
    assert r.returncode == 0 and "holds 2 series" not in r.stderr, r.stderr
    r = cli("train", "--data", folder, "--iterations", "1", "--crop", "64", "--batch", "1",
            "--from-scratch", "--variant", "hrinet-plus", "--device", "cpu", "--val-every", "0",
            "--out", tmp_path / "run")
    assert "holds 2 series" in r.stderr + r.stdout
    r = cli("adapt", folder, "--series", "9", "--out", tmp_path / "a")
    one_line_error(r, "series 9")
    r = cli("interpolate", write_volume(phantom, tmp_path / "v.nrrd"), tmp_path / "o.nrrd",
            "--method", "linear", "--series", "2")
    assert r.returncode == 0 and "applies to DICOM folders" in r.stderr
