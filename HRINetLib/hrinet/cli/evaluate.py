"""``hrinet evaluate``: thin volumes decimated (or made slab-thick), upsampled back by each
method and scored; tables and figures into a folder.

The tables and figures are written into a hidden folder beside ``--out`` and moved into it only
when all of them are complete, so an evaluation that fails or is stopped leaves an earlier one in
``--out`` whole. ``provenance.json`` records every file the evaluation wrote with its sha256:
``--overwrite`` replaces, and removes, only such files (unchanged since), never the user's.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from hrinet import __version__
from hrinet.cli.describe import model_warnings, model_words
from hrinet.cli.events import report_warnings
from hrinet.cli.progress import progress_bar as _tqdm
from hrinet.cli.signals import EXIT_INTERRUPTED, EXIT_TERMINATED
from hrinet.core.io.atomic import file_sha256, write_text
from hrinet.core.constants import CLASSICAL_METHODS
from hrinet.core.errors import HRINetError, first_line
from hrinet.core.io.provenance.record import made_by_hrinet
from hrinet.core.io import volume_name
from hrinet.core.volume import voxel_sha256
from hrinet.evaluation.evaluate import (
    check_factor,
    evaluate_volume,
    figure_strip,
    markdown_table,
    write_csv,
)
from hrinet.methods.registry import available_methods, create_interpolator


def _weights_options(items) -> dict:
    """``--weights METHOD=FILE`` (repeatable) as a dict; one-line errors for other forms."""
    weights = {}
    for item in items or []:
        method, sep, path = item.partition("=")
        if not sep or not method.strip() or not path.strip():
            raise HRINetError(f"--weights {item!r} needs the form METHOD=FILE, e.g. "
                              "--weights hrinet=model.safetensors")
        weights[method.strip()] = path.strip()
    return weights


#: The files an evaluation writes besides its figures.
OUR_TABLES = ("metrics.csv", "metrics.md", "sharpness.csv", "provenance.json")
#: The record of an evaluation, and of the files it wrote (``outputs``: name -> sha256).
PROVENANCE = "provenance.json"


def figure_name(volume: str, k: int) -> str:
    """The file name of the figure of ``volume`` at factor ``k``."""
    return f"figure-{volume}-x{k}.png"


def earlier_outputs(out: Path) -> Dict[str, Optional[str]]:
    """The files an earlier evaluation in ``out`` wrote, ``{name: sha256}``, from its
    ``provenance.json`` (a record from before the files were listed names its tables and the
    figures of its volumes and factors, with no sha256). Empty where ``out`` holds no record of
    an evaluation."""
    try:
        record = json.loads((out / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or not {"code_version", "protocol"} <= set(record):
        return {}
    outputs = record.get("outputs")
    if isinstance(outputs, dict):
        files = {str(k): v for k, v in outputs.items() if isinstance(v, str)}
    else:
        try:
            files = dict.fromkeys([figure_name(v["name"], int(k)) for v in record["volumes"]
                                   for k in record["factors"]] + list(OUR_TABLES[:-1]))
        except (KeyError, TypeError, ValueError):
            files = {}
    files[PROVENANCE] = None  # the record itself: read as one just now
    return {name: digest for name, digest in files.items()
            if name == Path(name).name and not name.startswith(".")}


def _is_earlier_output(path: Path, earlier: Dict[str, Optional[str]]) -> bool:
    """Whether ``path`` is a file the earlier evaluation wrote and nobody changed since."""
    if path.name not in earlier or path.is_symlink() or not path.is_file():
        return False
    return earlier[path.name] is None or file_sha256(path) == earlier[path.name]


def check_out_folder(out: Path, planned: List[str], overwrite: bool) -> Dict[str, Optional[str]]:
    """Refuse, before any work, an ``out`` where this evaluation would replace or remove a file
    that an earlier evaluation did not write (or that was changed since), or an earlier
    evaluation without ``overwrite``. Returns the earlier evaluation's files (to replace)."""
    if out.exists() and not out.is_dir():
        raise HRINetError(f"--out {out} is a file; give a folder for the tables and figures")
    if not out.is_dir():
        return {}
    earlier = earlier_outputs(out)
    touched = [n for n in dict.fromkeys(planned + sorted(earlier))
               if (out / n).exists() or (out / n).is_symlink()]
    for name in touched:
        if not _is_earlier_output(out / name, earlier):
            how = "was changed since hrinet evaluate wrote it" if name in earlier and \
                name != PROVENANCE else "which hrinet evaluate did not write"
            raise HRINetError(f"--out {out} holds {name}, {how}, and this evaluation would "
                              "replace it; move it away or choose another folder")
    if touched and not overwrite:
        raise HRINetError(f"--out {out} holds an earlier evaluation ({touched[0]}...); replace it "
                          "with --overwrite (its tables and figures are replaced once this one is "
                          "complete) or choose another folder")
    return {n: earlier[n] for n in touched}


def _work_folder(out: Path) -> Path:
    """A new hidden folder to write the evaluation into: beside ``out`` (on its file system),
    else inside it."""
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if not out.exists() or os.stat(out).st_dev == os.stat(parent).st_dev:
            return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".evaluate.partial",
                                         dir=parent))
    except OSError:
        pass
    try:
        out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".evaluate.", suffix=".partial", dir=out))
    except OSError as exc:
        raise HRINetError(f"cannot write in --out {out} ({first_line(exc)}); check that its "
                          "folder exists and is writable") from None


#: Signals that stop the command, held back while the results are moved into place.
_HELD = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextmanager
def _held_signals() -> Iterator[List[str]]:
    """Hold Ctrl-C, SIGTERM and SIGHUP back (on the main thread) for the moment the finished
    results are moved into place, so that a stop cannot leave half the new files beside half
    the old; yields the list of the signals that came meanwhile."""
    came: List[str] = []
    previous = {}
    try:
        for sig in _HELD:
            previous[sig] = signal.signal(sig, lambda n, _f: came.append(signal.Signals(n).name))
    except ValueError:  # not the main thread: no handler can be set there
        pass
    try:
        yield came
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _move_into_place(work: Path, out: Path, earlier: List[str]) -> None:
    """Move every file of ``work`` into ``out`` (the record last), then remove those of the
    ``earlier`` evaluation's files (checked as its own before) that this one did not write."""
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in work.iterdir() if p.name != PROVENANCE) + [PROVENANCE]
    for name in names:
        try:
            os.replace(work / name, out / name)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise HRINetError(f"cannot move {name} into --out {out} "
                                  f"({first_line(exc)})") from None
            shutil.copy2(work / name, out / f".{name}.partial")
            os.replace(out / f".{name}.partial", out / name)
    for name in earlier:
        if name not in names:
            (out / name).unlink(missing_ok=True)


def cmd_evaluate(args) -> int:
    from hrinet.core.io import read_volume

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise HRINetError(f"--out {out} is a file; give a folder for the tables and figures")
    methods = list(dict.fromkeys(m.strip() for m in args.methods.split(",") if m.strip()))
    if not methods:
        raise HRINetError("--methods names no method; give one or more, e.g. linear,cubic,hrinet")
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise HRINetError(f"unknown method {unknown[0]!r} in --methods; choose from "
                          f"{', '.join(available_methods())}")
    factors = list(dict.fromkeys(args.factors))  # a factor given twice is scored once
    weights = _weights_options(args.weights)
    for m in weights:
        if m not in methods:
            raise HRINetError(f"--weights names method {m!r}, which is not in --methods "
                              f"({', '.join(methods)}); add it or fix the name")
    for k in factors:
        if k < 2:
            raise HRINetError(f"factor {k} in --factors is not >= 2")
    inputs = []  # read (and checked) before anything is written
    for path in args.volumes:
        volume = read_volume(path, series_uid=args.series)
        earlier = made_by_hrinet(volume)
        if earlier:  # its synthesised slices would be scored as if acquired
            raise HRINetError(
                f"{path} was itself interpolated by hrinet ({earlier.get('synthesised_count', '?')}"
                f" of {earlier.get('output_slices', '?')} slices synthesised), so it is no ground "
                "truth; evaluate on the series it was made from")
        report_warnings(volume.metadata.get("warnings", []), args.events)
        name = volume_name(path)
        taken = {n for n, _ in inputs}
        if name in taken:  # two files of one name: their tables and figures stay apart
            name = next(f"{name}-{i}" for i in range(2, len(taken) + 3) if f"{name}-{i}" not in
                        taken)
        for k in factors:
            check_factor(volume.array.shape[0], k, str(path))
        inputs.append((name, volume))
    planned = list(OUR_TABLES) + [figure_name(n, k) for n, _ in inputs for k in factors]
    earlier = check_out_folder(out, planned, args.overwrite)
    interps = {m: create_interpolator(m, device=args.device, weights=weights.get(m),
                                      precision=args.precision,
                                      quality=args.quality) for m in methods}
    learned = [f"{m}: {model_words(i)}" for m, i in interps.items() if model_words(i)]
    print(f"evaluating {', '.join(methods)} at x{', x'.join(map(str, factors))} "
          f"({args.protocol} protocol)" + (f"; {'; '.join(learned)}" if learned else ""),
          file=sys.stderr)
    report_warnings([w for i in interps.values() for w in model_warnings(i)][:1], args.events)
    work = _work_folder(out)
    try:
        rows = _evaluate_into(work, args, inputs, methods, interps, factors)
        with _held_signals() as came:
            _move_into_place(work, out, list(earlier))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown_table(rows))
    print(f"wrote {out / 'metrics.csv'}, {out / 'metrics.md'}, provenance.json and figures in "
          f"{out}")
    args.events.emit("wrote", path=str(out))
    if came:  # asked to stop while the complete results were moved in: they stay, whole
        print(f"hrinet: stopped ({came[0]}) once the results were complete in {out}",
              file=sys.stderr)
        return EXIT_TERMINATED if came[0] != "SIGINT" else EXIT_INTERRUPTED
    return 0


def _evaluate_into(work: Path, args, inputs, methods, interps: dict, factors) -> list:
    """Score every input into ``work``: figures, tables, and the record naming each file."""
    rows, volumes = [], []
    done, total = [0], len(inputs) * len(factors) * len(methods)
    for name, volume in inputs:
        volumes.append({"name": name, "voxel_sha256": voxel_sha256(volume.array)})
        outputs: dict = {}

        def keep(k, m, a, outputs=outputs):
            outputs.setdefault(k, {})[m] = a

        bar, update = _tqdm(len(factors) * len(methods), name, "run")
        first = done[0]

        def step(_what: str, first=first) -> None:
            done[0] += 1
            update(done[0] - first, 0)
            args.events.emit("progress", done=done[0], total=total, unit="run")

        rows += evaluate_volume(volume, name, factors, methods, interpolators=interps,
                                keep=keep, protocol=args.protocol, progress=step)
        bar.close()
        for k, outs in outputs.items():
            figure_strip(volume, k, outs, work / figure_name(name, k),
                         title=f"{name}, x{k} ({args.protocol} protocol)")
    write_csv(rows, work / "metrics.csv")
    write_text(work / "metrics.md", markdown_table(rows))
    write_text(work / "sharpness.csv", "volume,factor,method,grad_ratio,blur,blur_truth\n" +
               "".join(f"{r.volume},{r.factor},{r.method},{r.grad_ratio:.4f},{r.blur:.4f},"
                       f"{r.blur_truth:.4f}\n" for r in rows))
    record = provenance(args, methods, interps, volumes, factors)
    record["outputs"] = {p.name: file_sha256(p) for p in sorted(work.iterdir())
                         if not p.name.startswith(".")}
    write_text(work / PROVENANCE, json.dumps(record, indent=2))
    return rows


def provenance(args, methods, interps: dict, volumes: list, factors) -> dict:
    """What the tables were made from: code version, protocol, precision, factors, device, each
    learned method's weights (file name and sha256 of the file it loaded) and each volume (name
    and voxel sha256)."""
    used = {}
    for m in methods:
        path = getattr(interps[m], "weights_path", None)
        if m not in CLASSICAL_METHODS:
            used[m] = {"file": path.name, "sha256": file_sha256(path)} if path else None
    return {"code_version": __version__, "protocol": args.protocol,
            "precision": args.precision,
            "quality": args.quality if set(methods) - set(CLASSICAL_METHODS) else "standard",
            "factors": factors,
            "methods": methods, "device": args.device, "weights": used, "volumes": volumes}
