"""Pack the training volumes small enough to travel to a lent GPU machine (64 MiB in all).

Each volume is clipped to the model's HU range, cut in-plane to at most ``--region`` pixels
square around the body's centre (the training crop is drawn inside it), and quantised to
``--step`` HU (4 HU: an RMS error of about 1.2 HU, well under CT noise of 10-20 HU), then
LZMA-compressed. ``unpack`` turns the files back into :class:`hrinet.Volume` objects without
SimpleITK (the GPU machine has none). The weights' sidecar records that the run saw packed data.

Usage: python benchmarks/gpu/pack_training_data.py OUT_DIR [--corpus ../corpus] [--region 288]
       [--step 4]
(``--corpus``: the training split of the corpus recipe, built by ``benchmarks/data/build_corpus.py``;
``--files``: those volume files; neither: the eight training volumes of the shared CT folder.)
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "HRINetLib"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from hrinet.core.constants import HU_MAX, HU_MIN  # noqa: E402
from shared_ct import SHARED_CT  # noqa: E402  (benchmarks/shared_ct.py)

DATA = SHARED_CT
# (no series of wasserth/TotalSegmentator's test files: kept for independent evaluation)
TRAIN = ["chest-lidc-1mm.nrrd", "thorax-2mm.nrrd", "chest-cmbcrc-2p5mm.nrrd",
         "head-ge-1p25mm.nrrd", "chest-rider-0p8mm.nrrd"]


def corpus_training_files(corpus: Path) -> list:
    """The built files of the corpus recipe's training split (``benchmarks/data``)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.tools import corpus as build_corpus

    files, missing = build_corpus.split_files(build_corpus.load_recipe(), "train", corpus)
    if missing:
        raise SystemExit(f"not built in {corpus}: {', '.join(missing)}; run "
                         f"benchmarks/data/build_corpus.py --out {corpus} first")
    return files


def pack_one(path: Path, out: Path, region: int, step: int) -> str:
    """Pack one volume file into ``out`` (``<name>.u16.xz`` and ``<name>.json``)."""
    from hrinet.core.io import read_volume

    path = Path(path)
    name = path.name
    v = read_volume(path)
    a = np.clip(v.array.astype(np.int32), int(HU_MIN), int(HU_MAX))
    body = (a > -600).any(0)
    ys, xs = np.nonzero(body)
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    ny, nx = a.shape[1:]
    hy, hx = min(region, ny), min(region, nx)
    y0 = int(np.clip(cy - hy // 2, 0, ny - hy))
    x0 = int(np.clip(cx - hx // 2, 0, nx - hx))
    q = ((a[:, y0:y0 + hy, x0:x0 + hx] - int(HU_MIN) + step // 2) // step).astype(np.uint16)
    (out / f"{name}.u16.xz").write_bytes(lzma.compress(q.tobytes(), preset=6))
    head = dict(name=name, shape=list(q.shape), spacing=list(v.spacing), step=step,
                offset_yx=[y0, x0], hu_min=HU_MIN)
    (out / f"{name}.json").write_text(json.dumps(head))
    return f"{name}: {v.array.shape} -> {q.shape}"


def unpack(folder: Path):
    """The packed volumes as ``(names, [Volume])`` (HU, int16)."""
    from hrinet.core.volume import Volume

    names, vols = [], []
    for head_path in sorted(Path(folder).glob("*.json")):
        head = json.loads(head_path.read_text())
        raw = lzma.decompress((head_path.parent / f"{head['name']}.u16.xz").read_bytes())
        q = np.frombuffer(raw, dtype=np.uint16).reshape(head["shape"])
        hu = (q.astype(np.int32) * head["step"] + int(head["hu_min"])).clip(HU_MIN, HU_MAX)
        vols.append(Volume(hu.astype(np.int16), spacing=tuple(head["spacing"])))
        names.append(head["name"])
    return names, vols


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--corpus", help="pack the corpus recipe's training split from this folder")
    p.add_argument("--files", nargs="+", help="pack these volume files instead")
    p.add_argument("--region", type=int, default=288)
    p.add_argument("--step", type=int, default=4)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.files:
        files = [Path(f) for f in args.files]
    elif args.corpus:
        files = corpus_training_files(Path(args.corpus))
    else:
        files = [DATA / n for n in TRAIN]
    with ProcessPoolExecutor(2) as pool:
        for line in pool.map(pack_one, files, [out] * len(files), [args.region] * len(files),
                             [args.step] * len(files)):
            print(line, flush=True)
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"{total / 2**20:.1f} MiB in {out}")


if __name__ == "__main__":
    main()
