"""Slab series told from thin ones by their voxels when the header has no thickness (issue 41
item 3), and a series already at the target spacing left alone (item 5)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hrinet.core.phantom import make_phantom
from hrinet.core.slab import simulate_thick
from hrinet.core.slab_estimate import estimate_slab
from hrinet.core.volume import Volume
from hrinet.evaluation.evaluate import decimate
from hrinet.methods.planning import already_at_target, already_at_words, plan_upsampling

from helpers import shared


def _read(name: str) -> Volume:
    from hrinet.core.io import read_volume

    return read_volume(shared(name))


@pytest.fixture(scope="module")
def thin_ct() -> Volume:
    """Real thin CT (1 mm), cropped in-plane to keep the test quick."""
    v = _read("chest-lidc-1mm.nrrd")
    return v.with_array(np.ascontiguousarray(v.array[:, 96:-96, 64:-64]))


def _noisy(v: Volume, sigma: float) -> Volume:
    noise = np.random.default_rng(1).normal(0, sigma, v.array.shape)
    return v.with_array((v.array + noise).astype(np.float32))


def _sharp(v: Volume) -> Volume:
    """An edge-enhancing (bone/lung-like) reconstruction kernel: in-plane unsharp masking."""
    from scipy.ndimage import gaussian_filter

    a = v.array.astype(np.float32)
    return v.with_array(a + 1.5 * (a - gaussian_filter(a, (0, 1.0, 1.0))))


@pytest.mark.parametrize("k", [3, 5, 8])
def test_decimated_thin_slices_are_judged_thin(thin_ct, k):
    found = estimate_slab(decimate(thin_ct, k).array, decimate(thin_ct, k).spacing)
    assert found is not None and not found.is_slab


@pytest.mark.parametrize("k", [3, 5, 8])
def test_slab_averaged_slices_are_judged_slabs_within_20_percent(thin_ct, k):
    thick = simulate_thick(thin_ct, k)
    found = estimate_slab(thick.array, thick.spacing)
    assert found is not None and found.is_slab
    assert found.thickness_mm == pytest.approx(k * 1.0, rel=0.2)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("spoil", ["noise 20 HU", "sharp kernel"])
def test_noise_and_a_sharp_kernel_do_not_flip_the_judgement(thin_ct, k, spoil):
    def spoilt(v):
        return _noisy(v, 20) if spoil.startswith("noise") else _sharp(v)

    thin, slab = spoilt(decimate(thin_ct, k)), spoilt(simulate_thick(thin_ct, k))
    assert not estimate_slab(thin.array, thin.spacing).is_slab
    assert estimate_slab(slab.array, slab.spacing).is_slab


@pytest.mark.parametrize("name, thickness", [("chest-lungfcp-1mm.nrrd", 2.0),
                                             ("chest-rider-0p8mm.nrrd", 1.25)])
def test_real_overlapping_reconstructions_are_estimated_within_20_percent(name, thickness):
    v = _read(name)
    found = estimate_slab(v.array, v.spacing)
    assert found is not None and found.is_slab
    assert found.thickness_mm == pytest.approx(thickness, rel=0.2)


def test_the_synthetic_phantom_is_judged_thin():
    p = make_phantom()
    assert not estimate_slab(p.array, p.spacing).is_slab


def test_too_few_slices_leave_the_thickness_unknown():
    p = make_phantom(size=(64, 64, 4))
    assert estimate_slab(p.array, p.spacing) is None
    assert plan_upsampling(p, factor=2, estimate_thickness=True).thickness_source == "assumed"


def test_the_estimate_is_used_only_when_asked_and_nothing_is_recorded(thin_ct):
    slab = simulate_thick(thin_ct, 5)
    slab.metadata.pop("slice_thickness_mm")
    assert plan_upsampling(slab, factor=5).thickness_source == "assumed"  # the library default
    plan = plan_upsampling(slab, factor=5, estimate_thickness=True)
    assert plan.thickness_source == "estimated" and plan.slab_ratio == pytest.approx(1, rel=0.2)
    assert "slice thickness estimated 5.0 mm from the data (use --thickness to set it" in \
        plan.describe()
    given = plan_upsampling(slab, factor=5, thickness=0, estimate_thickness=True)
    assert given.thickness_source == "given" and given.slab_ratio == 0


def test_a_thin_estimate_keeps_the_known_slices(thin_ct):
    plan = plan_upsampling(decimate(thin_ct, 5), factor=5, estimate_thickness=True)
    assert plan.thickness_source == "estimated" and plan.slab_ratio == 0
    assert "assumed thin as the data suggest" in plan.describe()


def test_dicom_series_plan_exactly_as_before(thin_ct):
    slab = simulate_thick(thin_ct, 5)  # records 5 mm, as DICOM Slice Thickness does
    before = plan_upsampling(slab, factor=5)
    assert plan_upsampling(slab, factor=5, estimate_thickness=True) == before
    slab.metadata.pop("slice_thickness_mm")
    slab.metadata["series_uid"] = "1.2.3"  # read from DICOM without a Slice Thickness
    assert plan_upsampling(slab, factor=5, estimate_thickness=True).thickness_source == "assumed"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hrinet.cli", *args], capture_output=True,
                          text=True)


def test_interpolate_names_the_estimated_thickness_and_obeys_thickness(tmp_path, thin_ct):
    from hrinet.core.io import write_volume

    slab = simulate_thick(thin_ct, 5)
    slab.metadata.pop("slice_thickness_mm")
    src = write_volume(slab, tmp_path / "slab.nrrd")
    r = _cli("interpolate", str(src), str(tmp_path / "o.nrrd"), "--factor", "5",
             "--method", "linear")
    assert r.returncode == 0, r.stderr
    assert "slice thickness estimated 5.0 mm from the data (use --thickness to set it" in r.stderr
    r = _cli("interpolate", str(src), str(tmp_path / "g.nrrd"), "--factor", "5",
             "--method", "linear", "--thickness", "0")
    assert r.returncode == 0 and "estimated" not in r.stderr


def test_info_says_the_thickness_interpolate_will_estimate(tmp_path, thin_ct):
    from hrinet.core.io import write_volume

    slab = simulate_thick(thin_ct, 5)
    slab.metadata.pop("slice_thickness_mm")
    r = _cli("info", str(write_volume(slab, tmp_path / "slab.nrrd")))
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("interpolate:"))
    assert "slice thickness estimated 5.0 mm from the data" in line


def test_a_series_already_at_the_target_spacing_is_left_alone(tmp_path):
    from hrinet.core.io import write_volume

    thin = make_phantom(size=(48, 48, 21), spacing=(1.5, 1.5, 1.0))
    src = write_volume(thin, tmp_path / "thin.nrrd")
    for spacing in ("1.0", "1.5"):
        r = _cli("interpolate", str(src), str(tmp_path / "o.nrrd"), "--spacing", spacing,
                 "--method", "linear")
        assert r.returncode == 0, r.stderr
        assert "already at 1.0 mm; nothing to do" in r.stdout
        assert sorted(p.name for p in tmp_path.iterdir()) == ["thin.nrrd"]
    r = _cli("interpolate", str(src), str(tmp_path / "o.nrrd"), "--factor", "2",
             "--method", "linear")
    assert r.returncode == 0 and (tmp_path / "o.nrrd").exists()


def test_already_at_target_is_the_library_test_for_it():
    thin = make_phantom(size=(32, 32, 9), spacing=(1.5, 1.5, 1.0))
    assert already_at_target(thin, 1.0) and already_at_target(thin, 2.5)
    assert not already_at_target(thin, 0.5)
    assert not already_at_target(thin, 1.0, factor=2) and not already_at_target(thin, None)
    assert already_at_words(thin) == "already at 1.0 mm"
    thick = make_phantom(size=(32, 32, 9), spacing=(1.5, 1.5, 6.0))
    assert not already_at_target(thick, 100)  # a thick series: a typing error, refused by the plan


@pytest.mark.parametrize("thickness, shown", [(1.25, "1.25"), (5.0, "5.0"), (4.8, "4.8"),
                                              (3.2712, "3.27")])
def test_the_plan_shows_the_estimated_thickness_to_the_digits_a_user_copies(thickness, shown):
    from hrinet.methods.planning import Plan

    plan = Plan(factor=3, input_slices=10, output_slices=28, output_spacing=(1, 1, 1),
                method="hrinet", thickness=thickness, thickness_source="estimated",
                slab_ratio=1.0)
    assert f"slice thickness estimated {shown} mm from the data" in plan.describe()
