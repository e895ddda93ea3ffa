"""``hrinet batch``: a whole cohort made isotropic, resumable, one bad case never stopping it,
shared out among the shards of a SLURM job array or a torchrun launch (docs/cluster.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from hrinet.cli.describe import PRECISION_HELP
from hrinet.cli.events import Events
from hrinet.core import cohort
from hrinet.core.atomic import remove_stale_partials
from hrinet.core.constants import PRECISIONS
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.io import read_volume, same_file, write_volume
from hrinet.methods import create_interpolator, default_method
from hrinet.methods.engine import check_memory, plan_upsampling, upsample_z


def add_batch_arguments(s) -> None:
    s.add_argument("input", help="a folder tree (every DICOM series and NRRD/NIfTI/MHA file in "
                   "it) or a CSV manifest with columns input,output[,series_uid]")
    s.add_argument("--out", help="folder for the results (mirrors the input tree) and "
                   "results.csv; no default: required unless --merge")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--factor", type=int, help="integer upsampling factor >= 2 (default: from "
                   "--spacing, else isotropic)")
    g.add_argument("--spacing", type=float, help="target slice spacing in mm (default: "
                   "isotropic, each case's in-plane spacing)")
    s.add_argument("--method", help="any interpolate method (default: hrinet)")
    s.add_argument("--weights", help="a .safetensors weights file for the learned method "
                   "(default: the shipped weights)")
    s.add_argument("--thickness", type=float, metavar="MM", help="slice thickness of every "
                   "input in mm (default 0: known slices kept bit-exact)")
    s.add_argument("--device", default="auto", help="auto (default), cpu or cuda; under "
                   "torchrun, LOCAL_RANK picks the GPU")
    s.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    s.add_argument("--series-filter", default="", metavar="TEXT", help="only DICOM series whose "
                   "description holds TEXT, any case (default: every series)")
    s.add_argument("--shard", metavar="I/N", help="process shard I of N (default: from "
                   "SLURM_ARRAY_TASK_ID/COUNT or torchrun's RANK/WORLD_SIZE, else 1/1)")
    s.add_argument("--merge", action="store_true", help="merge the shards' results tables in "
                   "INPUT (the --out folder of the shards) into results.csv and stop")


def _cases(args):
    source = Path(args.input)
    if not source.exists():
        raise HRINetError(f"{source} does not exist; check the path")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise HRINetError(f"{source} is a file; give a folder tree or a CSV manifest "
                              "(columns input,output), or use hrinet interpolate for one volume")
        return cohort.read_manifest(source)
    return cohort.find_cases(source, Path(args.out), args.series_filter)


def _read_case(case: cohort.Case):
    return read_volume(case.path, series_uid=case.series_uid or None)


def _device(args, local_rank: int) -> str:
    if args.device == "auto" and local_rank >= 0:
        try:
            import torch
        except ImportError:
            return "auto"
        if torch.cuda.is_available():
            return f"cuda:{local_rank % torch.cuda.device_count()}"
    return args.device


def run_batch(args) -> int:
    """Process every case of this shard; returns the exit status (1 if any case failed)."""
    if args.merge:
        path = cohort.merge_results(Path(args.input))
        print(f"wrote {path}")
        return 0
    if not args.out:
        raise HRINetError("give --out, the folder for the results")
    if args.shard:
        index, count = cohort.parse_shard(args.shard)
        local_rank = -1
    else:
        index, count, local_rank = cohort.shard_from_environment()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cases = [c for c in _cases(args) if cohort.shard_of(c, count) == index]
    table = out / cohort.results_name(index, count)
    rows = cohort.read_results(table)
    method = args.method or ("hrinet" if args.weights else default_method())
    interp = None
    events: Events = args.events
    failed = done = 0
    print(f"shard {index + 1}/{count}: {len(cases)} cases; results in {table}", file=sys.stderr)
    numbers = {case.identity: n for n, case in enumerate(cases, 1)}
    todo = [c for c in cases if not cohort.is_done(c, rows.get(c.identity))]
    skipped = len(cases) - len(todo)
    events.emit("progress", done=skipped, total=len(cases), unit="case")  # finished cases
    for k, (case, volume_of) in enumerate(cohort.read_ahead(todo, _read_case), 1):
        n, previous = numbers[case.identity], rows.get(case.identity)
        start = time.perf_counter()
        row = cohort.Result(case.input, case.series_uid, case.output, method)
        try:
            target = Path(case.output)
            if target.exists() and (previous is None or same_file(target, case.path)):
                raise HRINetError(f"{target} exists and is not an output of this batch; move it "
                                  "or choose another --out (nothing of yours is replaced)")
            volume = volume_of()  # read while the previous case was computed
            plan = plan_upsampling(volume, args.factor, args.spacing, method, args.thickness)
            check_memory(volume, plan, output_copies=2)
            if interp is None:  # loaded once, for the first case that gets this far
                interp = create_interpolator(method, device=_device(args, local_rank),
                                             weights=args.weights, precision=args.precision)
            result = upsample_z(volume, plan=plan, interpolator=interp)
            del volume
            Path(case.output).parent.mkdir(parents=True, exist_ok=True)
            remove_stale_partials(case.output)  # a killed earlier run's half-written file
            written = write_volume(result, case.output, overwrite=True)
            row.factor, row.thickness = plan.factor, f"{plan.thickness:g}"
            row.output_sha256, row.status = cohort.file_sha256(written), "ok"
            done += 1
        except Cancelled:
            raise  # the user's stop, not a bad case
        except HRINetError as exc:
            row.status, row.message = "failed", str(exc)
            failed += 1
        except MemoryError:
            row.status, row.message = "failed", "out of memory; use a smaller factor"
            failed += 1
        except Exception as exc:  # a bug on this case: reported, and the cohort goes on
            row.status, row.message = "failed", (f"internal error: {type(exc).__name__}: "
                                                 f"{exc} (report it)")
            failed += 1
        row.seconds = round(time.perf_counter() - start, 2)
        rows[case.identity] = row
        cohort.write_results(table, sorted(rows.values(), key=lambda r: (r.input,
                                                                           r.series_uid)))
        events.emit("progress", done=skipped + k, total=len(cases), unit="case")
        print(f"{n}/{len(cases)} {case.input}{' ' + case.series_uid if case.series_uid else ''}"
              f": {row.status}{' (' + row.message + ')' if row.message else ''}",
              file=sys.stderr, flush=True)
    print(f"shard {index + 1}/{count}: {done} done, {skipped} already done, {failed} failed; "
          f"wrote {table}")
    return 1 if failed else 0
