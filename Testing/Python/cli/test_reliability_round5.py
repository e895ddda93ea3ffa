"""Reliability, round 5: what an adversarial user found.

interpolate refuses impossible model options (fp16 without a GPU, weights that are not
.safetensors) before it reads or makes anything; every refusal of train is one line, --stop-at
below 1 included, and leaves no folder or lock it made; models --get takes hrinet (the default
model's method) and a unique start of a name, and refuses an empty name; the preview's labels
never overlap and data that are not Hounsfield units get a window from their own range, named;
a volume with NaN or infinite values is refused before it is written, with the count.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import cli, one_line_error, write_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import write_volume
from hrinet.core.phantom import make_phantom
from hrinet.core.volume import Volume

# ---- Parameters: interpolate refuses the model's impossible options before any work ---------


def _listing(folder) -> list:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.fixture
def at_target(tmp_path):
    """An isotropic volume: interpolate has nothing to do with it, so only an early check of
    the options can refuse them."""
    return write_volume(make_phantom(size=(16, 16, 8), spacing=(1, 1, 1), seed=3),
                        tmp_path / "iso.nrrd")


def test_interpolate_refuses_fp16_without_a_gpu_before_reading_or_making_anything(tmp_path,
                                                                                  at_target):
    pytest.importorskip("torch")
    before = _listing(tmp_path)
    r = cli("interpolate", at_target, tmp_path / "out.nrrd", "--method", "hrinet", "--device",
            "cpu", "--precision", "fp16", "--preview", tmp_path / "p.png", "--confidence",
            tmp_path / "c.nrrd")
    one_line_error(r, "precision fp16 runs on a CUDA GPU only")
    assert "nothing to do" not in r.stdout and _listing(tmp_path) == before


def test_interpolate_to_a_dicom_folder_refuses_fp16_without_making_the_folder(tmp_path):
    pytest.importorskip("torch")
    write_dicom_series(tmp_path / "in", [0.0, 4.0, 8.0, 12.0],
                       tags={"0020|0052": "1.2.3.9"})  # a frame of reference: a derived
    # series may be written from it
    r = cli("interpolate", tmp_path / "in", tmp_path / "series", "--format", "dicom",
            "--precision", "fp16", "--device", "cpu")
    one_line_error(r, "precision fp16 runs on a CUDA GPU only")
    assert not (tmp_path / "series").exists()


@pytest.mark.parametrize("name, fragment", [("model.pt", "pickle/PyTorch checkpoint"),
                                            ("model.npz", "is not a .safetensors file"),
                                            ("gone.safetensors", "does not exist")])
def test_interpolate_refuses_weights_that_are_not_safetensors_before_any_work(tmp_path,
                                                                              at_target, name,
                                                                              fragment):
    if name != "gone.safetensors":
        (tmp_path / name).write_bytes(b"not weights")
    before = _listing(tmp_path)
    r = cli("interpolate", at_target, tmp_path / "out.nrrd", "--weights", tmp_path / name,
            "--preview", tmp_path / "p.png")
    one_line_error(r, fragment)
    assert "--weights" in r.stderr and _listing(tmp_path) == before


# ---- Training: one line for every refusal, nothing left behind -----------------------------


def _one_line_only(r, fragment):
    one_line_error(r, fragment)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stdout == "", (r.stdout, r.stderr)


@pytest.mark.parametrize("step", ["-1", "0"])
def test_train_refuses_a_stop_at_below_one_in_one_line(tmp_path, step):
    r = cli("train", "--data", tmp_path / "missing.nrrd", "--out", tmp_path / "run",
            "--stop-at", step)
    _one_line_only(r, f"--stop-at {step} is out of range")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--data", "missing.nrrd"], "does not exist"),
    (["--resume"], "nothing to resume"),
    (["--data", "missing.nrrd", "--iterations", "-3"], "--iterations -3 is out of range"),
    (["--data", "missing.nrrd", "--init", "w.safetensors", "--from-scratch"], "contradict"),
])
def test_a_refused_train_prints_one_line_and_leaves_no_folder_or_lock(tmp_path, args,
                                                                      fragment):
    out = tmp_path / "runs" / "first"  # neither folder exists yet
    r = cli("train", *[tmp_path / a if a.endswith((".nrrd", ".safetensors")) else a
                       for a in args], "--out", out)
    _one_line_only(r, fragment)
    assert not (tmp_path / "runs").exists()


def test_a_refused_train_keeps_the_users_empty_folder_without_a_lock(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    _one_line_only(cli("train", "--data", tmp_path / "missing.nrrd", "--out", out),
                   "does not exist")
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_resumed_run_refused_says_one_line_and_one_resumed_says_its_own_iterations(
        tmp_path, monkeypatch, capsys):
    """The changed settings of a resume were printed before its refusal; a resumed run said
    'step 2 of 1000' (the default iterations, not the run's) and, done, 'stopped at step 4'."""
    from hrinet.cli import main
    from training_cases import volumes

    write_volume(volumes()[0], tmp_path / "t1.nrrd")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "t1.nrrd", "--val-every", "0", "--iterations", "4",
                 "--crop", "64", "--batch", "2", "--device", "cpu", "--out", "run",
                 "--stop-at", "2"]) == 0
    capsys.readouterr()
    for args, fragment in ((["--iterations", "1"], "past --iterations 1"),
                           (["--iterations", "3", "--lr", "-1"], "--lr -1.0 is out of range")):
        _one_line_only(cli("train", "--out", "run", "--resume", *args), fragment)
    assert main(["train", "--out", "run", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "step 2 of 4" in out and "stopped at" not in out and "wrote run" in out, out


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_refused_train_on_a_terminal_draws_no_progress_bar(tmp_path):
    """On a terminal the progress bar is drawn as soon as it is made: a refused run must not
    have made it (its error would follow a bar, or share its line)."""
    master, slave = os.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "hrinet.cli", "train", "--data",
                            str(tmp_path / "missing.nrrd"), "--out", str(tmp_path / "run")],
                           stdout=subprocess.PIPE, stderr=slave, text=True, timeout=300)
        os.close(slave)
        slave = None
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    text = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
    lines = [line for line in text.split("\n") if line.strip()]
    assert p.returncode == 2 and p.stdout == ""
    assert len(lines) == 1 and lines[0].startswith("hrinet: error:") and "\r" not in lines[0], \
        repr(text)


# ---- Weights: models --get --------------------------------------------------------------------


def test_models_get_takes_hrinet_for_the_default_model_and_a_unique_start_of_a_name():
    from hrinet.core.models.catalog import find_model, load_catalog
    from hrinet.core.models.shipped import DEFAULT_NAME

    catalog = load_catalog()
    assert find_model("hrinet", catalog).file == DEFAULT_NAME
    assert find_model("hrinet-variant-hrinet-pl", catalog).name == "hrinet-variant-hrinet-plus"
    assert find_model("acai", catalog).name == "hrinet-variant-acai"  # a variant, as before
    with pytest.raises(HRINetError, match="ambiguous") as ambiguous:
        find_model("hrinet-variant-hrinet-p", catalog)
    for name in ("hrinet-variant-hrinet-patchgan", "hrinet-variant-hrinet-perceptual",
                 "hrinet-variant-hrinet-plus"):
        assert name in str(ambiguous.value)
    with pytest.raises(HRINetError, match=r"it starts hrinet-variant-hrinet-patchgan \(variant "
                       r"hrinet-patchgan\), "):  # a start of variants says so
        find_model("hrinet-p", catalog)
    with pytest.raises(HRINetError, match="choose one of: .*hrinet-default"):
        find_model("nonsense", catalog)
    for odd in (None, 3, b"hrinet"):  # from a program: refused as an empty name, in one line
        with pytest.raises(HRINetError, match="needs a model name"):
            find_model(odd, catalog)


def test_models_get_hrinet_on_the_command_line(tmp_path):
    r = cli("models", "--get", "hrinet", "--from", tmp_path)  # bundled: found, no download
    assert "no model 'hrinet'" not in r.stderr
    if r.returncode == 0:
        assert r.stdout.startswith("hrinet-default: ")
    else:  # not installed here: the empty --from folder has no assets
        one_line_error(r, "hrinet-default")


@pytest.mark.parametrize("name", ["", "  "])
def test_models_get_refuses_an_empty_name_in_one_line(name):
    r = cli("models", "--get", name)
    one_line_error(r, "--get needs a model name; choose one of: hrinet-default")
    assert r.stdout == ""  # not the list


# ---- Output: the preview ----------------------------------------------------------------------


def _boxes_disjoint(labels) -> bool:
    boxes = [label.box for label in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                return False
    return True


@pytest.mark.parametrize("size, spacing", [((20, 20, 3), (1, 1, 1)),  # 20 pixels wide
                                           ((40, 30, 10), (1, 1, 4)),
                                           ((8, 64, 2), (1, 1, 1)),  # two slices
                                           ((256, 256, 40), (1, 1, 5))])
def test_preview_labels_never_overlap_whatever_the_views_widths(size, spacing):
    from hrinet.core.preview import (
        GAP,
        LABEL_STRIP,
        label_layout,
        labelled,
        preview_image,
        view_widths,
    )

    volume = make_phantom(size=size, spacing=spacing, seed=4)
    widths = view_widths(volume)
    caption = "hrinet x4: a-long-file-name.nrrd"
    labels = label_layout(widths, f"{caption}  CT window W2000 L0 HU  last slice up")
    assert _boxes_disjoint(labels)
    views = labels[1:]
    if len(views) == 3:  # one name over each view, within its columns
        x = 0
        for label, width in zip(views, widths):
            assert x <= label.box[0] and label.box[2] <= x + width
            x += width + GAP
    image = preview_image(volume)
    png = labelled(image, widths, caption, (-1000.0, 1000.0), "CT window W2000 L0 HU")
    assert png.shape[1] >= max(label.box[2] for label in labels) - 1  # nothing cut off
    # pixels: the strips' ink lies inside the labels' boxes only
    ink = png[:2 * LABEL_STRIP] > 0
    inside = np.zeros_like(ink)
    for label in labels:
        x0, y0, x1, y1 = label.box
        inside[max(0, y0):y1, max(0, x0):x1] = True
    assert ink.any() and not (ink & ~inside).any()


def test_preview_view_names_stay_over_their_own_view_in_pixels(tmp_path):
    """The views 40, 40 and 30 pixels wide: no view name reaches into the gap after its view
    (the full names at the old size did)."""
    from hrinet.core.preview import GAP, LABEL_STRIP, write_preview

    a = np.full((10, 30, 40), -1000, np.int16)
    a[5:, 5:25, 5:35] = 800
    png = sitk.GetArrayFromImage(sitk.ReadImage(str(write_preview(
        Volume(array=a, spacing=(1.0, 1.0, 4.0)), tmp_path / "p.png", caption="hrinet x4"))))
    strip = png[LABEL_STRIP:2 * LABEL_STRIP]
    for start, width in ((0, 40), (40 + GAP, 40), (80 + 2 * GAP, 30)):
        assert strip[:, start:start + width].max() > 100  # a name over each view
    assert strip[:, 40:40 + GAP].max() == 0 and strip[:, 80 + GAP:80 + 2 * GAP].max() == 0
    assert strip[:, 110 + 2 * GAP:].max() == 0  # and none past the last


def _views_of(path):
    from hrinet.core.preview import LABEL_STRIP

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[2 * LABEL_STRIP:]


@pytest.mark.parametrize("scale", [1e30, 1.0])
def test_preview_of_data_not_in_hounsfield_units_uses_their_percentiles_and_says_so(tmp_path,
                                                                                     scale):
    from hrinet.core.preview import choose_window, write_preview

    ct = make_phantom(size=(64, 64, 12), spacing=(3, 3, 6), noise=10, seed=1)
    values = ((ct.array.astype(np.float64) + 1024) / 4095 * scale).astype(np.float32)
    low, high, words = choose_window(values)
    assert values.min() <= low < high <= values.max()
    assert "percentile" in words and "not HU" in words and f"{low:.4g}" in words
    views = _views_of(write_preview(Volume(array=values, spacing=ct.spacing),
                                    tmp_path / "p.png", caption="x"))
    assert (views == 255).mean() < 0.2 and views.std() > 20  # neither all white nor blank


def test_preview_of_air_and_huge_values_is_not_shown_in_the_ct_window(tmp_path):
    """Air (-1000) around values of 1e29..1e30: not Hounsfield units, so not the CT window
    (which showed the whole body white)."""
    from hrinet.core.preview import CT_WINDOW, choose_window, write_preview

    rng = np.random.default_rng(5)
    a = np.full((8, 32, 32), -1000, np.float32)
    a[:, 8:24, 8:24] = rng.uniform(1e29, 1e30, (8, 16, 16))
    low, high, words = choose_window(a)
    assert (low, high) != CT_WINDOW and "CT window" not in words
    views = _views_of(write_preview(Volume(array=a, spacing=(1, 1, 1)), tmp_path / "p.png"))
    body = views[10:22, 10:22]  # the axial view's body
    assert body.std() > 20 and (body == 255).mean() < 0.2


def test_preview_of_a_mostly_empty_map_windows_the_values_other_than_the_background(tmp_path):
    from hrinet.core.preview import choose_window, write_preview

    a = np.zeros((8, 32, 32), np.float32)
    a[3:5, 10:14, 10:14] = np.linspace(5, 10, 32, dtype=np.float32).reshape(2, 4, 4)
    low, high, words = choose_window(a)
    assert low == 0 and 9 < high <= 10 and "other than the background" in words
    views = _views_of(write_preview(Volume(array=a, spacing=(1, 1, 1)), tmp_path / "p.png"))
    assert 0 < (views == 255).sum() < (views > 0).sum()  # graded, not every value white


def test_the_preview_caption_names_the_window_used(tmp_path):
    """A window of 0.2..0.8 is said with its digits (it read 'W1 L0')."""
    from hrinet.core.preview import labelled

    image = np.zeros((20, 70), np.uint8)
    with_words = labelled(image, (20, 20, 18), "x", (0.2, 0.8))
    plain = labelled(image, (20, 20, 18), "x", (0.0, 1.0))
    assert not np.array_equal(with_words, plain)  # W0.6 L0.5 is not W1 L0.5


# ---- Output: non-finite values ----------------------------------------------------------------


def test_writing_a_volume_with_nan_or_inf_is_refused_with_the_count(tmp_path):
    a = np.zeros((4, 8, 8), np.float32)
    a[0, 0, :2] = np.nan
    a[1, 1, 1] = -np.inf
    with pytest.raises(HRINetError) as err:
        write_volume(Volume(array=a, spacing=(1, 1, 2)), tmp_path / "out.nrrd")
    text = str(err.value)
    assert "3 non-finite values (2 NaN and 1 infinite)" in text and "disk" not in text
    assert "\n" not in text and list(tmp_path.iterdir()) == []  # nothing written, no partial


def test_interpolate_refuses_a_nan_input_naming_the_count_of_non_finite_voxels(tmp_path):
    a = make_phantom(size=(16, 16, 6), spacing=(1, 1, 3), seed=1).array.astype(np.float32)
    a[2, 5, 5] = np.nan
    a[3, 1, 1] = np.inf
    image = sitk.GetImageFromArray(a)
    image.SetSpacing((1.0, 1.0, 3.0))
    sitk.WriteImage(image, str(tmp_path / "nan.nrrd"))
    for method in ("cubic", "linear"):
        r = cli("interpolate", tmp_path / "nan.nrrd", tmp_path / "out.nrrd", "--method",
                method)
        one_line_error(r, "2 NaN or infinite voxels")
        assert not (tmp_path / "out.nrrd").exists()
