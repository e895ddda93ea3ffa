"""Every file the project writes is complete or absent: full disks, races, signals, permissions.

The fault-injection layer runs each writer (volumes in every format, weights and sidecars,
training checkpoints, metrics CSV, figures) against a really full file system (a tmpfs filled to
the last block; needs root to mount, skipped otherwise) and against an injected writer that
stops half-way without an error, as the NIfTI writer does on a full disk.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import SimpleITK as sitk
from hrinet.core.io.atomic import (
    atomic_write,
    complete_png,
    complete_safetensors,
    write_text,
)
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume, write_volume
from hrinet.core.phantom import make_phantom

from helpers import fill

FORMATS = ("nrrd", "nii", "nii.gz", "mha")


def noisy(size=96, slices=24):
    """A volume that does not compress to nothing (the full-disk tests need real bytes)."""
    return make_phantom(size=(size, size, slices), spacing=(1.0, 1.0, 2.0), noise=80, seed=3)


def left_behind(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name != "filler")


# ---- a full disk ----------------------------------------------------------------------------

@pytest.mark.parametrize("ext", FORMATS)
def test_a_volume_on_a_full_disk_fails_with_one_line_and_leaves_nothing(full_disk, ext):
    with pytest.raises(HRINetError, match="cannot write"):
        write_volume(noisy(), full_disk / f"out.{ext}")
    assert left_behind(full_disk) == []


def test_every_other_writer_on_a_full_disk_fails_and_leaves_nothing(full_disk, tmp_path):
    from hrinet.evaluation.evaluate import figure_strip
    from hrinet.learned.models import ModelConfig
    from hrinet.learned.networks import build_generator
    from hrinet.learned.weights import save_weights

    vol = noisy(64, 8)
    model = build_generator(ModelConfig.for_variant("hrinet-flow"))
    writers = {
        "weights": lambda: save_weights(model, full_disk / "w.safetensors", {}),
        "text": lambda: write_text(full_disk / "metrics.csv", "a,b\n" * 5000),
        "figure": lambda: figure_strip(vol, 2, {"linear": vol.array}, full_disk / "f.png"),
    }
    for name, write in writers.items():
        with pytest.raises(HRINetError, match="cannot write"):
            write()
        assert left_behind(full_disk) == [], name


def test_an_overwrite_on_a_full_disk_keeps_the_previous_file(full_disk):
    (full_disk / "filler").unlink()
    good = write_volume(noisy(), full_disk / "out.nii")
    before = good.read_bytes()
    fill(full_disk)
    with pytest.raises(HRINetError):
        write_volume(noisy().with_array(noisy().array + 1), good, overwrite=True)
    assert good.read_bytes() == before and left_behind(full_disk) == ["out.nii"]


def test_a_training_checkpoint_on_a_full_disk_fails_and_leaves_nothing(full_disk, tmp_path):
    from hrinet.training.trainer import TrainConfig, Trainer

    src = write_volume(make_phantom(size=(64, 64, 24), spacing=(1, 1, 1), seed=0),
                       tmp_path / "train.nrrd")
    cfg = TrainConfig(variant="hrinet-flow", data=[str(src)], iterations=1, crop=64, batch=1,
                      device="cpu", val_every=0)
    run = full_disk / "run"
    with pytest.raises(HRINetError, match="cannot write"):
        Trainer(cfg, run).save_checkpoint()
    assert not run.exists() or [p.name for p in run.iterdir() if "checkpoint" in p.name] == []


# ---- a writer that stops half-way without an error --------------------------------------------

@pytest.mark.parametrize("ext", FORMATS)
def test_a_silently_cut_off_volume_is_never_renamed_into_place(tmp_path, monkeypatch, ext):
    real = sitk.WriteImage

    def cut_off(image, name, useCompression=False):  # what the NIfTI writer does on ENOSPC
        real(image, name, useCompression=useCompression)
        size = os.path.getsize(name)
        with open(name, "r+b") as f:
            f.truncate(size // 2)

    prior = write_volume(noisy(), tmp_path / f"out.{ext}")
    before = prior.read_bytes()
    monkeypatch.setattr(sitk, "WriteImage", cut_off)
    with pytest.raises(HRINetError, match="cannot write"):
        write_volume(noisy().with_array(noisy().array + 1), prior, overwrite=True)
    assert prior.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [prior.name]


def test_cut_off_tensors_and_figures_are_recognised(tmp_path):
    from hrinet.learned.models import ModelConfig
    from hrinet.learned.networks import build_generator
    from hrinet.learned.weights import save_weights

    w = save_weights(build_generator(ModelConfig.for_variant("hrinet-flow")),
                     tmp_path / "w.safetensors", {})
    complete_safetensors(w)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(HRINetError, match="cut off"):
        complete_safetensors(cut)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    png = tmp_path / "f.png"
    fig.savefig(png)
    plt.close(fig)
    complete_png(png)
    png.write_bytes(png.read_bytes()[:-30])
    with pytest.raises(HRINetError, match="cut off"):
        complete_png(png)


# ---- permissions, races, signals ------------------------------------------------------------

def test_outputs_get_the_permissions_the_umask_allows(tmp_path):
    from hrinet.learned.models import ModelConfig
    from hrinet.learned.networks import build_generator
    from hrinet.learned.weights import save_weights

    old = os.umask(0o022)
    try:
        p = write_volume(noisy(32, 4), tmp_path / "v.nrrd")
        t = write_text(tmp_path / "t.json", "{}")
        w = save_weights(build_generator(ModelConfig.for_variant("hrinet-flow")),
                         tmp_path / "w.safetensors", {})
    finally:
        os.umask(old)
    for path in (p, t, w, w.with_suffix(".json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_a_file_that_appears_while_writing_is_never_replaced(tmp_path):
    out = tmp_path / "out.nrrd"
    with pytest.raises(HRINetError, match="appeared while this was being written"):
        with atomic_write(out, overwrite=False) as tmp:
            tmp.write_bytes(b"mine")
            out.write_bytes(b"the other run's")  # the other run finished first
    assert out.read_bytes() == b"the other run's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nrrd"]


def test_two_runs_writing_the_same_output_never_replace_each_other(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "in.nrrd")
    out = tmp_path / "out.nrrd"
    runs = [subprocess.Popen([sys.executable, "-m", "hrinet.cli", "interpolate", str(src),
                              str(out), "--method", method, "--factor", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for method in ("linear", "cubic")]
    results = [(r.wait(timeout=300), r.stderr.read()) for r in runs]
    codes = sorted(rc for rc, _ in results)
    assert codes[0] == 0  # at least one wrote
    winner = read_volume(out).metadata
    assert out.exists() and winner["source"]
    for rc, err in results:
        if rc:  # the other refused in one line: before the work (exists) or at the move
            assert err.strip().splitlines()[-1].startswith("hrinet: error:"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nrrd", "out.nrrd"]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])  # SIGHUP: the terminal was closed
def test_sigterm_during_interpolate_leaves_no_partial_file(tmp_path, sig):
    vol = make_phantom(size=(384, 384, 40), spacing=(1, 1, 4), seed=0)
    src = write_volume(vol, tmp_path / "in.nrrd")
    proc = subprocess.Popen([sys.executable, "-m", "hrinet.cli", "interpolate", str(src),
                             str(tmp_path / "out.nrrd"), "--method", "flow", "--factor", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stderr.readline()  # the plan line: the work starts now
    time.sleep(1)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("finished before the signal (a very fast machine)")
    assert proc.returncode == 143 and f"stopped ({sig}); nothing was written" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nrrd"]


def test_the_cli_refuses_an_output_that_fits_once_but_not_twice(tmp_path, phantom, monkeypatch):
    """The result and the writer's copy of it are both in memory at write time."""
    from hrinet.cli import app as cli
    from hrinet.methods import engine

    src = write_volume(phantom, tmp_path / "in.nrrd")
    n, y, x = phantom.array.shape
    out_bytes = ((n - 1) * 4 + 1) * y * x * phantom.array.dtype.itemsize
    monkeypatch.setattr(engine, "available_memory",
                        lambda: int((engine.CHUNK_BYTES + 1.5 * out_bytes) / 0.9))
    engine.upsample_z(phantom, factor=4)  # the engine alone fits
    assert cli.main(["interpolate", str(src), str(tmp_path / "o.nrrd"), "--factor", "4",
                     "--method", "linear"]) == 2
    assert not (tmp_path / "o.nrrd").exists()


def test_a_writer_that_fails_mid_way_leaves_nothing(tmp_path):
    with pytest.raises(HRINetError, match="cannot write"):
        with atomic_write(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"half")
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_the_nifti_writers_own_messages_stay_off_the_terminal(full_disk, tmp_path):
    src = write_volume(noisy(), tmp_path / "in.nrrd")
    r = subprocess.run([sys.executable, "-m", "hrinet.cli", "interpolate", str(src),
                        str(full_disk / "out.nii"), "--method", "linear", "--factor", "2"],
                       capture_output=True, text=True)
    lines = [l for l in r.stderr.splitlines() if not l.startswith(("interpolating:", "in:"))]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("hrinet: error: cannot write") and "NWAD" not in r.stderr
    assert left_behind(full_disk) == []


def test_weights_on_a_disk_that_fills_after_the_tensors_leave_neither_file(full_disk, tmp_path):
    """The tensors fit, their sidecar does not: no tensor file may be left without its sidecar
    (it would be refused, or worse, paired with an old sidecar of the same name)."""
    from hrinet.learned.models import ModelConfig
    from hrinet.learned.networks import build_generator
    from hrinet.learned.weights import save_weights

    model = build_generator(ModelConfig.for_variant("hrinet-flow"))
    probe = save_weights(model, tmp_path / "probe.safetensors", {"note": "x" * 40000})
    tensor_bytes = probe.stat().st_size
    (full_disk / "filler").unlink()
    fill(full_disk)
    (full_disk / "filler").unlink()  # now leave room for the tensors and a few pages only
    with open(full_disk / "filler", "wb") as f:
        free = os.statvfs(full_disk).f_bavail * os.statvfs(full_disk).f_frsize
        f.write(b"\0" * max(0, free - tensor_bytes - 3 * 4096))
    with pytest.raises(HRINetError, match="cannot write"):
        save_weights(model, full_disk / "w.safetensors", {"note": "x" * 40000})
    assert left_behind(full_disk) == []


def test_a_failed_write_into_a_callers_hidden_file_names_the_output_the_user_knows(full_disk):
    """The batch writes each case into its own hidden file, then moves it: a full disk is
    reported for the case's output, not the hidden name."""
    hidden = full_disk / ".case.nrrd.hrinet-1-x.partial.nrrd"
    with pytest.raises(HRINetError, match="cannot write cohort/case.nrrd") as err:
        write_volume(noisy(), hidden, overwrite=True, what="cohort/case.nrrd")
    assert "partial" not in str(err.value)
