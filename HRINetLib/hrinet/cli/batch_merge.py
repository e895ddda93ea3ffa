"""``hrinet batch INPUT --merge``: the shards' results tables in INPUT (their --out folder) merged
into one ``results.csv``. A merge runs nothing, so the options that choose what a batch runs or
where it writes are refused with it (they would be ignored without a word), and a shard still
running is refused (its table is written as it goes) unless ``--partial`` asks for what is there
so far, said in a warning."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List

from hrinet.cli.events import Events
from hrinet.core import cohort
from hrinet.core.errors import HRINetError
from hrinet.core.model_options import ModelOptions


def not_for_merge(args) -> List[str]:
    """The options given with ``--merge`` that a merge does not use."""
    return [f"--{f.name}" for f in dataclasses.fields(ModelOptions) if getattr(
        args, f.name, f.default) != f.default] + [flag for flag, value in (
            ("--out", args.out), ("--shard", args.shard), ("--series-filter", args.series_filter),
            ("--format", args.format != "file")) if value]


def run_merge(args, events: Events) -> int:
    """Merge the shard tables of ``args.input``; returns the exit status (0)."""
    ignored = not_for_merge(args)
    if ignored:
        raise HRINetError(f"--merge only merges the shards' tables in {args.input}; "
                          f"{', '.join(ignored)} do(es) not apply: leave them out")
    for shard in cohort.running_shards(Path(args.input)) if args.partial else []:
        print(f"hrinet: warning: shard {shard} is still running: its rows so far are merged")
    path = cohort.merge_results(Path(args.input), partial=args.partial)
    print(f"wrote {path}")
    events.emit("wrote", path=str(path))
    return 0
