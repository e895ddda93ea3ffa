"""The ``hrinet train`` command's options (no torch: the CLI builds its parser from this, so
``hrinet info`` and ``--help`` answer at once)."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import List, Tuple

from hrinet.core.variants import gap_group_sizes
from hrinet.training.config import TrainConfig

#: A file a controller (the Slicer panel) creates in the run folder to stop training or
#: adaptation at the next step with a checkpoint: works where SIGTERM cannot be caught (Windows).
STOP_FILE = "STOP"


def _gap_list(text: str) -> Tuple[int, ...]:
    try:
        gaps = tuple(int(x) for x in text.split(","))
    except ValueError:
        gaps = ()
    if not gaps or min(gaps) < 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of gaps >= 2, e.g. 2,3,4")
    return gaps


def option_name(f) -> str:
    """The command-line option of a :class:`TrainConfig` field (``--init`` for init_weights)."""
    return f.metadata.get("cli") or "--" + f.name.replace("_", "-")


def option_fields() -> list:
    """The TrainConfig fields that are options, in declaration order."""
    return [f for f in fields(TrainConfig) if "help" in f.metadata]


def _help(f) -> str:
    text = f.metadata["help"]
    if "default" in text:
        return text
    default = f.default if f.default is not MISSING else f.default_factory()
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif isinstance(default, tuple):
        shown = ",".join(map(str, default))
    else:
        shown = "none" if default in (None, []) else str(default)
    return f"{text} (default {shown})"


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """``hrinet train``'s options: one per :class:`TrainConfig` field that declares one, plus
    the run's own (--out, --resume, --stop-at) and --gaps. Every option defaults to None, so
    that a resumed run can tell what the user gave (and honour it) from what the checkpoint
    holds."""
    for f in option_fields():
        meta, kind = f.metadata, f.type if isinstance(f.type, type) else None
        kwargs = {"help": _help(f), "dest": f.name}
        if meta.get("nargs"):
            kwargs["nargs"] = meta["nargs"]
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if f.default is False:  # an on/off switch
            kwargs.update(action="store_true", default=None)
        else:
            kwargs["type"] = meta.get("parse") or {"int": int, "float": float}.get(
                str(f.type).split("[")[0], kind if kind in (int, float) else None) or str
        p.add_argument(option_name(f), **kwargs)
    p.add_argument("--out", required=True, help="run folder: checkpoint, logs, final weights")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--stop-at", type=int, help="save a checkpoint and stop at this step "
                   "(to change settings, then --resume; default: none, run to --iterations)")
    p.add_argument("--gaps", type=_gap_list, help="hrinet-flow: gaps between known slices to "
                   "train on, in thin slices, e.g. 2,2,3,4,5,6,7,8 (drawn uniformly from the "
                   "list, so a repeated gap is drawn more often; default 2-8 once each)")


def train_argv(**settings) -> List[str]:
    """The ``hrinet train`` arguments that set these TrainConfig fields (for programs that start
    training, such as the Slicer panel): the same option names the parser is built from."""
    by_name = {f.name: f for f in option_fields()}
    argv: List[str] = []
    for name, value in settings.items():
        if name not in by_name:
            raise ValueError(f"{name} is not a training option")
        flag = option_name(by_name[name])
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif isinstance(value, (list, tuple)) and by_name[name].metadata.get("nargs"):
            argv += [flag, *map(str, value)]
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(map(str, value))]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


#: Option destinations that map one to one onto TrainConfig fields (made from the fields).
CONFIG_OPTIONS = {f.name: f.name for f in option_fields()}
#: Settings a resumed run cannot change (the checkpoint's tensors are for them).
FIXED_ON_RESUME = ("variant", "design_size", "channels", "init_weights", "adversarial_context")


def given_options(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the user gave on the command line."""
    given = {name: getattr(args, name) for name in CONFIG_OPTIONS
             if getattr(args, name, None) is not None}
    for key in ("data", "val"):
        if key in given:
            given[key] = list(given[key])
    if getattr(args, "gaps", None):
        given["group_sizes"] = gap_group_sizes(tuple(args.gaps))
    return given
