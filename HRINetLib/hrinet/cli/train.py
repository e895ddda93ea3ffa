"""``hrinet train``: the command around :class:`hrinet.training.trainer.Trainer` (torchrun included)."""

from __future__ import annotations

import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from hrinet.cli.progress import progress_bar
from hrinet.cli.signals import SigtermFlag
from hrinet.core.errors import HRINetError
from hrinet.core.models.shipped import DEFAULT_NAME, find_weights, variant_weights_name
from hrinet.core.variants import DEFAULT_VARIANT, STAGE1_RESULT, variant
from hrinet.learned.precision import emulation_warning
from hrinet.training.config import TrainConfig
from hrinet.training.distributed import distributed_setup, shutdown_distributed
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


def starting_weights(cfg: TrainConfig) -> Optional[Path]:
    """The shipped weights a new run of ``cfg.variant`` starts from: the default model's for the
    default variant, the variant's own, or for a variant whose weights cannot be continued (the
    perceptual loss's frozen encoder is in a run, not in its weights) the paper's stage-I
    result, from which it trains stage II. None when they are not installed."""
    if cfg.spec.default:
        return find_weights(DEFAULT_NAME)
    if cfg.spec.frozen_encoder:
        return find_weights(variant_weights_name(STAGE1_RESULT))
    return find_weights(variant_weights_name(cfg.variant))


def _choose_start(cfg: TrainConfig, given: dict) -> Optional[str]:
    """Sets ``cfg.init_weights`` for a new run; returns the line that says where it starts."""
    if cfg.from_scratch and cfg.init_weights:
        raise HRINetError("--init and --from-scratch contradict each other; give one of them")
    if cfg.init_weights:
        return None
    if cfg.from_scratch or "channels" in given or "design_size" in given:
        return "starting from random weights"
    start = starting_weights(cfg)
    if start is None:
        return (f"starting from random weights: no shipped {cfg.variant} weights are installed "
                "(give --init to fine-tune others)")
    cfg.init_weights = str(start)
    return (f"starting from the shipped weights {start.name} (fine-tuning; --from-scratch "
            "starts from random weights)")


def absolute_paths(given: dict) -> dict:
    """``given`` with its data, validation and --init paths made absolute: the run records
    them in its folder, and ``--resume`` may be given from another working directory (the
    weights' sidecars record names only, never these paths)."""
    out = dict(given)
    for key in ("data", "val"):
        if out.get(key):
            out[key] = [os.path.abspath(p) for p in out[key]]
    if out.get("init_weights"):
        out["init_weights"] = os.path.abspath(out["init_weights"])
    return out


def _with_start_hint(message: str, out) -> str:
    """``message`` with a hint when it names a missing volume that the run in ``out`` recorded
    relative to the folder it was started in (runs before paths were recorded absolute)."""
    try:
        config = json.loads((Path(out) / "config.json").read_text(encoding="utf-8"))
        paths = [str(p) for key in ("data", "val") for p in config.get(key) or []]
    except (OSError, ValueError, AttributeError, TypeError):
        return message
    relative = [p for p in paths if not os.path.isabs(p) and p in message]
    if "does not exist" not in message or not relative:
        return message
    return (f"{message}; the run recorded {relative[0]} relative to the folder it was started "
            "in: resume from that folder, or give --data (and --val) with paths that exist here")


class HeldLines:
    """A log that holds its lines until :meth:`release`, then prints them and every later one
    at once: a run refused while it is set up says its error line only."""

    def __init__(self):
        self.lines: Optional[list] = []

    def __call__(self, line: str) -> None:
        if self.lines is None:
            print(line)
        else:
            self.lines.append(line)

    def release(self) -> None:
        for line in self.lines or []:
            print(line)
        self.lines = None


def train_from_cli(args) -> int:
    """``hrinet train``: runs (under torchrun too), Ctrl-C/SIGTERM save a checkpoint."""
    if args.stop_at is not None and args.stop_at < 1:  # before anything is read or made
        raise HRINetError(f"--stop-at {args.stop_at} is out of range: it is a training step, "
                          ">= 1; give a step between 1 and --iterations, or leave it out")
    given = absolute_paths(given_options(args))
    if not given.get("data") and not args.resume:
        raise HRINetError("give training volumes with --data (or --resume a run)")
    cfg = TrainConfig(**dict({"variant": DEFAULT_VARIANT}, **given))
    if "group_sizes" in given and not variant(cfg.variant).motion:
        raise HRINetError("--gaps applies to --variant hrinet-flow only")
    start_line = None if args.resume else _choose_start(cfg, given)
    rank, world, device = distributed_setup(given.get("device", "auto"))
    if device is not None:  # each rank on its own GPU, resumed or not
        cfg.device = given["device"] = device
    overrides = given if args.resume else {}
    sigterm = SigtermFlag()

    def progress(step, total, logs):  # the bar is made once the run is accepted, below
        update(step, total, loss=f"{logs['loss_g']:.4g}", phase=logs["phase"])
        if rank == 0:
            args.events.emit("progress", done=step, total=total, unit="step")

    log = HeldLines()  # what the trainer says while it sets up: said once it accepts the run

    # A refused run prints its one error line only: the start line, what the trainer says while
    # it sets up (a resumed run's changed settings) and the progress bar (drawn at once on a
    # terminal) wait until the trainer has accepted the run; the lock leaves neither its file
    # nor a run folder it made (run_lock).
    with run_lock(args.out) if rank == 0 else nullcontext():  # one run a folder
        try:
            trainer = Trainer(cfg, args.out, resume=args.resume, rank=rank, world=world,
                              progress=progress,
                              cancel=lambda: sigterm() or stop_requested(args.out),
                              log=log, overrides=overrides)
        except HRINetError as exc:
            raise HRINetError(_with_start_hint(str(exc), args.out)) from None
        if start_line and rank == 0:
            print(start_line)
        log.release()  # from now on the trainer's lines are said at once
        cfg = trainer.cfg  # a resumed run's own settings (its iterations, not the default)
        if rank == 0:
            print(f"training {cfg.variant} on {trainer.device} ({torch.get_num_threads()} "
                  f"threads; {world} process{'es' if world > 1 else ''}), step {trainer.step} of "
                  f"{cfg.iterations}")
            slow = emulation_warning(cfg.precision, trainer.device)
            if slow:
                print(f"hrinet: warning: {slow}", file=sys.stderr)
        bar, update = progress_bar(cfg.iterations, f"train {cfg.variant}", "step", leave=True,
                                   enabled=rank == 0)
        if isinstance(bar, tqdm):
            bar.n = trainer.step
        try:
            path = trainer.run(stop_at=args.stop_at)
        finally:
            bar.close()
    shutdown_distributed(trainer)
    if rank == 0 and trainer.step < cfg.iterations:  # --stop-at: the checkpoint alone
        print(f"stopped at step {trainer.step}: wrote {path}; continue with --resume")
    elif rank == 0:
        print(f"wrote {path} and {path.with_suffix('.json')}")
    for written in ([path, path.with_suffix(".json")] if rank == 0 and trainer.step >=
                    cfg.iterations else [path] if rank == 0 else []):  # the weights and sidecar
        args.events.emit("wrote", path=str(written))
    return 0
