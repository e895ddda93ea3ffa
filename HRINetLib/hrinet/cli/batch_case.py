"""One case of ``hrinet batch``, start to end: read (ahead, while the previous case is
computed), checked against what is already at its output (a file this batch cannot show it
wrote is never replaced), planned as ``interpolate`` plans, interpolated, written atomically with
proof of ownership recorded before the file is in place, and its results row. A bad case is a
``failed`` row with the reason; it never stops the cohort (:mod:`hrinet.cli.batch`).
"""

from __future__ import annotations

import os
from pathlib import Path

from hrinet.cli.describe import model_words
from hrinet.cli.events import report_warnings
from hrinet.core import cohort
from hrinet.core.cohort.partials import remove_partials
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.io import atomic_write, folder_sha256, make_folder, read_volume, write_volume
from hrinet.core.io.paths import file_suffix
from hrinet.core.io.provenance.record import record as record_provenance
from hrinet.methods.engine import check_memory, upsample_z
from hrinet.methods.planning import already_at_target, already_at_words, plan_upsampling, \
    reach_warning


def read_case(case: cohort.Case):
    """The case's volume (read ahead, while the previous case is computed); None for a case
    listed only to be skipped; a problem found while listing raises it."""
    if case.problem:
        raise HRINetError(case.problem)
    if case.skip:
        return None
    return read_volume(case.path, series_uid=case.series_uid or None)


def wants_dicom(args) -> bool:
    """Whether each case is written as a derived DICOM series (a folder), not a volume file."""
    return getattr(args, "format", "file") == "dicom"


def at_target(volume, args) -> bool:
    """Nothing to do: a thin series at or finer than ``--spacing`` (or, with no target given,
    already about isotropic)."""
    if args.factor is not None:
        return False
    if args.spacing is not None:
        return already_at_target(volume, args.spacing)
    return already_at_target(volume, float(volume.spacing[2]))


def input_root(args) -> str:
    """What this batch was run on (its folder tree or manifest), recorded with every row: a
    results table in --out made from another input is refused, never mixed with this one."""
    return os.path.realpath(args.input)


def process_case(args, events, case, volume_of, method, options, ledger, rows, table,
                 state) -> cohort.Result:
    """One case, start to end; its row (``ok`` or ``failed`` with the reason)."""
    row = cohort.Result(case.input, case.series_uid, case.output, method, options=options,
                        input_root=input_root(args))
    try:
        if case.problem:
            raise HRINetError(case.problem)
        if case.skip:  # a scout, a dose report: listed, never interpolated
            row.status, row.message = "skipped", case.skip
            return row
        target = Path(case.output)
        if target.is_symlink():
            raise HRINetError(f"{target} is a symbolic link, which this batch did not write: "
                              "left alone, not replaced; remove it or choose another --out to "
                              "have this case made")
        if target.exists():
            mine = ledger.folder_wrote(case.output) if wants_dicom(args) else \
                None if target.is_dir() else ledger.wrote(case.output)
            if mine is None and ledger.recorded(case.output):
                # the row keeps the recorded sha256: every later run says the same
                row.output_sha256 = ledger.recorded_sha256(case.output, case.key)
                raise HRINetError(f"{target} was changed since this batch wrote it; move it "
                                  "aside to have it made again (nothing of yours is replaced)")
            if mine is None:
                raise HRINetError(f"{target} exists and is not an output of this batch (no "
                                  "results table in --out records it): left alone, not "
                                  "replaced; move it or choose another --out to have this case "
                                  "made")
            row.output_sha256 = mine  # still this batch's file, whatever happens below
        if wants_dicom(args) and not case.path.is_dir():
            raise HRINetError(f"--format dicom needs DICOM series as inputs (the new series "
                              f"copies their patient and study); {case.input} is a file")
        volume = volume_of()  # read while the previous case was computed
        if wants_dicom(args):
            from hrinet.core.io import check_derivable

            check_derivable(volume)
        warnings = list(volume.metadata.get("warnings", []))
        report_warnings(warnings, events)
        if at_target(volume, args):
            row.status, row.message = "skipped", already_at_words(volume)
            return row
        plan = plan_upsampling(volume, args.factor, args.spacing, method, args.thickness,
                               estimate_thickness=True)  # as interpolate: one input, one plan
        beyond = [w for w in [reach_warning(plan)] if w]  # beyond what was measured: said
        warnings += beyond
        report_warnings(beyond, events)
        check_memory(volume, plan, output_copies=2)
        model = model_words(state["interp"])
        events.emit("plan", factor=plan.factor, input_slices=plan.input_slices,
                    output_slices=plan.output_slices, method=plan.method,
                    description=f"{case.input}: {plan.describe()}"
                                f"{'; ' + model if model else ''}")  # as interpolate's
        make_folder(target.parent, "output")  # a file of the user's in the way: this case fails
        result = upsample_z(volume, plan=plan, interpolator=state["interp"])
        del volume
        remove_partials([target])  # a killed earlier run's half-written file
        row.factor, row.thickness = plan.factor, f"{plan.thickness:g}"
        record_provenance(result, plan=plan, interpolator=state["interp"], input_path=case.path)

        def claim(digest: str) -> None:  # proof of ownership before the output is in place
            row.output_sha256, row.status = digest, "writing"
            rows[case.key] = row
            ledger.record(row)
            cohort.write_results(table, rows.values())

        if wants_dicom(args):
            from hrinet.core.io import write_derived_series  # pydicom only when run

            write_derived_series(result, case.path, target, overwrite=True,
                                 before_move=lambda tmp: claim(folder_sha256(tmp)))
        else:
            with atomic_write(target, overwrite=True, suffix=file_suffix(target)) as tmp:
                write_volume(result, tmp, overwrite=True, what=str(target))
                claim(cohort.file_sha256(tmp))
        row.status, row.message = "ok", "; ".join(f"warning: {w}" for w in warnings)
        ledger.supersede(row, table, rows)
        events.emit("wrote", path=str(target))
        state["done"] += 1
    except Cancelled:
        raise  # the user's stop: not a bad case
    except HRINetError as exc:
        row.status, row.message = "failed", str(exc)
    except MemoryError:
        row.status, row.message = "failed", "out of memory; use a smaller factor"
    except Exception as exc:  # a bug on this case: reported, and the cohort goes on
        row.status, row.message = "failed", (f"internal error: {type(exc).__name__}: "
                                             f"{exc} (report it)")
    if row.status == "failed":
        state["failed"] += 1
    return row
