"""Adapt the model to one thick case, and keep the result only if it measurably helps.

Fine-tuning on a single patient can make things worse (it overwrites what the model knew, and the
case's own slices teach gaps wider than the ones it will be asked for), so adaptation is guarded:

1. A block of the thick volume's last slices (``holdout`` of them, at least 9) is held out; the
   slices before it, one contiguous stack (thick cases are short), are the training data.
2. The model is fine-tuned conservatively (small learning rate, few steps) on those slices, at
   gaps of 2 and 3 of the case's own slices (:data:`ADAPT_GAPS`), thin and slab input as in
   training.
3. Both the starting model and the adapted one predict every other held-out slice from its
   neighbours (the decimate protocol at x2 on the block); the adapted weights are kept only if
   they win by at least ``margin_db`` PSNR_HU. Otherwise the starting model is kept, and the
   result says so.

``adapt.json`` in the output folder records the comparison; the adapted weights
(``hrinet-adapted.safetensors``) are written only when kept, with the case and the held-out
result in their sidecar.

The output folder may hold other files (the Slicer panel keeps the exported input and its job
log there; a user may keep notes): adaptation writes and removes only the files it names in
:func:`adaptation_files`, and only where each is absent or adaptation's own. Ownership is
recorded in the folder's manifest (:data:`FOLDER_MARK`): every file adaptation wrote, with its
sha256, so that a file the user put in its place, or changed, is refused rather than replaced.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from hrinet.core.io.atomic import file_sha256, write_text
from hrinet.core.io.paths import make_folder
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.variants import DEFAULT_VARIANT, gap_group_sizes
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
from hrinet.training.config import TrainConfig
from hrinet.training.lineage import training_metadata
from hrinet.training.motion_data import group_span
from hrinet.training.resume import run_files
from hrinet.training.trainer import Trainer

ADAPTED_NAME = "hrinet-adapted.safetensors"
#: The manifest of the files adaptation wrote in a folder: JSON ``{"files": {name: sha256}}``
#: (``null`` for a file being written: claimed before the write, so that a run killed midway
#: leaves its partial files claimed).
FOLDER_MARK = ".hrinet-adapt"
#: What a folder that holds a training run or weights of the user's shows.
_OTHERS = ("config.json", "log.csv", "val.jsonl", "progress.json", CHECKPOINT, PREVIOUS)
#: The held-out block must allow a few x2 predictions.
MIN_HOLDOUT = 9
#: Gaps, in the case's own slices, that adaptation trains on.
ADAPT_GAPS = (2, 3)
#: Slices the training part needs: one group of the widest gap with the spline's six known
#: slices, so that every gap is drawn as asked (the other variants' groups are shorter).
MIN_TRAIN = group_span(max(ADAPT_GAPS), 0.0, known=6)[0]


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


def adaptation_files(variant: str) -> tuple:
    """Every file adaptation of a ``variant`` model writes or removes in its folder: the
    verdict, the fine-tuning's run files (config, logs, plot, checkpoints, its unguarded
    weights) and the adapted weights with their sidecar."""
    return ("adapt.json",) + run_files(variant) + (
        ADAPTED_NAME, Path(ADAPTED_NAME).with_suffix(".json").name)


def owned_files(out: Path) -> dict:
    """``{name: sha256 or None}`` of the files adaptation recorded writing in ``out`` (empty
    without a readable manifest: then nothing there is adaptation's)."""
    try:
        record = json.loads((Path(out) / FOLDER_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(k): v for k, v in files.items() if v is None or isinstance(v, str)}


def _is_own(path: Path, owned: dict) -> bool:
    """Whether ``path`` is a file adaptation wrote: recorded, a regular file, and (once its
    write ended) unchanged since."""
    if path.name not in owned or path.is_symlink() or not path.is_file():
        return False
    return owned[path.name] is None or file_sha256(path) == owned[path.name]


def _record(out: Path, names, claim: bool) -> None:
    """Update the manifest for ``names``: with ``claim``, mark them as being written (before
    any of them is); otherwise record the sha256 of each present and drop the absent."""
    files = owned_files(out)
    for name in names:
        path = out / name
        if claim:
            files[name] = None
        elif path.is_file() and not path.is_symlink():
            files[name] = file_sha256(path)
        else:
            files.pop(name, None)
    write_text(out / FOLDER_MARK, json.dumps({"written_by": "hrinet adapt", "files": files},
                                             indent=2, sort_keys=True),
               what=f"the adaptation manifest {out / FOLDER_MARK}")


def check_folder(out: Path, start: str, variant: str = DEFAULT_VARIANT) -> None:
    """Refuse, before anything is written, an ``out`` where adaptation would replace or remove
    a file that is not its own (:func:`adaptation_files` of ``variant``, checked against the
    manifest), or that holds the starting weights. Other files in ``out`` are left alone."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HRINetError(f"--out {out} is a file; give a folder for the adaptation")
    where = Path(start).resolve()
    if out.resolve() == where.parent or out.resolve() in where.parents:
        raise HRINetError(f"the starting weights {start} lie in --out {out}, where adaptation "
                          "writes; choose another --out folder")
    if not out.is_dir():
        return
    owned = owned_files(out)
    mark = out / FOLDER_MARK
    if (mark.exists() or mark.is_symlink()) and not _is_manifest(mark):
        raise HRINetError(f"--out {out} holds {FOLDER_MARK}, which is no adaptation manifest; "
                          "move it away or choose a new or empty folder")
    for name in adaptation_files(variant):
        path = out / name
        if not (path.exists() or path.is_symlink()) or _is_own(path, owned):
            continue
        if path.suffix == ".safetensors" or name in _OTHERS:
            raise HRINetError(f"--out {out} holds a training run or weights ({name}) that "
                              "adaptation would replace; choose a new or empty folder")
        how = "was changed since adaptation wrote it" if name in owned else \
            "which adaptation did not write"
        raise HRINetError(f"--out {out} holds {name}, {how}, and adaptation would replace it; "
                          "move it away or choose a new or empty folder")


def _is_manifest(mark: Path) -> bool:
    """Whether ``mark`` is adaptation's manifest (or the plain marker that earlier versions
    wrote, which records no files): a regular file adaptation may replace."""
    if mark.is_symlink() or not mark.is_file():
        return False
    try:
        text = mark.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        record = json.loads(text)
    except ValueError:
        return text.startswith("written by hrinet adapt")
    return isinstance(record, dict) and isinstance(record.get("files"), dict)


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
    names = adaptation_files(variant)
    check_folder(out, start, variant)
    make_folder(out)
    _record(out, names, claim=True)
    try:
        result = _adapt(out, thick, parts, block, start, variant, iterations, lr, crop, device,
                        margin_db, case, progress, cancel, log)
    except BaseException:
        with suppress(HRINetError, OSError):  # the run's own error is the one to tell
            _record(out, names, claim=False)
        raise
    _record(out, names, claim=False)  # what is there now, with the sha256 of each
    return result


def _adapt(out: Path, thick: Volume, parts, block: Volume, start: str, variant: str,
           iterations: int, lr: float, crop: int, device: str, margin_db: float, case: str,
           progress, cancel, log) -> AdaptResult:
    """:func:`adapt` once ``out`` is checked and claimed."""
    (out / "adapt.json").unlink(missing_ok=True)  # an earlier verdict is not this run's
    dev = resolve_device(device)
    crop = min(crop, 64 * max(1, min(thick.array.shape[1:]) // 64))
    cfg = TrainConfig(variant=variant, iterations=iterations, crop=crop, batch=4, lr=lr,
                      device=str(dev), val_every=0, init_weights=start, checkpoint_minutes=5,
                      group_sizes=gap_group_sizes(ADAPT_GAPS), data=[case])
    for name in run_files(variant):  # an earlier adaptation's run (check_out made sure it was)
        (out / name).unlink(missing_ok=True)
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
        meta = training_metadata(cfg, trainer.volume_records, trainer.step, {})
        meta["adaptation"] = {"case": case, "held_out_slices": block.array.shape[0],
                              "held_out_psnr_hu": {"start": before, "adapted": after}}
        save_weights(adapted, path, meta)
    elif path.exists():
        path.unlink()  # a stale adapted file from an earlier run must not be picked up
        path.with_suffix(".json").unlink(missing_ok=True)
    result = AdaptResult(case, block.array.shape[0], before, after, kept,
                         str(path) if kept == "adapted" else start, trainer.step)
    write_text(out / "adapt.json", json.dumps(asdict(result), indent=2))
    _remove_training_state(out)  # it holds the unguarded weights, which `export` would extract
    return result


def _remove_training_state(out: Path) -> None:
    """The fine-tuning's checkpoints: adaptation's own, never kept after it ends."""
    for name in (CHECKPOINT, PREVIOUS):
        (out / name).unlink(missing_ok=True)
