"""Where a run starts in its folder: a fresh run refuses a folder holding a checkpoint; a resumed
one continues its newest intact checkpoint with the configuration recorded there and the
settings given on resume applied (each change recorded)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from hrinet.core.errors import HRINetError
from hrinet.training.checkpoint import CHECKPOINT, PREVIOUS, checkpoint_to_resume
from hrinet.training.config import TrainConfig
from hrinet.training.options import FIXED_ON_RESUME
from hrinet.training.run_log import LOG_FIELDS


def same_setting(a, b) -> bool:
    """Whether two values of a setting are equal, lists and tuples alike (a checkpoint's JSON
    turns tuples into lists)."""
    def plain(v):
        return list(v) if isinstance(v, (list, tuple)) else v
    return plain(a) == plain(b)


@dataclass
class Resumption:
    """What a resumed run continues from."""

    #: The recorded configuration with the settings given on resume applied.
    config: TrainConfig
    #: Every tensor of the checkpoint (models, optimisers).
    tensors: Dict[str, torch.Tensor]
    #: The checkpoint's training state (step, model configuration, optimisers' scalars...).
    state: dict
    #: Settings changed on this and earlier resumes: ``[{"step", "changed": {key: [old, new]}}]``.
    changes: List[dict]


def run_files(variant: str) -> tuple:
    """Every file a training run of a ``variant`` model writes in its folder: its settings,
    logs, plot, checkpoints and exported weights with their sidecar."""
    return ("config.json", "log.csv", "val.jsonl", "progress.json", "loss.png", CHECKPOINT,
            PREVIOUS, f"{variant}.safetensors", f"{variant}.json")


def _died_before_its_first_checkpoint(out: Path, variant: str) -> bool:
    """Whether ``out`` holds a run that stopped before it saved anything (a crash, a diverged
    first step): no checkpoints nor weights, its config.json a whole run configuration of this
    variant (every field a run writes: a user's config.json of other keys is not one) and its
    log.csv, if any, a run's (its header); a plot, progress or validation file is a run's only
    beside such a log."""
    if any((out / n).exists() for n in (CHECKPOINT, PREVIOUS, f"{variant}.safetensors",
                                         f"{variant}.json")):
        return False
    try:
        recorded = json.loads((out / "config.json").read_text(encoding="utf-8"))
        if (not isinstance(recorded, dict) or recorded.get("variant") != variant
                or not {f.name for f in fields(TrainConfig)} <= recorded.keys()):
            return False
        TrainConfig.from_dict(recorded)
        later = [n for n in ("val.jsonl", "progress.json", "loss.png") if (out / n).exists()]
        if (out / "log.csv").exists() or later:  # written after its first steps: with its log
            with open(out / "log.csv", encoding="utf-8") as log:
                if log.readline().strip() != ",".join(LOG_FIELDS):
                    return False
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return False
    return True


def check_fresh_folder(out: Path, variant: str) -> None:
    """Refuse to start a new run where one already keeps its checkpoint, or where a file the
    run would write is already there (another run's, or the user's: never replaced), except a
    run's that stopped before its first checkpoint (nothing to resume: it starts anew)."""
    if (out / CHECKPOINT).exists() or (out / PREVIOUS).exists():
        raise HRINetError(f"{out} already holds a checkpoint; pass --resume to continue it or "
                          "choose another --out")
    there = [n for n in run_files(variant) if (out / n).exists() or (out / n).is_symlink()]
    if there and _died_before_its_first_checkpoint(out, variant):
        return  # its settings and logs only: nothing to resume, nothing of the user's
    if there:
        raise HRINetError(f"--out {out} holds {', '.join(there)}, which a new run would "
                          "replace; choose a new or empty folder")


def resume_run(out: Path, overrides: Optional[dict] = None,
           log: Optional[Callable[[str], None]] = print) -> Resumption:
    """The run in ``out`` to continue, with ``overrides`` (the settings the user gave on resume)
    applied; the settings its checkpoint holds a model for (:data:`FIXED_ON_RESUME`) cannot
    change, and the iterations cannot fall below the step reached."""
    _, tensors, state = checkpoint_to_resume(out, log=log)
    cfg = TrainConfig.from_dict(state["config"])
    changed = {}
    for key, value in (overrides or {}).items():
        old = getattr(cfg, key)
        if same_setting(old, value):
            continue
        if key in FIXED_ON_RESUME:
            raise HRINetError(f"a resumed run cannot change {key} ({old} -> {value}); its "
                              "checkpoint holds a model for the first; start a new run (--init "
                              "with the run's exported weights) instead")
        changed[key] = [old, value]
        setattr(cfg, key, value)
    changes = list(state.get("resume_changes", []))
    if changed:
        changes.append({"step": int(state["step"]), "changed": changed})
        if log:
            log("resuming with " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))
    if cfg.iterations < int(state["step"]):
        raise HRINetError(f"the checkpoint is at step {state['step']}, past --iterations "
                          f"{cfg.iterations}; give more iterations")
    return Resumption(cfg, tensors, state, changes)
