"""Copy trained weights into Resources/weights under their shipped names, with the full
evaluation of each added to its JSON sidecar.

    python benchmarks/ship_weights.py --default runs/default \
        --variants runs/ae runs/acai ... --metrics out/evaluate/metrics.csv

A run folder holds ``<variant>.safetensors`` (from ``hrinet train`` or ``hrinet export``). The
default model becomes ``hrinet-default.safetensors``; each paper variant
``hrinet-variant-<variant>.safetensors``. Evaluation rows of the matching method name
(``hrinet`` for the default, the variant name otherwise) go into the sidecar's ``evaluation``.
Every sidecar names its corpus (``corpus``: the series of ``benchmarks/data/corpus.toml`` it was
trained on and those it is validated on, by name and voxel sha256) and no file path;
``--restamp`` rewrites the shipped sidecars so (the tensors are untouched).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from hrinet.core.models.shipped import DEFAULT_NAME, sidecar_of, variant_weights_name
from hrinet.learned.weights import read_metadata
from hrinet.training.checkpoint import CHECKPOINT, PREVIOUS
from hrinet.training.lineage import without_paths

from benchmarks.tools import corpus as build_corpus

DEST = Path(__file__).resolve().parents[2] / "Resources" / "weights"


def _series_name(name: str) -> str:
    return name[:-len(".nrrd")] if name.endswith(".nrrd") else name


def corpus_block(meta: dict, recipe=None) -> dict:
    """The corpus of a sidecar: every series any training stage used (lineage and the last
    run) and the recipe's validation series, each by name, voxel sha256 and source; a name the
    recipe does not hold is listed with the hash the training recorded, if any."""
    recipe = {s["name"]: s for s in (recipe if recipe is not None else build_corpus.load_recipe())}
    training = meta.get("training", {})
    recorded = {_series_name(v["name"]): v.get("voxel_sha256")
                for v in training.get("volumes", []) if "name" in v}
    names = []
    for stage in meta.get("lineage", []) + [{"data": training.get("split", {}).get("train")}]:
        for n in stage.get("data") or []:
            if _series_name(Path(n).name) not in names:
                names.append(_series_name(Path(n).name))

    def entry(name):
        s = recipe.get(name)
        if s is None:
            return {"name": name, "voxel_sha256": recorded.get(name), "in_recipe": False}
        src = s["source"]
        where = src.get("repo", "shared CT folder") + (f"@{src['commit'][:10]}" if
                                                         src.get("commit") else "")
        return {"name": name, "voxel_sha256": s["voxel_sha256"], "source": where,
                "licence": s["licence"]}
    trained = [entry(n) for n in names]
    validation = [entry(s["name"]) for s in recipe.values() if s["split"] == "validation"]
    seen = {e["voxel_sha256"] for e in trained if e["voxel_sha256"]}
    overlap = [e["name"] for e in validation if e["voxel_sha256"] in seen]
    if overlap:
        raise SystemExit(f"validation series {overlap} are among the training data")
    return {"recipe": "benchmarks/data/corpus.toml", "train": trained, "validation": validation}


def restamped(meta: dict, recipe=None) -> dict:
    """``meta`` with its corpus named and every file path in its settings reduced to a name."""
    meta = dict(meta, corpus=corpus_block(meta, recipe))
    if isinstance(meta.get("training", {}).get("config"), dict):
        meta["training"] = dict(meta["training"], config=without_paths(meta["training"]["config"]))
    meta["lineage"] = [dict(s, settings=without_paths(s["settings"]))
                       if isinstance(s.get("settings"), dict) else s
                       for s in meta.get("lineage", [])]
    return meta


def _validation_rows(rows, method: str, validation) -> list:
    """``method``'s rows on the recipe's validation series: a sidecar's measured quality is
    never a score on a series the model trained on or one kept for independent evaluation."""
    left = sorted({r["volume"] for r in rows if r["method"] == method} - set(validation))
    if left:
        print(f"{method}: rows of {', '.join(left)} left out of the sidecar (not validation "
              "series of the recipe)")
    return [r for r in rows if r["method"] == method and r["volume"] in validation]


def _weights_in(run: Path) -> Path:
    found = sorted(p for p in run.glob("*.safetensors") if p.name not in (CHECKPOINT, PREVIOUS))
    if len(found) != 1:
        raise SystemExit(f"{run}: expected one exported weights file, found {found}")
    return found[0]


def ship(src: Path, name: str, method: str, rows, note: str = "", slab_rows=()) -> Path:
    meta = read_metadata(src)  # checks the sha256 before anything is copied
    dst = DEST / name
    DEST.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    meta = restamped(meta)
    meta["tensor_file"] = dst.name
    if note:
        meta["training_notes"] = note
    validation = {e["name"] for e in meta["corpus"]["validation"]}
    meta["evaluation"] = {
        "protocol": "hrinet evaluate: keep every k-th slice, upsample by k, score the "
                    "synthesised slices (docs/results.md)",
        "rows": _validation_rows(rows, method, validation)}
    if slab_rows:
        meta["evaluation_slab"] = {
            "protocol": "hrinet evaluate --protocol slab: slabs k thin slices wide every k-th "
                        "slice, upsample by k with that thickness, score every output slice",
            "rows": _validation_rows(slab_rows, method, validation)}
    sidecar_of(dst).write_text(json.dumps(meta, indent=2, sort_keys=True))
    read_metadata(dst)
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--default", type=Path)
    p.add_argument("--variants", type=Path, nargs="*", default=[])
    p.add_argument("--metrics", type=Path, nargs="*", default=[],
                   help="metrics.csv files of 'hrinet evaluate' (decimate protocol)")
    p.add_argument("--slab-metrics", type=Path, nargs="*", default=[],
                   help="metrics.csv files of 'hrinet evaluate --protocol slab'")
    p.add_argument("--default-note", default="", help="how the default run went (resumes, "
                   "schedule changes), stored in its sidecar")
    p.add_argument("--restamp", action="store_true", help="name the corpus in every shipped "
                   "sidecar and drop file paths from them (tensors untouched)")
    a = p.parse_args()
    if a.restamp:
        for side in sorted(DEST.glob("hrinet-*.json")):
            side.write_text(json.dumps(restamped(json.loads(side.read_text())), indent=2,
                                       sort_keys=True))
            read_metadata(side.with_suffix(".safetensors"))
            print(f"restamped {side.name}")
        return
    rows, slab = _read(a.metrics), _read(a.slab_metrics)
    if a.default:
        print(ship(_weights_in(a.default), DEFAULT_NAME, "hrinet", rows, a.default_note, slab))
    for run in a.variants:
        w = _weights_in(run)
        variant = read_metadata(w)["variant"]
        print(ship(w, variant_weights_name(variant), variant, rows, slab_rows=slab))


def _read(paths):
    """The rows of every metrics.csv. A (volume, factor, method) cell scored in two files (the
    README's evaluation and the corpus's share a volume) is kept once when the two agree, and
    refused when they differ (another setting, e.g. ``--quality high``, or other weights)."""
    rows, seen = [], {}
    for path in paths:
        with open(path) as f:
            for row in csv.DictReader(f):
                key = (row["volume"], row["factor"], row["method"])
                if key not in seen:
                    seen[key] = (path, row)
                    rows.append(row)
                elif seen[key][1] != row:
                    raise SystemExit(f"{path} and {seen[key][0]} score {' x'.join(key[:2])} "
                                     f"{key[2]} differently; pass metrics of one setting")
    return rows


if __name__ == "__main__":
    main()
