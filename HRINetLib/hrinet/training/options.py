"""The ``hrinet train`` command's options (no torch: the CLI builds its parser from this, so
``hrinet info`` and ``--help`` answer at once)."""

from __future__ import annotations

import argparse
from typing import Tuple

from hrinet.core.constants import VARIANTS

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


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", help="training volumes (any readable "
                   "format or DICOM folders); no default: required, except with --resume (the "
                   "checkpoint's unless given)")
    p.add_argument("--val", nargs="*", help="held-out validation volumes (default: none, no "
                   "validation)")
    p.add_argument("--variant", choices=VARIANTS,
                   help="model variant (README 'The model family'; default: hrinet-flow, the "
                   "shipped default model)")
    p.add_argument("--iterations", type=int, help="total iterations (default 1000; with "
                   "--resume: the checkpoint's, or this many in all)")
    p.add_argument("--crop", type=int, help="training crop size (multiple of 64; default 128)")
    p.add_argument("--batch", type=int, help="groups per step (default 8)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-4)")
    p.add_argument("--design-size", type=int, choices=(256, 512),
                   help="Table 1 layout the mixed maps follow (default 256)")
    p.add_argument("--val-every", type=int, help="validate every N steps (default 500)")
    p.add_argument("--val-factors", type=lambda t: tuple(int(x) for x in t.split(",")),
                   help="factors scored at each validation, e.g. 2,4,6 (default 4)")
    p.add_argument("--checkpoint-minutes", type=float, help="default 5")
    p.add_argument("--out", required=True, help="run folder: checkpoint, logs, final weights")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--init", help="start from these .safetensors weights (fine-tuning; acai "
                   "weights, the paper's stage-I result, also start hrinet-patchgan, hrinet-mse "
                   "and hrinet-perceptual, which then train stage II only; default: none, from "
                   "scratch)")
    p.add_argument("--stop-at", type=int, help="save a checkpoint and stop at this step "
                   "(to change settings, then --resume; default: none, run to --iterations)")
    p.add_argument("--gaps", type=_gap_list, help="hrinet-flow: gaps between known slices to "
                   "train on, in thin slices, e.g. 2,2,3,4,5,6,7,8 (drawn uniformly from the "
                   "list, so a repeated gap is drawn more often; default 2-8 once each)")
    p.add_argument("--log-mse", action="store_true", default=None, help="hrinet-flow: "
                   "minimise the mean log-MSE over samples (mean PSNR) instead of the mean MSE")
    p.add_argument("--samples-per-group", type=int, help="hrinet-flow: target slices drawn "
                   "from each group of known slices (default 2)")
    p.add_argument("--overlap", type=float, help="hrinet-flow: share of training groups first "
                   "re-made as overlapping thin slices (1.3-2 spacings thick; default 0)")
    p.add_argument("--drop-context", type=float, help="hrinet-flow: chance that each context "
                   "slice of a training group is missing, as at a volume's ends (default 0.1)")
    p.add_argument("--augment", type=float, help="hrinet-flow: chance that a training group "
                   "is re-made as another scanner would have acquired it: pixel size, kernel, "
                   "dose, field-of-view circle (default 0)")
    p.add_argument("--workers", type=int, help="hrinet-flow: processes that make training "
                   "batches ahead (default 0: in the training process; on a GPU machine, about "
                   "the number of CPU cores); the samples are the same either way")
    p.add_argument("--ema", type=float, help="weight averaging decay, e.g. 0.999 (default off)")
    p.add_argument("--lr-final", type=float, help="cosine-decay the learning rate to this "
                   "fraction of --lr after --decay-start of the iterations (default 1: constant)")
    p.add_argument("--decay-start", type=float, help="fraction of the iterations where the "
                   "decay starts (default 0.6)")
    p.add_argument("--window-weight", type=float, help="weight of the soft-tissue-window MSE "
                   "added to the content loss (default 0: the paper's losses)")
    p.add_argument("--ssim-weight", type=float, help="weight of 1 - SSIM in the soft-tissue "
                   "window added to the content loss (default 0); with --log-mse, the weight of "
                   "log(1 - SSIM) beside the log-MSE")


#: Options that map one to one onto :class:`hrinet.training.trainer.TrainConfig` fields. Every option
#: defaults to None, so that a resumed run can tell what the user gave (and honour it) from
#: what the checkpoint holds.
CONFIG_OPTIONS = {"variant": "variant", "data": "data", "val": "val", "iterations": "iterations",
                  "crop": "crop", "batch": "batch", "lr": "lr", "design_size": "design_size",
                  "val_every": "val_every", "val_factors": "val_factors",
                  "checkpoint_minutes": "checkpoint_minutes", "device": "device",
                  "seed": "seed", "init": "init_weights", "ema": "ema", "lr_final": "lr_final",
                  "decay_start": "decay_start", "window_weight": "window_weight",
                  "ssim_weight": "ssim_weight", "log_mse": "log_mse",
                  "samples_per_group": "samples_per_group", "workers": "workers",
                  "overlap": "overlap", "drop_context": "drop_context",
                  "augment": "augment"}
#: Settings a resumed run cannot change (the checkpoint's tensors are for them).
FIXED_ON_RESUME = ("variant", "design_size", "channels", "init_weights")


def given_options(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the user gave on the command line."""
    given = {field: getattr(args, opt) for opt, field in CONFIG_OPTIONS.items()
             if getattr(args, opt, None) is not None}
    for key in ("data", "val"):
        if key in given:
            given[key] = list(given[key])
    if getattr(args, "gaps", None):
        given["group_sizes"] = tuple(g + 1 for g in args.gaps)
    return given
