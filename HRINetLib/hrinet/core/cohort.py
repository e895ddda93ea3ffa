"""A cohort of cases: found in a folder tree or a manifest, shared out among shards, and the
results table that makes a rerun skip what is done.

A case is one volume file (NRRD, NHDR, NIfTI, MHA/MHD) or one DICOM series of a folder. Its
identity is its path relative to the cohort's root (and the series UID), so the shard a case
falls to depends on the case alone, never on the order in which cases were found, and every
shard of a SLURM array or a torchrun launch agrees on it without talking to the others.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple, TypeVar

from hrinet.core.atomic import file_sha256, write_text
from hrinet.core.dicom import list_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import READ_EXTENSIONS, volume_name

T = TypeVar("T")


def identity(input: str, series_uid: str) -> str:
    """What a case is, for sharding and the results table: its name in the cohort and series."""
    return f"{input}|{series_uid}"


@dataclass(frozen=True)
class Case:
    """One volume to process: its name in the cohort (the path relative to the cohort's root,
    or as the manifest gives it), where its result goes, and the file or folder it is read from."""

    input: str
    output: str
    series_uid: str = ""
    source: str = ""

    @property
    def path(self) -> Path:
        return Path(self.source or self.input)

    @property
    def identity(self) -> str:
        return identity(self.input, self.series_uid)


@dataclass
class Result:
    """One row of ``results.csv``."""

    input: str
    series_uid: str
    output: str
    method: str = ""
    factor: int = 0
    thickness: str = ""
    seconds: float = 0.0
    output_sha256: str = ""
    status: str = ""  # "ok" or "failed"
    message: str = ""


def _is_volume_file(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and name.endswith(READ_EXTENSIONS)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("._") or "series"


def find_cases(root: Path, out: Path, series_filter: str = "") -> List[Case]:
    """Every volume file and every DICOM series under ``root``, each with its output under
    ``out`` mirroring the tree (``<folder>/<series description>-<uid tail>.nrrd`` for series).
    ``series_filter`` keeps only series whose description holds that text (any case)."""
    root, out = Path(root), Path(out)
    outputs = out.resolve()
    cases = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        rel = here.relative_to(root)
        if outputs == here.resolve() or outputs in here.resolve().parents:
            continue  # never the outputs of an earlier run inside the input tree
        volumes = sorted(f for f in files if _is_volume_file(here / f))
        for f in volumes:
            cases.append(Case(str(rel / f), str(out / rel / f"{volume_name(f)}.nrrd"),
                              source=str(here / f)))
        if len(volumes) < len(files):  # other files: maybe DICOM slices
            for s in list_dicom_series(here):
                if series_filter and series_filter.lower() not in s["description"].lower():
                    continue
                name = f"{_safe(s['description'])}-{s['uid'][-8:]}.nrrd"
                cases.append(Case(str(rel), str(out / rel / name), s["uid"], str(here)))
    return sorted(cases, key=lambda c: c.identity)


def read_manifest(path: Path) -> List[Case]:
    """Cases from a CSV manifest with columns ``input`` and ``output`` (and optionally
    ``series_uid``); relative paths are relative to the manifest's folder."""
    base = Path(path).parent
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"input", "output"} <= set(reader.fieldnames):
            raise HRINetError(f"manifest {path} needs the columns input and output (and "
                              "optionally series_uid); found "
                              f"{', '.join(reader.fieldnames or []) or 'no header'}")
        cases = []
        for i, row in enumerate(reader, 2):
            if not (row.get("input") or "").strip() or not (row.get("output") or "").strip():
                raise HRINetError(f"manifest {path} line {i} lacks an input or an output")
            cases.append(Case(str(base / row["input"].strip()), str(base / row["output"].strip()),
                              (row.get("series_uid") or "").strip()))
    return cases


def shard_of(case: Case, shards: int) -> int:
    """The shard (0-based) a case belongs to: a hash of its identity, nothing else."""
    digest = hashlib.sha256(case.identity.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def shard_from_environment(env: Optional[Dict[str, str]] = None) -> Tuple[int, int, int]:
    """``(index, count, local_rank)`` from a SLURM job array or a torchrun launch; ``(0, 1,
    -1)`` outside both. ``local_rank`` picks the GPU of a torchrun process (-1: none given)."""
    env = dict(os.environ if env is None else env)
    if "SLURM_ARRAY_TASK_ID" in env:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        low = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        if "SLURM_ARRAY_TASK_COUNT" in env:
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        else:
            count = int(env.get("SLURM_ARRAY_TASK_MAX", str(task))) - low + 1
        return task - low, count, -1
    if "WORLD_SIZE" in env and "RANK" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "-1"))
    return 0, 1, -1


def parse_shard(text: str) -> Tuple[int, int]:
    """``"I/N"`` (1-based I, as people count shards) as a 0-based ``(index, count)``."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        i = n = 0
    if n < 1 or not 1 <= i <= n:
        raise HRINetError(f"--shard {text!r} is not I/N with 1 <= I <= N, e.g. --shard 2/8")
    return i - 1, n


def results_name(index: int, count: int) -> str:
    """The results table of one shard (``results.csv`` when there is one shard)."""
    return "results.csv" if count == 1 else f"results-shard-{index + 1}-of-{count}.csv"


def read_results(path: Path) -> Dict[str, Result]:
    """The rows of a results table by case identity (empty when there is none yet)."""
    if not path.is_file():
        return {}
    names = {f.name for f in fields(Result)}
    with open(path, newline="") as f:
        rows = [Result(**{k: v for k, v in r.items() if k in names}) for r in csv.DictReader(f)]
    return {identity(r.input, r.series_uid): r for r in rows}


def write_results(path: Path, rows: Iterable[Result]) -> None:
    """The whole table, written atomically (a crash never leaves half a table)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[f.name for f in fields(Result)])
    w.writeheader()
    for r in rows:
        w.writerow(asdict(r))
    write_text(path, buf.getvalue())


def merge_results(folder: Path) -> Path:
    """Every shard's table in ``folder`` merged into ``folder/results.csv`` (one row a case)."""
    parts = sorted(Path(folder).glob("results-shard-*.csv"))
    if not parts:
        raise HRINetError(f"no shard results (results-shard-*.csv) in {folder}")
    merged: Dict[str, Result] = {}
    for p in parts:
        merged.update(read_results(p))
    out = Path(folder) / "results.csv"
    write_results(out, sorted(merged.values(), key=lambda r: (r.input, r.series_uid)))
    return out


def is_done(case: Case, previous: Optional[Result]) -> bool:
    """Whether a case needs no work: recorded as ok, and its output still there and intact."""
    if previous is None or previous.status != "ok" or not previous.output_sha256:
        return False
    out = Path(case.output)
    return out.is_file() and file_sha256(out) == previous.output_sha256


def read_ahead(cases: List[Case], read: Callable[[Case], T]) -> Iterator[Tuple[Case, Callable[[], T]]]:
    """Yield each case with a function that returns what ``read(case)`` returned (or raises what
    it raised), reading the next case in a background thread while the caller works on this
    one: a cohort's reading (DICOM parsing, decompression) overlaps its computing. At most two
    cases are held at once; a stop (an exception in the caller) cancels the read ahead."""
    if not cases:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hrinet-read-ahead") as pool:
        ahead = pool.submit(read, cases[0])
        try:
            for i, case in enumerate(cases):
                current = ahead
                ahead = pool.submit(read, cases[i + 1]) if i + 1 < len(cases) else None
                yield case, current.result
        finally:
            if ahead is not None:
                ahead.cancel()
