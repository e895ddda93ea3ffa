"""Copy trained weights into Resources/weights under their shipped names, with the full
evaluation of each added to its JSON sidecar.

    python benchmarks/ship_weights.py --default runs/default \
        --variants runs/ae runs/acai ... --metrics out/evaluate/metrics.csv

A run folder holds ``<variant>.safetensors`` (from ``hrinet train`` or ``hrinet export``). The
default model becomes ``hrinet-default.safetensors``; each paper variant
``hrinet-variant-<variant>.safetensors``. Evaluation rows of the matching method name
(``hrinet`` for the default, the variant name otherwise) go into the sidecar's ``evaluation``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from hrinet.core.shipped import DEFAULT_NAME, sidecar_of, variant_weights_name
from hrinet.learned.weights import read_metadata
from hrinet.training.checkpoint import CHECKPOINT, PREVIOUS

DEST = Path(__file__).resolve().parents[1] / "Resources" / "weights"


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
    meta["tensor_file"] = dst.name
    if note:
        meta["training_notes"] = note
    meta["evaluation"] = {
        "protocol": "hrinet evaluate: keep every k-th slice, upsample by k, score the "
                    "synthesised slices (README 'Results')",
        "rows": [r for r in rows if r["method"] == method]}
    if slab_rows:
        meta["evaluation_slab"] = {
            "protocol": "hrinet evaluate --protocol slab: slabs k thin slices wide every k-th "
                        "slice, upsample by k with that thickness, score every output slice",
            "rows": [r for r in slab_rows if r["method"] == method]}
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
    a = p.parse_args()
    rows, slab = _read(a.metrics), _read(a.slab_metrics)
    if a.default:
        print(ship(_weights_in(a.default), DEFAULT_NAME, "hrinet", rows, a.default_note, slab))
    for run in a.variants:
        w = _weights_in(run)
        variant = read_metadata(w)["variant"]
        print(ship(w, variant_weights_name(variant), variant, rows, slab_rows=slab))


def _read(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            rows += list(csv.DictReader(f))
    return rows


if __name__ == "__main__":
    main()
