"""Distributed training (torchrun, DDP): joining the process group, wrapping the models, and
leaving it cleanly."""

from __future__ import annotations

import gc
import os
from typing import Optional, Tuple

import torch
from torch.nn.parallel import DistributedDataParallel as DDP


def distributed_setup(device: str) -> Tuple[int, int, Optional[str]]:
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


def is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in a DDP wrapper that averages its gradients over the ranks (on this rank's
    GPU, or on the CPU with gloo)."""
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(m):
    """The module inside a DDP wrapper (or the module itself)."""
    return m.module if hasattr(m, "module") else m


def shutdown_distributed(trainer=None) -> None:
    """Leave a distributed run cleanly: wait for every rank, release the DDP wrappers (their
    reducers hold gloo/NCCL work), then destroy the process group. Tearing down in another
    order can abort a rank at exit."""
    if not is_distributed():
        return
    torch.distributed.barrier()
    if trainer is not None:
        trainer.G, trainer.D1, trainer.D2 = (unwrap(m) for m in (trainer.G, trainer.D1,
                                                                   trainer.D2))
    gc.collect()
    torch.distributed.destroy_process_group()
