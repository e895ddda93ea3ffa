"""``hrinet-flow`` training batches made ahead in worker processes (``--workers N``).

A motion batch costs tens of milliseconds of CPU per group (four optical flows, warps, slab
averages), far more than the network's step on a GPU, so on a GPU machine the step waits for
data. Each batch is a pure function of ``(seed, rank, step)`` (:func:`hrinet.training.data.step_rng`), so
workers can make them ahead, out of the main process, and the run stays exactly the run made
without workers: same samples, same order, same resumes.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from typing import Iterator, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from hrinet.methods import flow
from hrinet.training.data import step_rng

#: Batches each worker keeps ready.
PREFETCH = 4


class _MotionBatches(IterableDataset):
    """Worker ``w`` of ``n`` makes the batches of steps ``start + w``, ``start + w + n``, ...;
    the loader takes one from each worker in turn, which is step order."""

    def __init__(self, sampler, seed: int, rank: int, start: int, groups: int, per_group: int,
                 gaps: Sequence[int], overlap: float):
        self.sampler, self.seed, self.rank, self.start = sampler, seed, rank, start
        self.groups, self.per_group, self.gaps = groups, per_group, tuple(gaps)
        self.overlap = overlap

    def __iter__(self) -> Iterator[Tuple[int, object]]:
        info = get_worker_info()
        first, every = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in range(self.start + first, sys.maxsize, every):
            yield step, self.sampler.motion_batch(step_rng(self.seed, self.rank, step),
                                                  self.groups, self.per_group, self.gaps,
                                                  self.overlap)


def _one_thread_each(_: int) -> None:
    # N workers with N threads each would fight over the cores
    # SIGTERM to the process group (`timeout`, a job scheduler, a closed terminal) is the
    # training process's to handle: it stops at the step's end, saves a checkpoint and ends the
    # workers. A worker killed first would make the loader fail the run with an internal error
    # (PyTorch's workers ignore SIGINT for the same reason).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    torch.set_num_threads(1)
    flow.CV_THREADS = 0
    # A spawned worker ends through the interpreter's normal exit, whose C++ static destructors
    # met a native thread pool still running (OpenCV 5 on the GPU machine: "terminate called
    # without an active exception", the worker aborted and the loader printed a traceback after
    # training had finished). The worker has nothing left to write by then: end it at once.
    atexit.register(os._exit, 0)


def motion_batches(sampler, seed: int, rank: int, start: int, groups: int, per_group: int,
                   gaps: Sequence[int], workers: int,
                   overlap: float = 0.0) -> Iterator[Tuple[int, object]]:
    """``(step, MotionBatch)`` for steps ``start, start + 1, ...`` from ``workers`` processes.

    Example:
        >>> batches = motion_batches(sampler, 0, 0, 0, 8, 2, (2, 3), workers=4)  # doctest: +SKIP
        >>> step, batch = next(batches)                                          # doctest: +SKIP
    """
    data = _MotionBatches(sampler, seed, rank, start, groups, per_group, gaps, overlap)
    return iter(DataLoader(data, batch_size=None, num_workers=workers, prefetch_factor=PREFETCH,
                           worker_init_fn=_one_thread_each, persistent_workers=False,
                           # fork after the training process has run OpenMP or OpenCV
                           # threads can hang the child; spawn starts clean (the volumes
                           # travel to each worker once)
                           multiprocessing_context="spawn"))
