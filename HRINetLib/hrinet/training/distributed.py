"""Distributed training (torchrun, DDP): whether a process group is up, and leaving it cleanly."""

from __future__ import annotations

import gc

import torch


def is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


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


def unwrap(m):
    """The module inside a DDP wrapper (or the module itself)."""
    return m.module if hasattr(m, "module") else m
