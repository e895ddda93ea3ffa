"""The ``hrinet`` command line: interpolate, evaluate, info, train, adapt, batch, models, export.

Every user mistake ends with a non-zero exit and one line ``hrinet: error: ...`` saying what is
wrong and what to do; no traceback (``--debug`` shows one for bug reports).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

from hrinet import __version__
from hrinet.cli.arguments import empty_paths
from hrinet.cli.batch import add_batch_arguments, run_batch
from hrinet.cli.describe import model_warnings, model_words, unused_options
from hrinet.cli.evaluate import cmd_evaluate
from hrinet.cli.info import cmd_info
from hrinet.cli.events import Events, report_warnings
from hrinet.cli.models import add_models_arguments, cmd_models
from hrinet.cli.progress import progress_bar as _tqdm
from hrinet.cli.signals import (EXIT_INTERRUPTED, EXIT_TERMINATED, SigtermFlag, Terminated,
                                cancelled_status, restore_handlers, stop_on_sigterm)
from hrinet.core.io.atomic import remove_stale_partials
from hrinet.core.constants import CLASSICAL_METHODS
from hrinet.core.model_options import add_model_arguments
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.io import add_format_argument, same_file, volume_name
from hrinet.core.preview import check_preview_path, write_preview
from hrinet.core.io.provenance.record import record as record_provenance
from hrinet.core.io.provenance.slices import report_worst_slices
from hrinet.core.runtime import tune_allocator
from hrinet.methods import create_interpolator, default_method
from hrinet.methods.engine import check_memory, upsample_z
from hrinet.methods.planning import (already_at_target, already_at_words, plan_upsampling,
                                     reach_warning)
from hrinet.methods.confidence import check_scorable, confidence_map
from hrinet.methods.registry import check_model_options, learned_available
from hrinet.training.options import add_train_arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        self.exit(2, f"hrinet: error: {message}; see '{self.prog} --help'\n")


def _int_list(text: str) -> List[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, "
                                         "e.g. 2,4,6")
    return values


def cmd_interpolate(args) -> int:
    from hrinet.core.io import (check_derivable, check_dicom_output, check_output_path,  # pydicom
                                read_volume, write_derived_series, write_volume)  # when run
    events = args.events
    dicom = args.format == "dicom"  # a derived DICOM series in the folder args.out
    if dicom:
        check_dicom_output(args.out, args.input, overwrite=args.overwrite)
    else:
        check_output_path(args.out, [args.input], overwrite=args.overwrite)
    if args.preview:
        check_preview_path(args.preview, overwrite=args.overwrite)
    if args.confidence:  # before any work: it may not be the input or the output
        if same_file(args.confidence, args.out):
            raise HRINetError(f"--confidence {args.confidence} is the output file; give the "
                              "confidence map a name of its own")
        check_output_path(args.confidence, [args.input], overwrite=args.overwrite)
    method = args.method or ("hrinet" if args.weights else default_method())
    if not args.method and not args.weights and method != "hrinet" and not learned_available():
        print("hrinet: note: PyTorch is not installed, so the method is cubic; install the "
              "learned extra (pip install 'hrinet[learned]') for the shipped model",
              file=sys.stderr)
    classical = method in CLASSICAL_METHODS
    for text in unused_options(method, args):
        print(f"hrinet: warning: {text}", file=sys.stderr)
    if not classical:  # the model's options before reading anything or making any file
        check_model_options(args.weights, args.device, args.precision)
    volume = read_volume(args.input, series_uid=args.series)
    report_warnings(volume.metadata.get("warnings", []), events)
    if dicom:
        check_derivable(volume)
    if args.confidence:  # an input hrinet made has no acquired slices to score against
        check_scorable(volume)
    if already_at_target(volume, args.spacing, args.factor):  # nothing written
        print(f"{volume_name(args.input)}: {already_at_words(volume)}; nothing to do (give "
              "--factor to interpolate anyway)")
        return 0
    plan = plan_upsampling(volume, args.factor, args.spacing, method, args.thickness,
                           estimate_thickness=True)  # a thickness the header lacks: estimated
    # writing makes one copy of the output; a confidence map (float32) and its copy up to 4 more
    check_memory(volume, plan, output_copies=2 + (4 if args.confidence else 0))
    start = time.perf_counter()
    interp = create_interpolator(method, device=args.device, weights=args.weights,
                                 precision=args.precision, quality=args.quality)
    model = model_words(interp)
    description = f"{volume_name(args.input)}: {plan.describe()}{'; ' + model if model else ''}"
    print(description, file=sys.stderr)
    report_warnings(model_warnings(interp) + [w for w in [reach_warning(plan)] if w], events)
    events.emit("plan", factor=plan.factor, input_slices=plan.input_slices,
                output_slices=plan.output_slices, method=plan.method, description=description)
    bar, update = _tqdm(plan.input_slices - 1, "interpolating")

    def progress(done: int, total: int) -> None:
        update(done, total)
        events.emit("progress", done=done, total=total, unit="pair")

    try:
        result = upsample_z(volume, plan=plan, interpolator=interp, progress=progress)
    finally:
        bar.close()
    report_warnings(result.metadata.get("runtime_warnings", []), events)
    if args.confidence:  # also fills result.metadata["slice_error_hu"]
        conf = confidence_map(volume, result, plan.factor)
    record_provenance(result, plan=plan, interpolator=interp, input_path=args.input)
    out = (write_derived_series(result, args.input, args.out, overwrite=args.overwrite) if dicom
           else write_volume(result, args.out, overwrite=args.overwrite))
    remove_stale_partials(out)  # hidden leftovers of an earlier run that was killed
    x, y, z = result.shape_xyz
    print(f"wrote {out} ({x} x {y} x {z}, {time.perf_counter() - start:.1f} s)")
    events.emit("wrote", path=str(out))
    if args.preview:
        png = write_preview(result, args.preview, overwrite=args.overwrite,
                            caption=f"{plan.method} x{plan.factor}: {Path(args.input).name}")
        print(f"wrote {png} (axial, coronal and sagittal through the middle)")
        events.emit("wrote", path=str(png))
    if args.confidence:
        conf_out = write_volume(conf, args.confidence, overwrite=args.overwrite)
        print(f"wrote {conf_out} (expected absolute error in HU per voxel; 0 on acquired "
              "slices kept)")
        events.emit("wrote", path=str(conf_out))
    report_worst_slices(result.metadata, events)  # where the synthesised content is least sure
    return 0


def cmd_train(args) -> int:
    from hrinet.cli.train import train_from_cli

    return train_from_cli(args)


def cmd_adapt(args) -> int:
    from hrinet.cli.train import stop_requested
    from hrinet.core.io import read_volume
    from hrinet.training.adapt import adapt

    volume = read_volume(args.input, series_uid=args.series)
    report_warnings(volume.metadata.get("warnings", []), args.events)
    sigterm = SigtermFlag()
    bar, update = _tqdm(args.iterations, "adapting", "step")

    def progress(step: int, total: int, _logs) -> None:
        update(step, total)
        args.events.emit("progress", done=step, total=total, unit="step")

    try:
        result = adapt(volume, args.out, weights=args.weights, iterations=args.iterations,
                       lr=args.lr, crop=args.crop, device=args.device,
                       case=volume_name(args.input), progress=progress,
                       cancel=lambda: sigterm() or stop_requested(args.out), log=None)
    finally:
        bar.close()
    print(result.describe())
    print(f"use: hrinet interpolate {args.input} OUT --weights {result.weights}")
    args.events.emit("wrote", path=str(result.weights))
    return 0


def cmd_export(args) -> int:
    from hrinet.training.lineage import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    for written in (out, out.with_suffix(".json")):
        args.events.emit("wrote", path=str(written))
    return 0


def default_evaluation_methods() -> List[str]:
    """The classical methods, and the shipped model where it can run (torch installed)."""
    learned = default_method() == "hrinet"
    return list(CLASSICAL_METHODS) + (["hrinet"] if learned else [])


SERIES_HELP = ("a DICOM folder's series to read: its number or UID as listed by hrinet info "
               "(default: the largest)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hrinet", description="Learned slice interpolation for thick-slice CT.")
    p.add_argument("--debug", action="store_true", help="show tracebacks (for bug reports)")
    p.add_argument("--version", action="version", version=f"hrinet {__version__}")
    p.add_argument("--progress", choices=("human", "jsonl"), default="human",
                   help="jsonl: machine-readable events on stdout, one JSON object a line (plan, "
                   "progress, case, warning, wrote, error), every other line on stderr; for "
                   "programs")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, required=True)

    s = sub.add_parser("interpolate", help="upsample a volume along z")
    s.add_argument("input", help="volume file (NRRD, NIfTI, MHA) or DICOM series folder")
    s.add_argument("out", help="output file (.nrrd recommended)")
    add_model_arguments(s, ("factor", "spacing", "method", "weights", "device", "thickness",
                            "precision", "quality"))
    s.add_argument("--preview", metavar="PNG", help="also write a PNG of the result's middle "
                   "axial, coronal and sagittal reformats, to look at it without a viewer "
                   "(default: none)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output")
    s.add_argument("--confidence", metavar="FILE", help="also write a confidence map: per "
                   "voxel the expected absolute error in HU of the interpolated value (acquired "
                   "slices 0), calibrated on the corpus's validation split (default: none)")
    s.add_argument("--series", metavar="N|UID", help=SERIES_HELP)
    add_format_argument(s)
    s.set_defaults(func=cmd_interpolate)

    s = sub.add_parser("evaluate", help="decimate thin volumes, upsample back, score")
    s.add_argument("volumes", nargs="+", help="thin volumes (files or DICOM folders)")
    s.add_argument("--factors", type=_int_list, default=[2, 4, 6],
                   help="factors to decimate by and upsample back (default 2,4,6)")
    s.add_argument("--methods", default=",".join(default_evaluation_methods()),
                   help="comma-separated methods to score (default: "
                   f"{','.join(default_evaluation_methods())})")
    s.add_argument("--weights", action="append", metavar="METHOD=FILE",
                   help="weights for a learned method, e.g. hrinet=model.safetensors (default: "
                   "each method's shipped weights)")
    add_model_arguments(s, ("device", "precision", "quality"))
    s.add_argument("--protocol", default="decimate", choices=("decimate", "slab"),
                   help="decimate: keep every k-th thin slice, score the new ones; slab: "
                   "simulate k-slice-thick slabs, score every output slice (README 'Results'; "
                   "default decimate)")
    s.add_argument("--series", metavar="N|UID", help="for each DICOM folder among the "
                   "volumes, the series to read: its number or UID as listed by hrinet info "
                   "(default: the largest)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in "
                   "--out (its tables and figures, once this one is complete)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("info", help="print a volume's geometry")
    s.add_argument("input", help="a volume file (NRRD, NIfTI, MHA/MHD), a DICOM series or study "
                   "folder, or a DICOMDIR: its geometry, gaps, tilt, thickness, padding, every "
                   "problem, what interpolate would do, and an output's provenance")
    s.add_argument("--series", metavar="N|UID", help=SERIES_HELP)
    s.set_defaults(func=cmd_info)


    s = sub.add_parser("train", help="train or fine-tune a model")
    add_train_arguments(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("adapt", help="fine-tune the model on one thick case, kept only if it "
                       "wins on held-out slices of that case")
    s.add_argument("input", help="the thick volume (file or DICOM folder)")
    s.add_argument("--out", required=True, help="folder for adapt.json and the adapted weights")
    s.add_argument("--series", metavar="N|UID", help=SERIES_HELP)
    s.add_argument("--weights", help="weights to start from (default: the shipped model)")
    s.add_argument("--iterations", type=int, default=200, help="fine-tuning steps (default 200)")
    s.add_argument("--lr", type=float, default=3e-5, help="learning rate (default 3e-5)")
    s.add_argument("--crop", type=int, default=128, help="training crop size (multiple of 64; "
                   "default 128, at most the volume's in-plane size)")
    add_model_arguments(s, ("device",))
    s.set_defaults(func=cmd_adapt)

    s = sub.add_parser("batch", help="make a cohort isotropic: every series and volume of a "
                       "folder tree or a manifest, resumable, sharded on SLURM or torchrun")
    add_batch_arguments(s)
    s.set_defaults(func=run_batch)

    s = sub.add_parser("models", help="list the models (the default, ours, the paper "
                       "variants for research) with their measured quality, installed or not; "
                       "download one with --get")
    add_models_arguments(s)
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("export", help="export a training checkpoint to safetensors + JSON")
    s.add_argument("checkpoint", help="a training run's checkpoint.safetensors, "
                   "read without pickle")
    s.add_argument("out", help="output .safetensors file (its .json sidecar is written beside it)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output")
    s.set_defaults(func=cmd_export)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``hrinet`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    empty = empty_paths(args)
    if empty:
        parser.error(f"an empty value was given for {empty} (an unset shell variable?); give "
                     "it, or leave the option out: an empty path would mean the current folder")
    args.events = Events(args.progress == "jsonl", stream=sys.stdout)
    if _runs_a_network(args):
        tune_allocator()
    previous = stop_on_sigterm()
    stdout = sys.stdout
    try:
        if args.events.enabled:  # stdout carries events only: every line for people to stderr
            sys.stdout = sys.stderr
        return args.func(args)
    except Terminated as exc:
        print(f"hrinet: stopped ({exc}); nothing was written", file=sys.stderr)
        return EXIT_TERMINATED
    except Cancelled as exc:
        print(f"hrinet: {one_line(exc)}", file=sys.stderr)
        return cancelled_status()
    except HRINetError as exc:
        if args.debug:
            raise
        line = one_line(exc)
        print(f"hrinet: error: {line}", file=sys.stderr)
        args.events.emit("error", message=line)
        return 2
    except KeyboardInterrupt:
        print("hrinet: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`hrinet info x | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())  # no second one at exit
        return 141  # 128 + SIGPIPE, as other tools end
    except MemoryError:
        print("hrinet: error: out of memory; use a smaller --factor, a machine with more memory, "
              "or crop the volume", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line for the user, details with --debug
        if args.debug:
            raise
        line = (f"hrinet: internal error: {type(exc).__name__}: {one_line(exc)} (rerun with "
                "--debug and report it)")
        print(line, file=sys.stderr)
        args.events.emit("error", message=line.replace("hrinet: ", "", 1))
        return 1
    finally:
        sys.stdout = stdout
        restore_handlers(previous)


def one_line(exc: BaseException) -> str:
    """An error as one line: a line break in it (a path may hold one) is written as \\n."""
    return str(exc).replace("\r", "\\r").replace("\n", "\\n")


def _runs_a_network(args) -> bool:
    """Whether the command runs a learned model: the allocator setting pays there (system time
    25% -> 1% at 512^2) but costs the classical cubic path about 20% (``make bench``)."""
    if args.command in ("train", "adapt"):
        return True
    if args.command in ("interpolate", "batch"):
        return (args.method or "hrinet") not in CLASSICAL_METHODS  # --weights alone: hrinet
    if args.command == "evaluate":
        return any(m.strip() not in CLASSICAL_METHODS for m in args.methods.split(","))
    return False


if __name__ == "__main__":
    sys.exit(main())
