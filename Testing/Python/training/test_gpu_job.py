"""The prepared GPU job (benchmarks/gpu), dry-run on this CPU so it cannot rot between leases:
pack the data, train for the time given, return weights and checkpoint, continue next lease."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hrinet.core.io import write_volume
from hrinet.core.phantom import make_phantom

ROOT = Path(__file__).resolve().parents[3]
GPU = ROOT / "benchmarks" / "gpu"
sys.path.insert(0, str(GPU))
import pack_training_data  # noqa: E402


def _packed(tmp_path: Path) -> Path:
    """Two thin phantoms packed as for the GPU machine, with the default's weights as --init."""
    data = tmp_path / "gpu" / "data"
    data.mkdir(parents=True)
    for seed in (1, 2):
        vol = make_phantom(size=(96, 96, 24), spacing=(1.0, 1.0, 1.0), noise=8, seed=seed)
        src = tmp_path / f"phantom{seed}.nrrd"
        write_volume(vol, src)
        pack_training_data.pack_one(src, data, region=96, step=4)
    init = tmp_path / "gpu" / "init"
    init.mkdir()
    for name in ("hrinet-default", "hrinet-variant-acai", "hrinet-variant-hrinet-mse"):
        for ext in (".safetensors", ".json"):
            shutil.copy2(ROOT / "Resources" / "weights" / (name + ext), init / (name + ext))
    return data


def _lease(data: Path, out: Path, runs: Path, *extra: str, jobs: str = "flow-corpus") -> dict:
    r = subprocess.run([sys.executable, str(GPU / "train_gpu.py"), "--data", str(data),
                        "--out", str(out), "--seconds", "30", "--device", "cpu",
                        "--jobs", jobs, "--warmup", "2,4", "--dry-run",
                        "--runs", str(runs), *extra],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return json.loads((out / "flow-corpus" / "job.json").read_text())


def test_packed_volumes_unpack_to_the_same_anatomy_within_the_quantisation_step(tmp_path):
    data = _packed(tmp_path)
    names, vols = pack_training_data.unpack(data)
    assert names == ["phantom1.nrrd", "phantom2.nrrd"]
    original = make_phantom(size=(96, 96, 24), spacing=(1.0, 1.0, 1.0), noise=8, seed=1)
    diff = vols[0].array.astype(int) - original.array.clip(-1024, 3071).astype(int)
    assert vols[0].array.shape == original.array.shape and abs(diff).max() <= 2


@pytest.mark.slow
def test_a_lease_returns_weights_and_checkpoint_and_the_next_lease_continues_it(tmp_path):
    data = _packed(tmp_path)
    # the default on the corpus and the paper's stage II (MSE continued, perceptual from stage I)
    first = _lease(data, tmp_path / "lease1", tmp_path / "runs",
                   jobs="flow-corpus,hrinet-mse,hrinet-perceptual")
    for job, variant in (("hrinet-mse", "hrinet-mse"), ("hrinet-perceptual", "hrinet-perceptual")):
        meta = json.loads((tmp_path / "lease1" / job / "job.json").read_text())
        assert meta["steps"] >= 1  # a slow job is stopped by the clock and still exported
        assert json.loads((tmp_path / "lease1" / job / f"{variant}.json").read_text())["variant"] \
            == variant
    got = tmp_path / "lease1" / "flow-corpus"
    for f in ("hrinet-flow.safetensors", "hrinet-flow.json", "checkpoint.safetensors", "log.csv"):
        assert (got / f).is_file(), f
    assert first["started_at"] == 0 and first["steps"] >= 1 and first["dry_run"]
    sidecar = json.loads((got / "hrinet-flow.json").read_text())
    assert sidecar["variant"] == "hrinet-flow"
    assert sidecar["training"]["config"]["augment"] == 0.25
    # the machine is gone; the next lease gets what came back and continues at the same step
    shutil.rmtree(tmp_path / "runs")
    second = _lease(data, tmp_path / "lease2", tmp_path / "runs",
                    "--resume", str(tmp_path / "lease1"))
    assert second["started_at"] == first["steps"]
    assert second["steps"] > first["steps"]
    rows = (tmp_path / "lease2" / "flow-corpus" / "log.csv").read_text().splitlines()
    assert int(rows[-1].split(",")[0]) >= first["steps"]  # one curve across both leases


@pytest.mark.slow
def test_the_gpu_inference_bench_runs_dry_on_this_cpu(tmp_path):
    data = _packed(tmp_path)
    r = subprocess.run([sys.executable, str(GPU / "bench_gpu.py"), "--dry-run",
                        "--volume", str(data)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [line.split()[0] for line in r.stdout.splitlines()[2:] if line.strip()]
    assert rows[:3] == ["flow", "hrinet@fp32", "hrinet@bf16"]
    assert "phantom1.nrrd x2" in r.stdout and "bf16:" in r.stdout


def test_a_job_the_clock_stops_while_its_speed_is_measured_still_returns_what_it_has(tmp_path):
    import train_gpu

    data = _packed(tmp_path)
    # a lease already over when the job starts: stopped at its first step, exported all the same
    train_gpu.run_job("flow-corpus", data, tmp_path / "out", seconds=-30, device="cpu",
                      warmup=(2, 4), dry_run=True, runs=tmp_path / "runs")
    got = tmp_path / "out" / "flow-corpus"
    job = json.loads((got / "job.json").read_text())
    assert job["steps_per_s"] is None and job["steps"] <= 1
    assert (got / "hrinet-flow.safetensors").is_file() and (got / "checkpoint.safetensors").is_file()
