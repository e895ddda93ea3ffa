"""Adapt the model to one thick case, and keep the result only if it measurably helps.

Fine-tuning on a single patient can make things worse (it overwrites what the model knew, and the
case's own slices teach gaps wider than the ones it will be asked for), so adaptation is guarded:

1. A block of the thick volume's last slices (``holdout`` of them, at least 9) is held out; the
   slices before it, one contiguous stack (thick cases are short), are the training data.
2. The model is fine-tuned conservatively (small learning rate, few steps) on those slices, at
   gaps of 3 and 4 of the case's own slices (:data:`ADAPT_GAPS`), thin and slab input as in
   training.
3. Both the starting model and the adapted one predict every other held-out slice from its
   neighbours (the decimate protocol at x2 on the block); the adapted weights are kept only if
   they win by at least ``margin_db`` PSNR_HU. Otherwise the starting model is kept, and the
   result says so.

``adapt.json`` in the output folder records the comparison; the adapted weights
(``hrinet-adapted.safetensors``) are written only when kept, with the case and the held-out
result in their sidecar.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from hrinet.core.atomic import write_text
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.volume import Volume
from hrinet.evaluation.evaluate import evaluate_volume
from hrinet.learned.inference import make_interpolator, resolve_device
from hrinet.learned.weights import (
    DEFAULT_NAME,
    find_weights,
    load_weights,
    read_metadata,
    save_weights,
)
from hrinet.training.checkpoint import CHECKPOINT, PREVIOUS
from hrinet.training.motion_data import group_span
from hrinet.training.trainer import (
    TrainConfig,
    Trainer,
    training_metadata,
)

ADAPTED_NAME = "hrinet-adapted.safetensors"
#: Marks a folder as adaptation's own: only such a folder (or a new or empty one) is written to.
FOLDER_MARK = ".hrinet-adapt"
#: What a folder that holds a training run or weights of the user's shows.
_OTHERS = ("config.json", "log.csv", "val.jsonl", "progress.json", CHECKPOINT, PREVIOUS)
#: The held-out block must allow a few x2 predictions.
MIN_HOLDOUT = 9
#: Gaps, in the case's own slices, that adaptation trains on.
ADAPT_GAPS = (3, 4)
#: Slices the training part needs: one group of the narrowest gap with the spline's six known
#: slices (the other variants' groups are shorter).
MIN_TRAIN = group_span(min(ADAPT_GAPS), 0.0, known=6)[0]


@dataclass
class AdaptResult:
    """What an adaptation measured and kept."""

    case: str
    holdout_slices: int
    default_psnr_hu: float
    adapted_psnr_hu: float
    kept: str  # "adapted" or "default"
    weights: str  # the weights to use from now on
    iterations: int

    def describe(self) -> str:
        gain = self.adapted_psnr_hu - self.default_psnr_hu
        verdict = ("kept the adapted weights" if self.kept == "adapted" else
                   "kept the starting model (adaptation did not help on the held-out slices)")
        return (f"held-out slices ({self.holdout_slices}): starting model "
                f"{self.default_psnr_hu:.2f} dB, adapted {self.adapted_psnr_hu:.2f} dB "
                f"({gain:+.2f}); {verdict}")


def split_for_adaptation(volume: Volume, holdout: float = 0.3):
    """``(train_parts, held_out)``: the first slices (one part) and the last block."""
    n = volume.array.shape[0]
    h = max(MIN_HOLDOUT, int(round(n * holdout)))
    if n - h < MIN_TRAIN:
        raise HRINetError(f"the volume has {n} slices, too few to adapt (it needs {MIN_HOLDOUT} "
                          f"held-out slices and at least {MIN_TRAIN} to learn from, "
                          f"{MIN_HOLDOUT + MIN_TRAIN} in all); interpolate it without "
                          "adaptation")
    z0 = n - h
    return [volume.with_array(volume.array[:z0].copy())], volume.with_array(
        volume.array[z0:].copy())


def heldout_psnr(model, block: Volume, device) -> float:
    """PSNR_HU of ``model`` predicting every other slice of ``block`` from its neighbours."""
    interp = make_interpolator(model, device)
    return evaluate_volume(block, "held-out", [2], ["m"], interpolators={"m": interp})[0].psnr_hu


def check_folder(out: Path, start: str) -> None:
    """Refuse, before anything is written, an ``out`` whose contents adaptation would replace:
    a training run or weights that are not adaptation's own, or the starting weights."""
    if out.exists() and not out.is_dir():
        raise HRINetError(f"--out {out} is a file; give a folder for the adaptation")
    where = Path(start).resolve()
    if out.resolve() == where.parent or out.resolve() in where.parents:
        raise HRINetError(f"the starting weights {start} lie in --out {out}, where adaptation "
                          "writes; choose another --out folder")
    if out.is_dir() and not (out / FOLDER_MARK).exists():
        theirs = sorted(p.name for p in out.iterdir()
                        if p.suffix == ".safetensors" or p.name in _OTHERS)
        if theirs:
            raise HRINetError(f"--out {out} holds a training run or weights "
                              f"({', '.join(theirs[:3])}) that adaptation would replace; choose "
                              "a new or empty folder")


def adapt(thick: Volume, out, weights: Optional[str] = None, iterations: int = 200,
          lr: float = 3e-5, crop: int = 128, device: str = "auto", margin_db: float = 0.05,
          case: str = "case", progress: Optional[Callable[[int, int, dict], None]] = None,
          cancel: Optional[Callable[[], bool]] = None, log=print) -> AdaptResult:
    """Fine-tune ``weights`` (default: the shipped model) on ``thick`` behind the guard above."""
    out = Path(out)
    start = str(weights or find_weights(DEFAULT_NAME) or "")
    if not start:
        raise HRINetError("no default weights to adapt; give a weights file")
    variant = read_metadata(start)["variant"]
    parts, block = split_for_adaptation(thick)
    check_folder(out, start)
    out.mkdir(parents=True, exist_ok=True)
    (out / FOLDER_MARK).write_text("written by hrinet adapt: this folder is adaptation's own\n")
    (out / "adapt.json").unlink(missing_ok=True)  # an earlier verdict is not this run's
    dev = resolve_device(device)
    crop = min(crop, 64 * max(1, min(thick.array.shape[1:]) // 64))
    cfg = TrainConfig(variant=variant, iterations=iterations, crop=crop, batch=4, lr=lr,
                      device=str(dev), val_every=0, init_weights=start, checkpoint_minutes=5,
                      group_sizes=ADAPT_GAPS, data=[case])
    _remove_training_state(out)  # an earlier adaptation's state, not the user's
    trainer = Trainer(cfg, out, volumes=parts, progress=progress, cancel=cancel, log=log)
    trainer.sampler.names = [f"{case} (slices outside the held-out block)"] * len(parts)
    try:
        unguarded = trainer.run()
    except Cancelled:
        _remove_training_state(out)
        raise Cancelled("adaptation stopped; nothing was kept (the starting model stays); run "
                        "hrinet adapt again to adapt") from None
    unguarded.unlink(missing_ok=True)  # only the guarded result below may be used
    unguarded.with_suffix(".json").unlink(missing_ok=True)
    base, _ = load_weights(start, device=str(dev))
    adapted = trainer.final_generator().eval()
    before = heldout_psnr(base, block, dev)
    after = heldout_psnr(adapted, block, dev)
    kept = "adapted" if after >= before + margin_db else "default"
    path = out / ADAPTED_NAME
    if kept == "adapted":
        meta = training_metadata(cfg, trainer.volumes, trainer.step, {})
        meta["adaptation"] = {"case": case, "held_out_slices": block.array.shape[0],
                              "held_out_psnr_hu": {"start": before, "adapted": after}}
        save_weights(adapted, path, meta)
    elif path.exists():
        path.unlink()  # a stale adapted file from an earlier run must not be picked up
    result = AdaptResult(case, block.array.shape[0], before, after, kept,
                         str(path) if kept == "adapted" else start, trainer.step)
    write_text(out / "adapt.json", json.dumps(asdict(result), indent=2))
    _remove_training_state(out)  # it holds the unguarded weights, which `export` would extract
    return result


def _remove_training_state(out: Path) -> None:
    """The fine-tuning's checkpoints: adaptation's own, never kept after it ends."""
    for name in (CHECKPOINT, PREVIOUS):
        (out / name).unlink(missing_ok=True)
