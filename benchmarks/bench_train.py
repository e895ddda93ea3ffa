"""Training throughput of the paper variants on this machine, before and after the CPU tuning.

    python benchmarks/bench_train.py [--steps 10] [--crop 128] [--batch 4] [--threads N]
        [--json PATH]

Times each kind of training step at the shipped settings (crop 128, batch 4, Table 1 at 256²),
data sampling included, on synthetic phantom volumes (no shared data needed):

- ``stage I``: autoencoder + critic D1 (``acai``; ``ae`` is the same step without D1),
- ``stage II step I``: as stage I plus the PatchGAN D2 (``hrinet-patchgan``, and every other
  step of ``hrinet-mse`` / ``hrinet-perceptual``),
- ``stage II step II``: one group of 7 slices, 5 targets each (``hrinet-mse``; perceptual adds
  the frozen encoder),
- ``hrinet-flow``: the default's step (4 groups x 2 targets, optical flow included),

first with the models and batches in PyTorch's default (NCHW) layout, the way training ran
before, then in channels-last, the layout training uses on the CPU now. Prints iterations/s at
the median step time, with the spread of the steps (half their min-max range, of the median).
Stop other work first: the figures are only comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile

import torch
from common import Timing, add_json_option, timed, write_json  # benchmarks/common.py
from hrinet.core.phantom import make_phantom
from hrinet.training.data import step_rng
from hrinet.training.trainer import TrainConfig, Trainer


def trainer(variant: str, crop: int, batch: int, folder: str) -> Trainer:
    vols = [make_phantom(size=(crop * 2, crop * 2, 40), spacing=(0.8, 0.8, 1.0), seed=s)
            for s in range(2)]
    cfg = TrainConfig(variant=variant, iterations=10_000, crop=crop, batch=batch, device="cpu",
                      val_every=0, checkpoint_minutes=1e9, data=["phantom-0", "phantom-1"])
    return Trainer(cfg, folder, volumes=vols, log=None)


def rate(step, steps: int) -> Timing:
    """Seconds of each of ``steps`` calls of ``step(i)`` after two warm-up calls (i = 0, 1, ...)."""
    i = itertools.count()
    return timed(lambda: step(next(i)), steps, warmup=2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: as is)")
    add_json_option(p)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, crop {a.crop}, "
          f"batch {a.batch}, {a.steps} timed steps each")
    print("| step | NCHW it/s (before) | channels-last it/s (now) | speed-up |")
    print("|---|---|---|---|")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paper = trainer("hrinet-mse", a.crop, a.batch, tmp)
        flow = trainer("hrinet-flow", a.crop, a.batch, tmp)
        rng = lambda i: step_rng(0, 0, i)  # noqa: E731
        kinds = {
            "stage I (autoencoder + D1)": (paper, lambda i: paper.unsupervised_step(rng(i), False)),
            "stage II step I (+ PatchGAN)": (paper, lambda i: paper.unsupervised_step(rng(i), True)),
            "stage II step II (group of 7)": (paper, lambda i: paper.supervised_step(rng(i))),
            "hrinet-flow (default)": (flow, lambda i: flow.motion_step(rng(i))),
        }
        for name, (tr, step) in kinds.items():
            times = []
            for fmt in (torch.contiguous_format, torch.channels_last):
                tr.set_memory_format(fmt)
                times.append(rate(step, a.steps))
            speeds = [t.rate() for t in times]
            print(f"| {name} | {speeds[0]:.2f} {times[0].spread_text()} | {speeds[1]:.2f} "
                  f"{times[1].spread_text()} | {speeds[1] / speeds[0]:.2f}x |", flush=True)
            rows.append({"step": name, "nchw": times[0], "channels_last": times[1],
                         "it_per_s": speeds})
    write_json(a.json, {"steps": a.steps, "crop": a.crop, "batch": a.batch, "rows": rows})


if __name__ == "__main__":
    main()
