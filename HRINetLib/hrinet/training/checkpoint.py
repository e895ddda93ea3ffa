"""Training checkpoints: one safetensors file of every tensor plus the run's state as JSON.

A checkpoint carries the sha256 of its tensors and of its training state (step, settings,
schedule), so a damaged or edited file is recognised on resume instead of resuming from corrupt
weights or at the wrong step; the checkpoint before it is kept (``checkpoint.prev``), and only
an intact latest one ever replaces it, so that a damaged latest one costs a few minutes of
training, not the run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Tuple

import torch
from safetensors.torch import load_file, save_file

from hrinet.core.io.atomic import atomic_write, complete_safetensors
from hrinet.core.errors import HRINetError
from hrinet.learned.weights import tensor_header

CHECKPOINT = "checkpoint.safetensors"
PREVIOUS = "checkpoint.prev.safetensors"


def tensors_digest(tensors: Dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes (in name order)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def state_digest(state: dict) -> str:
    """sha256 of the training state as canonical JSON (its own digest left out)."""
    body = {k: v for k, v in state.items() if k != "state_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_checkpoint(folder: Path, tensors: Dict[str, torch.Tensor], state: dict) -> Path:
    """Write ``folder/checkpoint.safetensors`` (verified, atomic); the last one becomes
    ``checkpoint.prev.safetensors`` if it is intact (a damaged one never replaces a good one)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKPOINT
    state = dict(state, tensors_sha256=tensors_digest(tensors))
    state["state_sha256"] = state_digest(state)
    if path.exists():
        try:
            read_checkpoint(path)
        except HRINetError:
            pass  # the latest is damaged: keep the previous one, overwrite the latest
        else:
            os.replace(path, folder / PREVIOUS)
    with atomic_write(path, verify=complete_safetensors, what=f"checkpoint {path}") as tmp:
        save_file(tensors, str(tmp), metadata={"state": json.dumps(state)})
    return path


def read_checkpoint(path: Path) -> Tuple[Dict[str, torch.Tensor], dict]:
    """``(tensors, state)`` of a checkpoint, after checking its integrity.

    Raises:
        HRINetError: not a checkpoint, cut off, or its tensors do not match their sha256.
    """
    try:
        state = json.loads(tensor_header(path)[1]["state"])
        tensors = load_file(str(path))
    except Exception:  # safetensors raises its own errors for damaged headers and data
        raise HRINetError(f"{path} is damaged or not an HRINet training checkpoint; name the "
                          f"{CHECKPOINT} (or {PREVIOUS}) of a training run") from None
    digest = state.get("tensors_sha256")
    if digest is not None and digest != tensors_digest(tensors):
        raise HRINetError(f"{path} is damaged: its tensors do not match their checksum")
    if "state_sha256" in state and state["state_sha256"] != state_digest(state):
        raise HRINetError(f"{path} is damaged or edited: its training state (step, settings) "
                          "does not match its checksum")
    return tensors, state


def checkpoint_to_resume(folder: Path, log=print) -> Tuple[Path, Dict[str, torch.Tensor], dict]:
    """The newest intact checkpoint in a run folder: the latest, else the one before it.

    Raises:
        HRINetError: no checkpoint, or none intact (with what to do).
    """
    latest, previous = folder / CHECKPOINT, folder / PREVIOUS
    if not latest.is_file() and not previous.is_file():
        raise HRINetError(f"nothing to resume: {latest} does not exist; start without --resume")
    problem = f"{latest} is missing"
    if latest.is_file():
        try:
            return (latest,) + read_checkpoint(latest)
        except HRINetError as exc:
            problem = str(exc)
    if previous.is_file():
        try:
            tensors, state = read_checkpoint(previous)
        except HRINetError:
            pass
        else:
            log(f"warning: {problem}; resuming from the checkpoint before it (step "
                f"{state['step']})")
            return (previous, tensors, state)
    raise HRINetError(f"{problem}, and no earlier intact checkpoint is in {folder}; start a new "
                      "run (--init with the run's exported weights keeps what was learned)")


def add_module(prefix: str, module: torch.nn.Module, tensors: dict) -> None:
    """Put ``module``'s weights into ``tensors`` as ``<prefix>.<name>`` (on the CPU)."""
    for k, v in module.state_dict().items():
        tensors[f"{prefix}.{k}"] = v.detach().cpu().contiguous()


def module_state(prefix: str, tensors: dict) -> Dict[str, torch.Tensor]:
    """The weights :func:`add_module` put under ``prefix`` (empty when none are)."""
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def flatten_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict) -> dict:
    """An optimiser's state: its tensors into ``tensors`` (``opt.<name>.<param>.<key>``), the
    rest returned as JSON-able metadata (what :func:`restore_optimizer` reads back)."""
    sd = opt.state_dict()
    scalars = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"opt.{name}.{idx}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = val
    return {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    """Load into ``opt`` the state :func:`flatten_optimizer` saved."""
    state: Dict[int, dict] = {}
    prefix = f"opt.{name}."
    for key, val in tensors.items():
        if key.startswith(prefix):
            idx, k = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[k] = val
    for key, val in meta["scalars"].items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
