"""Shipped weights: packaged with the library, intact, and what the default method runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hrinet.core.errors import HRINetError
from hrinet.core.io.atomic import file_sha256
from hrinet.core.models.shipped import default_weights_dirs, find_weights, sidecar_of
from hrinet.learned.weights import (
    ARCHITECTURE_KEY,
    load_weights,
    tensor_header,
)

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted((REPO / "Resources" / "weights").glob("*.safetensors"))


def test_weights_are_shipped():
    names = {p.name for p in SHIPPED}
    assert "hrinet-default.safetensors" in names and len(names) >= 2


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_weights_file_loads_with_its_sidecar_and_checksum(path):
    meta = json.loads(sidecar_of(path).read_text(encoding="utf-8"))
    assert meta["sha256"] == file_sha256(path)
    assert ARCHITECTURE_KEY in tensor_header(path)[1]
    model, loaded = load_weights(path)
    assert loaded["variant"] == model.cfg.variant
    expected = "hrinet-flow" if path.stem == "hrinet-default" else \
        path.stem.removeprefix("hrinet-variant-")
    assert model.cfg.variant == expected
    assert meta.get("evaluation") or meta.get("validation_metrics")  # measured metrics


def test_a_flipped_byte_in_a_shipped_file_is_refused(tmp_path):
    src = find_weights()
    dst = tmp_path / src.name
    shutil.copyfile(src, dst)
    shutil.copyfile(sidecar_of(src), sidecar_of(dst))
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0x01
    dst.write_bytes(bytes(data))
    with pytest.raises(HRINetError, match="do not match the sha256"):
        load_weights(dst)


@pytest.mark.slow
def test_a_wheel_carries_the_weights_and_its_default_method_runs(tmp_path, phantom):
    """`pip install .` (not editable): the default model is found inside the installed package."""
    from hrinet.core.io import write_volume

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "--no-build-isolation", "-w", str(tmp_path / "wheel"), str(REPO)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wheel = next((tmp_path / "wheel").glob("hrinet-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        assert "hrinet/shipped_weights/hrinet-default.safetensors" in z.namelist()
        z.extractall(tmp_path / "site")
    src = write_volume(phantom, tmp_path / "in.nrrd")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    env.pop("HRINET_WEIGHTS_DIR", None)
    probe = ("import hrinet, hrinet.core.models.shipped as s; print(hrinet.__file__); "
             "print(s.find_weights())")
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                       cwd=tmp_path)
    module, weights = r.stdout.split()
    assert module.startswith(str(tmp_path / "site")) and weights.startswith(str(tmp_path / "site"))
    r = subprocess.run([sys.executable, "-m", "hrinet.cli", "interpolate", str(src),
                        str(tmp_path / "out.nrrd"), "--factor", "2", "--device", "cpu"],
                       env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "model hrinet-flow (hrinet-default.safetensors)" in r.stderr
    assert str(default_weights_dirs()[0])  # the checkout's own lookup still works


def test_shipped_models_come_default_first_then_ours_then_the_paper_variants_with_quality():
    import subprocess
    import sys

    from hrinet.core.models.shipped import shipped_models
    from hrinet.core.variants import GROUP_DEFAULT, GROUP_OURS, GROUP_PAPER

    models = shipped_models()
    groups = [m.group for m in models]
    assert groups[0] == GROUP_DEFAULT and models[0].variant == "hrinet-flow"
    assert groups == sorted(groups, key=[GROUP_DEFAULT, GROUP_OURS, GROUP_PAPER].index)
    paper = {m.variant for m in models if m.group == GROUP_PAPER}
    assert paper == {"ae", "acai", "hrinet-patchgan", "hrinet-mse", "hrinet-perceptual"}
    for m in models:  # every shipped model says how well it measured, from its own sidecar
        assert m.quality.startswith("x4 PSNR_HU ") and "chest-lungfcp-1mm" in m.quality, m
    # torch-free: the panel and `hrinet models` list them before PyTorch is installed
    r = subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None; "
                        "from hrinet.core.models.shipped import shipped_models; "
                        "print(len(shipped_models()))"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and int(r.stdout) == len(models), r.stderr


def test_quality_line_says_when_a_model_was_not_evaluated():
    from hrinet.core.models.shipped import quality_line

    assert quality_line({}) == "not evaluated"
    rows = [{"factor": "4", "volume": "v", "psnr_hu": "40.123", "ssim_win": "0.9"},
            {"factor": "2", "volume": "v", "psnr_hu": "50", "ssim_win": "0.95"}]
    assert quality_line({"evaluation": {"rows": rows}}) == "x4 PSNR_HU 40.12 dB v; SSIM_win 0.900"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_no_shipped_sidecar_names_a_folder_of_the_training_machine(path):
    """Training data is named by file name (and voxel sha256), never by where it lay."""
    def strings(o):
        if isinstance(o, dict):
            for v in o.values():
                yield from strings(v)
        elif isinstance(o, list):
            for v in o:
                yield from strings(v)
        elif isinstance(o, str):
            yield o

    meta = json.loads(sidecar_of(path).read_text(encoding="utf-8"))
    assert not [s for s in strings(meta) if s.startswith(("/", "~", "../", "./"))
                or s[1:3] == ":\\\\"]


def _recipe_validation() -> set:
    pytest.importorskip("tomllib")  # Python 3.11+, as the corpus tools
    from benchmarks.tools.corpus import load_recipe

    return {s["name"] for s in load_recipe() if s["split"] == "validation"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_sidecar_names_its_corpus_by_series_and_voxel_hash(path):
    meta = json.loads(sidecar_of(path).read_text(encoding="utf-8"))
    corpus = meta["corpus"]
    assert corpus["recipe"] == "benchmarks/data/corpus.toml"
    assert corpus["train"]
    # every validation series of today's recipe (the shipped-before ones may list one more that
    # has since been set aside for independent evaluation)
    recipe = _recipe_validation()
    assert len(recipe) >= 4 and recipe <= {e["name"] for e in corpus["validation"]}
    hashes = lambda entries: {e["voxel_sha256"] for e in entries}  # noqa: E731
    assert all(len(h or "") == 64 for h in hashes(corpus["train"]) | hashes(corpus["validation"]))
    assert not hashes(corpus["train"]) & hashes(corpus["validation"])
    trained = {e["name"] for e in corpus["train"]}
    assert {n.removesuffix(".nrrd") for n in meta["training"]["split"]["train"]} <= trained
