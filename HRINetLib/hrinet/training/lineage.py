"""What a weights sidecar records about training: data, settings, lineage; and exporting a
checkpoint to weights."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List, Optional, Sequence

from hrinet import __version__
from hrinet.core.errors import HRINetError
from hrinet.core.io import check_file_name, check_not_broken_link, same_file
from hrinet.core.volume import voxel_sha256
from hrinet.learned.models import ModelConfig
from hrinet.learned.networks import build_generator
from hrinet.learned.weights import read_metadata, save_weights
from hrinet.training.checkpoint import CHECKPOINT, read_checkpoint
from hrinet.training.config import TrainConfig
from hrinet.training.data import SliceSampler


def _git_version() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"{__version__}+{rev}" if rev else __version__


def volume_summaries(sampler: SliceSampler) -> List[dict]:
    """Name, voxel sha256, size and spacing of each training volume (for the weights sidecar):
    what was trained on, identified by content rather than by a path on the training machine."""
    return [{"name": name, "voxel_sha256": voxel_sha256(v.array), "size_xyz": list(v.shape_xyz),
             "spacing_mm": [round(s, 4) for s in v.spacing]}
            for name, v in zip(sampler.names, sampler.volumes)]


def without_paths(config: dict) -> dict:
    """``config`` with every file it names reduced to the file's name: a sidecar travels with
    the weights and must not carry the training machine's folders."""
    out = dict(config)
    for key in ("data", "val"):
        out[key] = [Path(p).name for p in out.get(key) or []]
    if out.get("init_weights"):
        out["init_weights"] = Path(out["init_weights"]).name
    return out


def training_metadata(cfg: TrainConfig, volumes: List[dict], step: int, last_val: dict,
                      resume_changes: Sequence[dict] = (),
                      seconds: Optional[float] = None) -> dict:
    """What a weights sidecar says about how the weights were made.

    ``lineage`` lists every training stage the weights went through, oldest first: the stages
    of the ``--init`` weights (from their sidecar) and then this run, each with its data,
    iterations, settings and wall-clock ``seconds`` (when known), so training spread over several
    runs stays traceable.
    """
    version = _git_version()  # a git subprocess: once
    config = without_paths(cfg.to_dict())
    train, validation = [Path(p).name for p in cfg.data], [Path(p).name for p in cfg.val]
    stage = {"variant": cfg.variant, "data": train, "validation": validation, "iterations": step,
             "settings": {k: v for k, v in config.items() if k not in ("data", "val")},
             "started_from": Path(cfg.init_weights).name if cfg.init_weights else None,
             "resume_changes": list(resume_changes), "code_version": version}
    if seconds is not None:
        stage["seconds"] = round(float(seconds), 1)
    return {"training": {"volumes": volumes, "config": config, "iterations": step,
                         "split": {"train": train, "validation": validation}},
            "lineage": init_lineage(cfg.init_weights) + [stage],
            "validation_metrics": last_val, "code_version": version}


def init_lineage(init_weights: Optional[str]) -> List[dict]:
    """The stages behind ``init_weights`` (empty for a fresh start)."""
    if not init_weights:
        return []

    try:
        meta = read_metadata(init_weights)
    except HRINetError:  # the file is gone (e.g. a resumed run on another machine)
        return [{"started_from": Path(init_weights).name, "note": "sidecar not available"}]
    if "lineage" in meta:
        stages = list(meta["lineage"])
    else:
        t = meta.get("training", {})
        stages = [{"variant": meta.get("variant"), "data": t.get("split", {}).get("train"),
                   "iterations": t.get("iterations"), "settings": t.get("config"),
                   "code_version": meta.get("code_version")}]
    return [dict(stage, settings=without_paths(stage["settings"]))
            if isinstance(stage.get("settings"), dict) else stage for stage in stages]


def export_checkpoint(checkpoint, out, overwrite: bool = False) -> Path:
    """Turn a training checkpoint into deployable weights (safetensors + JSON sidecar)."""
    check_file_name(out)
    checkpoint, out = Path(checkpoint), Path(out)
    if checkpoint.is_dir():
        checkpoint = checkpoint / CHECKPOINT
    if checkpoint.exists() and not checkpoint.is_file():
        raise HRINetError(f"checkpoint {checkpoint} is not a regular file (a device, a pipe or "
                          "a system file); name a run's checkpoint.safetensors or its folder")
    if not checkpoint.is_file():
        where = (f"{checkpoint.parent.resolve()} holds no {CHECKPOINT}"
                 if checkpoint.name == CHECKPOINT else f"{checkpoint} does not exist")
        raise HRINetError(f"checkpoint: {where}; name a training run's folder (--out of hrinet "
                          "train) or its checkpoint.safetensors")
    sidecar = out.with_suffix(".json")
    for written in (out, sidecar):  # the weights or their sidecar would replace the checkpoint
        if same_file(written, checkpoint):
            raise HRINetError(f"output {written} is the checkpoint itself; choose another file "
                              "name")
    for existing in (out, sidecar):
        check_not_broken_link(existing)
        if existing.exists() and not overwrite:
            raise HRINetError(f"output {existing} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():  # the same rule as interpolate: outputs go into existing folders
        raise HRINetError(f"cannot write {out}: folder {out.parent} does not exist; create it "
                          "first")
    tensors, meta = read_checkpoint(checkpoint)
    G = build_generator(ModelConfig.from_dict(meta["model"]))
    prefix = "ema." if any(k.startswith("ema.") for k in tensors) else "generator."
    G.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    cfg = TrainConfig.from_dict(meta["config"])
    volumes = meta.get("volumes") or [{"name": Path(p).name} for p in cfg.data]
    return save_weights(G, out, training_metadata(cfg, volumes, int(meta["step"]),
                                                  meta.get("last_val", {}),
                                                  meta.get("resume_changes", []),
                                                  meta.get("train_seconds")))
