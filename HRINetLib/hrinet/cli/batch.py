"""``hrinet batch``: a whole cohort made isotropic, resumable, one bad case never stopping it,
shared out among the shards of a SLURM job array or a torchrun launch (docs/cluster.md).

It never replaces a file it cannot show it wrote (:mod:`hrinet.core.cohort.results`), refuses
before any work two cases that would write one file and options no case can run with (one line,
exit 2), and holds a lock on its shard's table so a second run on the same ``--out`` cannot race
it. Paths are recorded so that a project moved elsewhere, or an ``--out`` given through a link,
is the same batch; a rerun removes the half-written files a killed run left (only those it can
prove are its own: :mod:`hrinet.core.cohort.partials`).

``--out`` may lie inside the input tree: its own outputs there are never inputs, and a user's
volume there is a ``skipped`` row saying why (and on stderr), never silently dropped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import List

from hrinet.cli.batch_case import input_root, process_case, read_case, wants_dicom
from hrinet.cli.batch_merge import run_merge
from hrinet.cli.describe import model_warnings, unused_options
from hrinet.cli.events import Events, report_warnings
from hrinet.cli.signals import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated
from hrinet.core import cohort
from hrinet.core.cohort.partials import remove_left_by_killed_runs
from hrinet.core.cohort.results import options_text
from hrinet.core.constants import CLASSICAL_METHODS
from hrinet.core.errors import HRINetError
from hrinet.core.io import WRITE_EXTENSIONS, add_format_argument, make_folder
from hrinet.core.io.paths import file_suffix
from hrinet.core.itk import python_stderr_kept
from hrinet.core.lock import exclusive_lock
from hrinet.core.model_options import add_model_arguments
from hrinet.methods import available_methods, create_interpolator, default_method
from hrinet.methods.engine import check_chunk_budget
from hrinet.methods.planning import MAX_THICKNESS_MM, check_factor
from hrinet.methods.registry import LEARNED_INSTALL, learned_available


def add_batch_arguments(s) -> None:
    s.add_argument("input", help="a folder tree (every DICOM series and NRRD/NIfTI/MHA file in "
                   "it) or a CSV manifest with columns input,output[,series_uid]")
    s.add_argument("--out", help="folder for the results (mirrors the input tree) and "
                   "results.csv; no default: required unless --merge. Inside the input tree, "
                   "the batch's own outputs are never inputs and a volume of yours there is "
                   "listed as skipped (move it out to have it processed)")
    add_model_arguments(s, ("factor", "spacing", "method", "weights", "thickness", "device",
                            "precision", "quality"))
    s.add_argument("--series-filter", default="", metavar="TEXT", help="only DICOM series whose "
                   "description holds TEXT, any case (default: every series)")
    s.add_argument("--shard", metavar="I/N", help="process shard I of N (default: from "
                   "SLURM_ARRAY_TASK_ID/COUNT or torchrun's RANK/WORLD_SIZE, else 1/1)")
    s.add_argument("--merge", action="store_true", help="merge the shards' results tables in "
                   "INPUT (the --out folder of the shards) into results.csv and stop")
    s.add_argument("--partial", action="store_true", help="with --merge: merge even when a "
                   "shard's table is missing (default: refuse, naming it)")
    add_format_argument(s)  # dicom: each case's output is a folder (its name without .nrrd)


def _out_folder(args) -> Path:
    """``--out``, checked (a folder or none yet, neither the input tree nor above it) and
    resolved: given through a link or by another spelling, it is the same batch."""
    if not args.out:
        raise HRINetError("give --out, the folder for the results")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise HRINetError(f"--out {out} is a file; give a folder for the outputs and "
                          "results.csv")
    source = Path(args.input)
    if source.is_dir():
        here, there = source.resolve(), out.resolve()
        if there == here or there in here.parents:
            raise HRINetError(f"--out {out} is the input folder or holds it; the outputs would "
                              "mix with the inputs: choose a folder outside the input tree")
    return Path(os.path.realpath(out))


def _refuse_impossible_options(args, method: str) -> None:
    """Options (and an ``HRINET_CHUNK_MB``) no case can run with, refused once before any work
    (one line, exit 2) instead of failing every case one by one."""
    check_chunk_budget()
    if method not in available_methods():
        raise HRINetError(f"--method {method} is not a method; choose one of "
                          f"{', '.join(available_methods())}")
    if args.factor is not None:
        check_factor(args.factor, "--factor")  # 2 to MAX_FACTOR, as every plan checks it
    if args.spacing is not None and not (math.isfinite(args.spacing) and args.spacing > 0):
        raise HRINetError(f"--spacing {args.spacing:g} is not a positive number of mm; give the "
                          "target slice spacing, e.g. --spacing 1.0")
    if args.thickness is not None and not (math.isfinite(args.thickness)
                                           and 0 <= args.thickness <= MAX_THICKNESS_MM):
        raise HRINetError(f"--thickness {args.thickness:g} is not a slice thickness (0 to "
                          f"{MAX_THICKNESS_MM:g} mm); give 0 (thin slices) or the series' slice "
                          "thickness in mm, e.g. 5")
    weights = Path(args.weights or "")
    if args.weights and (not weights.is_file() or file_suffix(weights) != ".safetensors"):
        what = "is a folder" if weights.is_dir() else "does not exist" if not \
            weights.exists() else "is not a .safetensors file"
        raise HRINetError(f"--weights {args.weights} {what}; give a .safetensors weights file "
                          "with its .json sidecar (hrinet models lists the installed ones)")
    if method not in CLASSICAL_METHODS and not learned_available():
        raise HRINetError(f"method {method} needs PyTorch, which is not installed; install the "
                          f"learned extra ({LEARNED_INSTALL}), or use "
                          f"{', '.join(CLASSICAL_METHODS)}")


def _load(args, method: str, local_rank: int):
    """The interpolator every case runs, loaded before any work and before --out is made: a
    model that cannot run with these options (``--precision fp16`` off a CUDA GPU,
    ``--device cuda`` without one, weights that are no HRINet weights file) stops the batch
    once, with one line, instead of failing each case."""
    try:
        return create_interpolator(method, device=_device(args, local_rank),
                                   weights=args.weights, precision=args.precision,
                                   quality=args.quality)
    except HRINetError as exc:  # the options, not a case: no case can run
        raise HRINetError(f"the {method} model cannot be loaded, so no case can run: "
                          f"{exc}") from None


def _cases(args, out: Path) -> List[cohort.Case]:
    source = Path(args.input)
    if not source.exists():
        raise HRINetError(f"{source} does not exist; check the path")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise HRINetError(f"{source} is a file; give a folder tree or a CSV manifest "
                              "(columns input,output), or use hrinet interpolate for one volume")
        # a folder per case (--format dicom) has no extension to check
        return cohort.read_manifest(source, None if wants_dicom(args) else WRITE_EXTENSIONS)
    written = None
    if out.is_dir() and source.resolve() in out.parents:  # --out inside the tree
        written = cohort.Ledger(out).names  # what a table records: never an input
    return cohort.find_cases(source, out, args.series_filter, written,
                             batch_table=cohort.is_results_table)


def _device(args, local_rank: int) -> str:
    if args.device == "auto" and local_rank >= 0:
        try:
            import torch
        except ImportError:
            return "auto"
        if torch.cuda.is_available():
            return f"cuda:{local_rank % torch.cuda.device_count()}"
    return args.device


def _options(args, method: str) -> str:
    """What shapes every output of this run: a change redoes the cases done with other ones."""
    learned = method not in CLASSICAL_METHODS
    weights = ""
    if learned and args.weights:
        path = Path(args.weights)
        weights = cohort.file_sha256(path)[:16] if path.is_file() else str(path)
    shaping = {"method": method, "factor": args.factor, "spacing": args.spacing,
               "thickness": args.thickness, "weights": weights,
               "precision": args.precision if learned else ""}
    if learned and args.quality != "standard":  # only then, as the format below
        shaping["quality"] = args.quality
    if wants_dicom(args):  # only then: the options of earlier file runs stay as they were
        shaping["format"] = "dicom"
    return options_text(shaping)


def run_batch(args) -> int:
    """Process every case of this shard; returns the exit status (1 if any case failed)."""
    events: Events = args.events
    if args.merge:
        return run_merge(args, events)
    if args.partial:
        raise HRINetError("--partial goes with --merge")
    out = _out_folder(args)
    method = _method(args)
    _refuse_impossible_options(args, method)
    if args.shard:
        index, count = cohort.parse_shard(args.shard)
        local_rank = -1
    else:
        index, count, local_rank = cohort.shard_from_environment()
    every = _cases(args, out)
    if wants_dicom(args):
        every = [dataclasses.replace(c, output=cohort.folder_output(c.output)) for c in every]
    cohort.check_outputs(every)  # before any work, over every shard's cases
    cases = [c for c in every if cohort.shard_of(c, count) == index]
    interp = _load(args, method, local_rank)
    report_warnings(unused_options(method, args) + model_warnings(interp), events)
    make_folder(out)
    table = out / cohort.results_name(index, count)
    with exclusive_lock(out / f".{table.name}.lock", f"a batch is running on {out} with the "
                        "same shard"):
        cohort.shards.check_other_layouts(out, table)
        with python_stderr_kept():  # C libraries muted while reading ahead never hide a line
            return _run(args, events, cases, every, table, (index, count), interp)


def _method(args) -> str:
    return args.method or ("hrinet" if args.weights else default_method())


def _shown(text: str) -> str:
    """A name on one console line (a manifest's name may hold a line break)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _run(args, events: Events, cases, every, table: Path, shard, interp) -> int:
    index, count = shard
    method = _method(args)
    options = _options(args, method)
    ledger = cohort.Ledger(table.parent)
    ledger.check_input(input_root(args))  # before anything is changed
    rows = cohort.read_results(table)
    gone = remove_left_by_killed_runs(table, cases, every, ledger, series=wants_dicom(args))
    if gone:
        print(f"removed {gone} half-written file(s) an interrupted run of this batch left",
              file=sys.stderr)
    todo = []
    stamps = {case.key: cohort.input_stamp(case) for case in cases}
    for case in cases:
        previous = ledger.rows.get(case.key)
        if cohort.is_done(case, previous, options, stamps[case.key], folder=wants_dicom(args)):
            previous.input_root = input_root(args)  # (a table of an earlier version: none)
            rows[case.key] = previous  # done under another shard layout: carried over
        else:
            todo.append(case)
    print(f"shard {index + 1}/{count}: {len(cases)} cases; results in {table}", file=sys.stderr)
    numbers = {case.key: n for n, case in enumerate(cases, 1)}
    skipped = len(cases) - len(todo)
    cohort.write_results(table, rows.values())  # a shard with no case says so to --merge
    events.emit("progress", done=skipped, total=len(cases), unit="case")  # finished cases
    state = {"interp": interp, "done": 0, "failed": 0}
    try:
        for k, (case, volume_of) in enumerate(cohort.read_ahead(todo, read_case), 1):
            start = time.perf_counter()
            row = process_case(args, events, case, volume_of, method, options, ledger, rows,
                               table, state)
            row.seconds = round(time.perf_counter() - start, 2)
            row.input_stamp = stamps[case.key]
            rows[case.key] = row
            ledger.record(row)
            cohort.write_results(table, rows.values())
            events.emit("case", number=numbers[case.key], total=len(cases), input=case.input,
                        series_uid=case.series_uid, output=case.output, status=row.status,
                        message=row.message)
            events.emit("progress", done=skipped + k, total=len(cases), unit="case")
            print(f"{numbers[case.key]}/{len(cases)} {_shown(case.input)}"
                  f"{' ' + case.series_uid if case.series_uid else ''}: {row.status}"
                  f"{' (' + _shown(row.message) + ')' if row.message else ''}", file=sys.stderr,
                  flush=True)
    except (Terminated, KeyboardInterrupt) as exc:
        what = str(exc) if isinstance(exc, Terminated) else "Ctrl-C"
        print(f"hrinet: stopped ({what}); {state['done']} case(s) written this run are kept and "
              f"recorded in {table}, the case in flight was not written; run the same command "
              "again to continue", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    print(f"shard {index + 1}/{count}: {state['done']} done, {skipped} already done, "
          f"{state['failed']} failed; wrote {table}")
    events.emit("wrote", path=str(table))
    return 1 if state["failed"] else 0
