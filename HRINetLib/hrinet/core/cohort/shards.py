"""Shards of a cohort: which shard a case falls to, and which shard this process is, from
``--shard I/N``, a SLURM job array or a torchrun launch (docs/cluster.md).

Every shard computes the same partition from the cases alone, so the processes of a job array
agree on it without talking to each other. Whatever the environment says is checked: a task
that would silently get no cases, or leave a gap, is refused with what to do instead.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

from hrinet.core.cohort.cases import SHARD_TABLE, Case
from hrinet.core.errors import HRINetError
from hrinet.core.lock import is_locked


def shard_of(case: Case, shards: int) -> int:
    """The shard (0-based) a case belongs to: a hash of its identity, nothing else."""
    digest = hashlib.sha256(os.fsencode(case.identity)).digest()
    return int.from_bytes(digest[:8], "big") % shards


def _integer(env: Dict[str, str], name: str, default: Optional[int] = None) -> int:
    text = env.get(name)
    if text is None:
        if default is None:
            raise HRINetError(f"{name} is not set; give --shard I/N instead")
        return default
    try:
        return int(text.strip())
    except ValueError:
        raise HRINetError(f"{name}={text!r} is not a whole number; fix the job's environment "
                          "or give --shard I/N") from None


def _slurm(env: Dict[str, str]) -> Tuple[int, int]:
    """``(index, count)`` of a SLURM array task. A range with a step (``--array=1-16:2``) maps
    onto shards; a list (``--array=3,7``) cannot be told from the environment and is refused."""
    task = _integer(env, "SLURM_ARRAY_TASK_ID")
    low = _integer(env, "SLURM_ARRAY_TASK_MIN", task if "SLURM_ARRAY_TASK_COUNT" not in env
                   else 0)
    step = _integer(env, "SLURM_ARRAY_TASK_STEP", 1)
    if step < 1:
        raise HRINetError(f"SLURM_ARRAY_TASK_STEP={step} is not a positive step; give --shard "
                          "I/N instead")
    if "SLURM_ARRAY_TASK_MAX" in env:
        high = _integer(env, "SLURM_ARRAY_TASK_MAX")
        span = (high - low) // step + 1
    else:
        high, span = None, None
    count = _integer(env, "SLURM_ARRAY_TASK_COUNT", span if span is not None else 0)
    if count < 1:
        raise HRINetError("the SLURM array's size is unknown (SLURM_ARRAY_TASK_COUNT or "
                          "SLURM_ARRAY_TASK_MAX missing); give --shard I/N instead")
    if span is not None and span != count:
        raise HRINetError(f"the SLURM array is not a range of task IDs (MIN {low}, MAX {high}, "
                          f"STEP {step} make {span} tasks, COUNT says {count}): its tasks cannot "
                          "be mapped onto shards; submit --array=0-{n} or give --shard I/N"
                          .replace("{n}", str(count - 1)))
    offset = task - low
    if offset < 0 or offset % step or offset // step >= count:
        raise HRINetError(f"SLURM_ARRAY_TASK_ID={task} is not one of the array's {count} tasks "
                          f"(from {low} in steps of {step}); submit --array=0-{count - 1} or "
                          "give --shard I/N")
    return offset // step, count


def _at_most_max(index: int, count: int, where: str) -> Tuple[int, int]:
    if count > MAX_SHARDS:
        raise HRINetError(f"{where} splits the cohort into {count} shards, more than "
                          f"{MAX_SHARDS}; launch fewer tasks, or give --shard I/N")
    return index, count


def shard_from_environment(env: Optional[Dict[str, str]] = None) -> Tuple[int, int, int]:
    """``(index, count, local_rank)`` from a SLURM job array or a torchrun launch; ``(0, 1,
    -1)`` outside both. ``local_rank`` picks the GPU of a torchrun process (-1: none given).

    Raises:
        HRINetError: the variables do not name one task of a whole array (a task outside it,
            junk, a list of IDs that cannot be mapped, a world of size 0).
    """
    env = dict(os.environ if env is None else env)
    if "SLURM_ARRAY_TASK_ID" in env:
        index, count = _at_most_max(*_slurm(env), "the SLURM array")
        return index, count, -1
    if "WORLD_SIZE" in env and "RANK" in env:
        world, rank = _integer(env, "WORLD_SIZE"), _integer(env, "RANK")
        if world < 1 or not 0 <= rank < world:
            raise HRINetError(f"RANK={rank} WORLD_SIZE={world} do not name one of the launch's "
                              "processes (0 <= RANK < WORLD_SIZE); fix the launch or give "
                              "--shard I/N")
        return (*_at_most_max(rank, world, "the launch's WORLD_SIZE"),
                _integer(env, "LOCAL_RANK", -1))
    return 0, 1, -1


#: The most shards a cohort is split into (each writes its own results table).
MAX_SHARDS = 10000


def parse_shard(text: str) -> Tuple[int, int]:
    """``"I/N"`` (1-based I, as people count shards) as a 0-based ``(index, count)``."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        i = n = 0
    if n < 1 or not 1 <= i <= n:
        raise HRINetError(f"--shard {text!r} is not I/N with 1 <= I <= N, e.g. --shard 2/8")
    if n > MAX_SHARDS:
        raise HRINetError(f"--shard {text!r} splits the cohort into more than {MAX_SHARDS} "
                          "shards; use at most one shard per machine or GPU, e.g. --shard 2/8")
    return i - 1, n


def results_name(index: int, count: int) -> str:
    """The results table of one shard (``results.csv`` when there is one shard)."""
    return "results.csv" if count == 1 else f"results-shard-{index + 1}-of-{count}.csv"


def check_other_layouts(out: Path, table: Path) -> None:
    """Refuse to start beside a running batch with another shard layout on the same --out:
    the two would share cases (and their half-written files)."""
    count = SHARD_TABLE.match(table.name)
    mine = count.group(2) if count else "1"
    for lock in Path(out).glob(".results*.csv.lock"):
        other = SHARD_TABLE.match(lock.name[1:-len(".lock")])
        theirs = other.group(2) if other else "1"
        if theirs != mine and is_locked(lock):
            raise HRINetError(f"a batch with {theirs} shard(s) is running on {out}; wait for it "
                              "to end (or stop it), or give another --out")
