"""The ``hrinet train`` command's options (no torch: the CLI builds its parser from this, so
``hrinet info`` and ``--help`` answer at once)."""

from __future__ import annotations

import argparse
from typing import Tuple

from .constants import DEFAULT_VARIANT, VARIANTS


def _gap_list(text: str) -> Tuple[int, ...]:
    try:
        gaps = tuple(int(x) for x in text.split(","))
    except ValueError:
        gaps = ()
    if not gaps or min(gaps) < 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of gaps >= 2, e.g. 2,3,4")
    return gaps


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", default=[], help="training volumes (any readable "
                   "format or DICOM folders); with --resume the checkpoint's are used")
    p.add_argument("--val", nargs="*", default=[], help="held-out validation volumes")
    p.add_argument("--variant", default=DEFAULT_VARIANT, choices=VARIANTS,
                   help="model variant (README 'The model family'; default: hrinet-flow, the "
                   "shipped default model)")
    p.add_argument("--iterations", type=int, help="total iterations (default 1000; with "
                   "--resume: the checkpoint's, or this many in all)")
    p.add_argument("--crop", type=int, default=128, help="training crop size (multiple of 64)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--design-size", type=int, default=256, choices=(256, 512),
                   help="Table 1 layout the mixed maps follow")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--val-factors", type=lambda t: tuple(int(x) for x in t.split(",")),
                   default=(4,), help="factors scored at each validation, e.g. 2,4,6")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--out", required=True, help="run folder: checkpoint, logs, final weights")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="start from these .safetensors weights (fine-tuning)")
    p.add_argument("--stop-at", type=int, help="save a checkpoint and stop at this step "
                   "(to change settings, then --resume)")
    p.add_argument("--gaps", type=_gap_list, help="hrinet-flow: gaps between known slices to "
                   "train on, in thin slices, e.g. 2,2,3,4,5,6,7,8 (drawn uniformly from the "
                   "list, so a repeated gap is drawn more often; default 2-8 once each)")
    p.add_argument("--log-mse", action="store_true", default=None, help="hrinet-flow: "
                   "minimise the mean log-MSE over samples (mean PSNR) instead of the mean MSE")
    p.add_argument("--ema", type=float, help="weight averaging decay, e.g. 0.999 (default off)")
    p.add_argument("--lr-final", type=float, help="cosine-decay the learning rate to this "
                   "fraction of --lr after --decay-start of the iterations (default 1: constant)")
    p.add_argument("--decay-start", type=float, help="fraction of the iterations where the "
                   "decay starts (default 0.6)")
    p.add_argument("--window-weight", type=float, help="weight of the soft-tissue-window MSE "
                   "added to the content loss (default 0: the paper's losses)")
    p.add_argument("--ssim-weight", type=float, help="weight of 1 - SSIM in the soft-tissue "
                   "window added to the content loss (default 0)")
