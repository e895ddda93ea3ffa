"""The confidence map (issue 42 item 3): per voxel the expected absolute error in HU of the
interpolated value, 0 on acquired slices, written by ``hrinet interpolate --confidence``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import shared
from hrinet.cli import main
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume, write_volume
from hrinet.core.model_options import ModelOptions
from hrinet.core.phantom import make_phantom
from hrinet.core.io.provenance.slices import SLICE_ERROR_KEY
from hrinet.methods.confidence import (
    CALIBRATION_FILE,
    FEATURE_NAMES,
    N_COEF,
    confidence_map,
    load_calibration,
    pair_features,
)
from hrinet.methods.engine import upsample_z


@pytest.fixture
def small():
    return make_phantom(size=(48, 48, 7), spacing=(3.0, 3.0, 6.0), noise=10, seed=3)


def test_map_has_the_outputs_geometry_zero_on_acquired_slices_and_positive_between(small):
    result = upsample_z(small, factor=3, method="linear")
    conf = confidence_map(small, result, 3)
    assert conf.array.shape == result.array.shape and conf.array.dtype == np.float32
    assert conf.spacing == result.spacing and conf.origin == result.origin
    assert np.array_equal(conf.direction, result.direction)
    assert np.all(conf.array[::3] == 0)
    synthesised = np.delete(conf.array, np.s_[::3], axis=0)
    assert np.all(synthesised > 0) and np.all(np.isfinite(synthesised))


def test_the_map_fills_the_per_slice_summary_aligned_with_output_slices(small):
    result = upsample_z(small, factor=4, method="cubic")
    conf = confidence_map(small, result, 4)
    errors = result.metadata[SLICE_ERROR_KEY]
    assert len(errors) == result.array.shape[0]
    assert errors[::4] == [0.0] * small.array.shape[0]
    assert np.allclose(errors, conf.array.mean(axis=(1, 2)))


def test_flat_regions_are_trusted_and_a_structure_appearing_between_slices_is_not():
    flat = np.full((3, 64, 64), 40, np.int16)
    vol = make_phantom(size=(64, 64, 3)).with_array(flat.copy())
    vol.spacing = (1.0, 1.0, 4.0)
    hard = flat.copy()
    hard[1, 20:44, 20:44] = 1000  # bone in the middle slice only
    result = upsample_z(vol, factor=4, method="linear")
    easy_map = confidence_map(vol, result, 4).array
    assert easy_map[1:4].max() <= 20
    edgy = vol.with_array(np.stack([flat[0], hard[1], flat[2]]))
    edgy_result = upsample_z(edgy, factor=4, method="flow")
    edgy_map = confidence_map(edgy, edgy_result, 4).array
    assert edgy_map[1:4, 20:44, 20:44].mean() > 3 * easy_map[1:4].mean()
    # well above the <= 20 HU the README reads as trusted (a calibration is of the shipped
    # model's real errors, so the bound is relative to that reading, not a fixed HU)
    assert edgy_map[1:4, 20:44, 20:44].mean() > 2 * 20


def test_restored_slab_positions_carry_the_change_made_to_them(small):
    result = upsample_z(small, factor=2, method="linear")
    result.metadata["restored_known"] = True
    result.array[0] = np.clip(result.array[0].astype(np.int32) + 30, -32768, 32767)
    conf = confidence_map(small, result, 2)
    assert np.isclose(np.median(conf.array[0]), 30)


def test_a_result_of_another_volume_or_factor_is_refused_in_one_line(small):
    result = upsample_z(small, factor=3, method="linear")
    with pytest.raises(HRINetError, match="not the x2 upsampling") as err:
        confidence_map(small, result, 2)
    assert "\n" not in str(err.value)


def test_across_uneven_gaps_the_map_follows_the_output_grid(tmp_path):
    from series_phantom import straight_scan

    # a 6 mm gap among 3 mm ones, and a last slice 0.6 mm past the 1 mm grid's last point
    def per_slice(zs, name):
        source = read_volume(straight_scan(tmp_path / name, zs, size=48))
        result = upsample_z(source, factor=3, method="linear")
        assert result.array.shape[0] == 26  # 0 to 25 mm, 1 mm apart
        return confidence_map(source, result, 3).array.mean(axis=(1, 2))

    gapped = per_slice([0.0, 3.0, 6.0, 9.0, 15.0, 18.0, 21.0, 24.6], "gapped")
    known = [0, 3, 6, 9, 15, 18, 21]  # grid points on acquired slices
    assert np.all(gapped[known] == 0)
    assert np.all(np.delete(gapped, known) > 0)  # 25 mm lies past the last slice: a copy
    full = per_slice([0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.6], "full")
    assert full[12] == 0 and gapped[12] > 0
    around = [10, 11, 13, 14]  # the same points, 6 mm apart from their known slices or 3 mm
    assert gapped[around].mean() > full[around].mean()
    far = [1, 2, 4, 5, 22, 23, 24, 25]  # gaps whose known neighbours are the same in both
    assert np.allclose(gapped[far], full[far])


def test_an_input_hrinet_made_is_refused_its_metadata_untouched(tmp_path, small):
    first = tmp_path / "first.nrrd"
    assert main(["interpolate", str(_written(tmp_path, small)), str(first), "--factor", "2",
                 "--method", "linear"]) == 0
    again = read_volume(first)
    before = dict(again.metadata)
    result = upsample_z(again, factor=2, method="linear")
    with pytest.raises(HRINetError, match="itself interpolated by hrinet") as err:
        confidence_map(again, result, 2)
    assert "\n" not in str(err.value) and again.metadata == before


def test_cli_confidence_on_an_input_hrinet_made_is_refused_before_any_work(
        tmp_path, small, capsys):
    first, out, conf = tmp_path / "first.nrrd", tmp_path / "out.nrrd", tmp_path / "conf.nrrd"
    assert main(["interpolate", str(_written(tmp_path, small)), str(first), "--factor", "2",
                 "--method", "linear"]) == 0
    capsys.readouterr()
    assert main(["interpolate", str(first), str(out), "--factor", "2", "--method", "linear",
                 "--confidence", str(conf)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "itself interpolated by hrinet" in err[0]
    assert "the series it was made from" in err[0]
    assert not out.exists() and not conf.exists()


def _written(tmp_path, volume):
    path = tmp_path / "thick-source.nrrd"
    write_volume(volume, path)
    return path


def test_features_are_one_map_per_named_feature_per_fraction(small):
    window = small.array[:4].astype(np.float32)
    synth = upsample_z(small, factor=3, method="linear").array[4:6]
    f = pair_features(window, 1, [1 / 3, 2 / 3], synth, 6.0)
    assert f.shape == (2, len(FEATURE_NAMES)) + window.shape[1:]
    assert np.isfinite(f).all()


def test_the_calibration_is_plain_json_that_names_what_it_was_fitted_on():
    cal = json.loads(CALIBRATION_FILE.read_text())  # JSON, never a pickle
    assert len(cal["coef"]) == N_COEF
    assert np.all(np.diff(cal["error_hu"]) >= 0)  # isotonic: more score, more error
    assert np.all(np.diff(cal["score_knots"]) > 0)
    fitted = cal["fitted_on"]
    assert fitted["volumes"] and "validation" in fitted["split"]
    assert "bench_confidence.py --fit" in fitted["made_by"]
    assert load_calibration() == cal


def test_a_broken_calibration_file_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "cal.json"
    bad.write_text('{"coef": [1, 2]}')
    with pytest.raises(HRINetError, match="incomplete"):
        load_calibration(bad)
    bad.write_text("not json")
    with pytest.raises(HRINetError, match="cannot be read"):
        load_calibration(bad)


@pytest.fixture
def thick(tmp_path, small):
    path = tmp_path / "thick.nrrd"
    write_volume(small, path)
    return path


def test_cli_confidence_writes_the_map_beside_the_output(tmp_path, thick):
    out, conf = tmp_path / "out.nrrd", tmp_path / "conf.nrrd"
    assert main(["interpolate", str(thick), str(out), "--factor", "3", "--method", "cubic",
                 "--confidence", str(conf)]) == 0
    result, cmap = read_volume(out), read_volume(conf)
    assert cmap.array.shape == result.array.shape
    assert np.allclose(cmap.spacing, result.spacing) and np.allclose(cmap.origin, result.origin)
    assert np.all(cmap.array[::3] == 0) and cmap.array[1].min() > 0


def test_without_confidence_no_map_is_made(tmp_path, thick):
    out = tmp_path / "out.nrrd"
    assert main(["interpolate", str(thick), str(out), "--factor", "2", "--method",
                 "linear"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nrrd", "thick.nrrd"]


@pytest.mark.parametrize("which", ["input", "output"])
def test_cli_confidence_onto_the_input_or_the_output_is_refused_before_any_work(
        tmp_path, thick, capsys, which):
    out = tmp_path / "out.nrrd"
    before = thick.read_bytes()
    target = thick if which == "input" else out
    code = main(["interpolate", str(thick), str(out), "--factor", "2", "--method", "linear",
                 "--confidence", str(target), "--overwrite"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hrinet: error:")
    assert thick.read_bytes() == before and not out.exists()


def test_an_existing_confidence_file_is_kept_unless_overwrite(tmp_path, thick, capsys):
    out, conf = tmp_path / "out.nrrd", tmp_path / "conf.nrrd"
    conf.write_bytes(b"mine")
    assert main(["interpolate", str(thick), str(out), "--factor", "2", "--method", "linear",
                 "--confidence", str(conf)]) == 2
    assert conf.read_bytes() == b"mine" and not out.exists()
    assert "exists" in capsys.readouterr().err


def test_on_real_ct_the_map_ranks_the_default_models_errors():
    """Decimated x4 central crop of the GE head, which the calibration did not see (it was
    fitted on the corpus's four validation series); the full table is
    benchmarks/bench_confidence.py's."""
    pytest.importorskip("torch")
    from hrinet.evaluation.evaluate import protocol_input
    from scipy.stats import spearmanr

    full = read_volume(shared("head-ge-1p25mm.nrrd"))  # skips without the real CT
    _, ny, nx = full.array.shape
    crop = full.array[:, ny // 2 - 64:ny // 2 + 64, nx // 2 - 64:nx // 2 + 64]
    thin = full.with_array(np.ascontiguousarray(crop))
    thick, _, mask = protocol_input(thin, 4)
    result = upsample_z(thick, factor=4, method="hrinet", device="cpu")
    pred = confidence_map(thick, result, 4).array[mask].ravel()
    err = np.abs(result.array.astype(np.float32) - thin.array[:len(mask)])[mask].ravel()
    assert spearmanr(pred, err).statistic > 0.25
    low, high = pred <= 20, pred > 100
    assert np.median(err[high]) > 3 * np.median(err[low])


# ---- the Slicer overlay, against the real MRML library (slicer-core) ------------------------
def _slicer_lib():
    pytest.importorskip("slicer")
    import sys

    from helpers import REPO

    if str(REPO / "HRINetSlicer") not in sys.path:
        sys.path.insert(0, str(REPO / "HRINetSlicer"))


def test_slicer_interpolation_with_confidence_adds_an_overlay_in_a_lookup_with_a_legend(scene):
    _slicer_lib()
    import time

    import slicer
    from HRINetSlicerLib.confidence_overlay import (
        CONFIDENCE_ATTRIBUTE,
        COLOR_NODE_NAME,
        LEGEND_TITLE,
        MAX_HU,
        legend_node,
        set_overlay_visible,
    )
    from HRINetSlicerLib.jobs import InterpolationJob
    from HRINetSlicerLib.mrml import node_from_volume

    node = node_from_volume(make_phantom(size=(40, 40, 6), spacing=(3, 3, 6), seed=4), "thick",
                            scene)
    job = InterpolationJob(node, ModelOptions(factor=3, method="cubic"), confidence=True)
    job.start()
    deadline = time.time() + 120
    while job.running() and time.time() < deadline:
        time.sleep(0.2)
    out = job.finish()
    conf = scene.GetNodeByID(out.GetAttribute(CONFIDENCE_ATTRIBUTE))
    assert conf is not None and conf.GetName() == f"{out.GetName()} expected error"
    values = slicer.util.arrayFromVolume(conf)
    assert values.shape == slicer.util.arrayFromVolume(out).shape
    assert np.all(values[::3] == 0) and values[1].min() > 0
    display = conf.GetDisplayNode()
    assert display.GetColorNode().GetName() == COLOR_NODE_NAME
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, MAX_HU)
    legend = legend_node(conf)
    assert legend is not None and legend.GetTitleText() == LEGEND_TITLE
    assert legend.GetPrimaryDisplayNode() is display and legend.GetVisibility()
    assert set_overlay_visible(out, False) is conf and not legend.GetVisibility()
    assert set_overlay_visible(out, True) is conf and legend.GetVisibility()
    assert node.GetAttribute(CONFIDENCE_ATTRIBUTE) is None  # the input is left as it was


def test_slicer_overlay_switch_does_nothing_for_a_volume_without_a_map(scene):
    _slicer_lib()
    from HRINetSlicerLib.confidence_overlay import set_overlay_visible
    from HRINetSlicerLib.mrml import node_from_volume

    node = node_from_volume(make_phantom(size=(16, 16, 4)), "plain", scene)
    assert set_overlay_visible(node, True) is None
    assert set_overlay_visible(None, True) is None
