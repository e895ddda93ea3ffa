"""``hrinet evaluate``: thin volumes decimated (or made slab-thick), upsampled back by each
method and scored; tables and figures into a folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hrinet import __version__
from hrinet.cli.describe import model_words
from hrinet.cli.events import report_warnings
from hrinet.cli.progress import progress_bar as _tqdm
from hrinet.core.atomic import file_sha256, write_text
from hrinet.core.constants import CLASSICAL_METHODS
from hrinet.core.errors import HRINetError
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


#: The files an evaluation writes besides its figures (replaced together with --overwrite).
OUR_TABLES = ("metrics.csv", "metrics.md", "sharpness.csv", "provenance.json")


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
        report_warnings(volume.metadata.get("warnings", []), args.events)
        name = volume_name(path)
        taken = {n for n, _ in inputs}
        if name in taken:  # two files of one name: their tables and figures stay apart
            name = next(f"{name}-{i}" for i in range(2, len(taken) + 3) if f"{name}-{i}" not in
                        taken)
        for k in factors:
            check_factor(volume.array.shape[0], k, str(path))
        inputs.append((name, volume))
    earlier = sorted(p.name for p in out.glob("*") if p.name in OUR_TABLES or
                     (p.name.startswith("figure-") and p.suffix == ".png")) if out.is_dir() else []
    if earlier and not args.overwrite:
        raise HRINetError(f"--out {out} holds an earlier evaluation ({earlier[0]}...); replace it "
                          "with --overwrite (its tables and figures go first) or choose another "
                          "folder")
    interps = {m: create_interpolator(m, device=args.device, weights=weights.get(m),
                                      precision=args.precision) for m in methods}
    learned = [f"{m}: {model_words(i)}" for m, i in interps.items() if model_words(i)]
    print(f"evaluating {', '.join(methods)} at x{', x'.join(map(str, factors))} "
          f"({args.protocol} protocol)" + (f"; {'; '.join(learned)}" if learned else ""),
          file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    for name in earlier:  # ours only: no stale figure of another factor survives
        (out / name).unlink()
    rows, volumes = [], []
    for name, volume in inputs:
        volumes.append({"name": name, "voxel_sha256": voxel_sha256(volume.array)})
        outputs: dict = {}

        def keep(k, m, a, outputs=outputs):
            outputs.setdefault(k, {})[m] = a

        bar, update = _tqdm(len(factors) * len(methods), name, "run")
        done = [0]

        def step(_what: str) -> None:
            done[0] += 1
            update(done[0], 0)

        rows += evaluate_volume(volume, name, factors, methods, interpolators=interps,
                                keep=keep, protocol=args.protocol, progress=step)
        bar.close()
        for k, outs in outputs.items():
            figure_strip(volume, k, outs, out / f"figure-{name}-x{k}.png",
                         title=f"{name}, x{k} ({args.protocol} protocol)")
    write_csv(rows, out / "metrics.csv")
    write_text(out / "metrics.md", markdown_table(rows))
    write_text(out / "sharpness.csv", "volume,factor,method,grad_ratio,blur,blur_truth\n" +
               "".join(f"{r.volume},{r.factor},{r.method},{r.grad_ratio:.4f},{r.blur:.4f},"
                       f"{r.blur_truth:.4f}\n" for r in rows))
    write_text(out / "provenance.json",
               json.dumps(provenance(args, methods, interps, volumes, factors), indent=2))
    print(markdown_table(rows))
    print(f"wrote {out / 'metrics.csv'}, {out / 'metrics.md'}, provenance.json and figures in "
          f"{out}")
    return 0


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
            "precision": args.precision, "factors": factors,
            "methods": methods, "device": args.device, "weights": used, "volumes": volumes}
