"""``hrinet train``: the command around :class:`hrinet.training.trainer.Trainer` (torchrun included)."""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm import tqdm

from hrinet.cli.progress import progress_bar
from hrinet.cli.signals import SigtermFlag
from hrinet.core.constants import DEFAULT_VARIANT
from hrinet.core.errors import HRINetError
from hrinet.core.variants import variant
from hrinet.training.config import TrainConfig
from hrinet.training.distributed import shutdown_distributed
from hrinet.training.options import STOP_FILE, given_options
from hrinet.training.run_lock import run_lock
from hrinet.training.trainer import Trainer


def stop_requested(out) -> bool:
    """True once ``out/STOP`` exists (it is removed, so that ``--resume`` does not stop again)."""
    path = Path(out) / STOP_FILE
    if not path.exists():
        return False
    path.unlink(missing_ok=True)
    return True


def distributed_setup(device: str):
    """``(rank, world, device)`` under torchrun (``device``: this rank's own GPU with NCCL, else
    None); ``(0, 1, None)`` otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    backend = "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"
    torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank()
    if backend != "nccl":
        return rank, world, None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    return rank, world, f"cuda:{local}"


def train_from_cli(args) -> int:
    """``hrinet train``: runs (under torchrun too), Ctrl-C/SIGTERM save a checkpoint."""
    given = given_options(args)
    if not given.get("data") and not args.resume:
        raise HRINetError("give training volumes with --data (or --resume a run)")
    cfg = TrainConfig(**dict({"variant": DEFAULT_VARIANT}, **given))
    if "group_sizes" in given and not variant(cfg.variant).motion:
        raise HRINetError("--gaps applies to --variant hrinet-flow only")
    rank, world, device = distributed_setup(given.get("device", "auto"))
    if device is not None:  # each rank on its own GPU, resumed or not
        cfg.device = given["device"] = device
    overrides = given if args.resume else {}
    sigterm = SigtermFlag()
    bar, update = progress_bar(cfg.iterations, f"train {cfg.variant}", "step", leave=True,
                               enabled=rank == 0)

    def progress(step, total, logs):
        update(step, total, loss=f"{logs['loss_g']:.4g}", phase=logs["phase"])

    with run_lock(args.out) if rank == 0 else nullcontext():  # one run a folder
        trainer = Trainer(cfg, args.out, resume=args.resume, rank=rank, world=world,
                          progress=progress,
                          cancel=lambda: sigterm() or stop_requested(args.out),
                          overrides=overrides)
        if isinstance(bar, tqdm):
            bar.n = trainer.step
        try:
            path = trainer.run(stop_at=args.stop_at)
        finally:
            bar.close()
    shutdown_distributed(trainer)
    if rank == 0:
        print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0
