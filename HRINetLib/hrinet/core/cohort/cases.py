"""The cases of a cohort: every volume file and DICOM series of a folder tree, or the rows of a
CSV manifest, each with the one output it may write.

A case's identity is its name in the cohort (the path relative to the tree's root, or the input
as the manifest writes it) and its series UID, so the shard a case falls to depends on the case
alone, never on the order in which cases were found or on the working directory. Outputs are
absolute paths, so the results table names the same files wherever a rerun starts.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from hrinet.core.dicom import list_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import READ_EXTENSIONS, volume_name

#: A manifest's largest field (csv's own limit is 128 KiB; a path is far shorter).
MAX_FIELD = 4096


def identity(input: str, series_uid: str) -> str:
    """What a case is, for sharding: its name in the cohort and its series."""
    return f"{input}|{series_uid}"


@dataclass(frozen=True)
class Case:
    """One volume to process: its name in the cohort, where its result goes (absolute), the
    file or folder it is read from, and ``problem``: why it cannot be processed at all (e.g. a
    file name that is not UTF-8), reported as its row instead of stopping the cohort; ``skip``:
    why it is listed but not processed (a scout or a dose report)."""

    input: str
    output: str
    series_uid: str = ""
    source: str = ""
    problem: str = ""
    skip: str = ""

    @property
    def path(self) -> Path:
        return Path(self.source or self.input)

    @property
    def identity(self) -> str:
        return identity(self.input, self.series_uid)

    @property
    def key(self) -> str:
        """The case's row in a results table: one input may go to two outputs."""
        return f"{self.identity}|{self.output}"


def _absolute(path) -> str:
    return os.path.abspath(os.fspath(path))


def _is_volume_file(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and name.endswith(READ_EXTENSIONS)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("._") or "series"


def printable(name: str) -> str:
    """A file name as text that can be written anywhere: bytes that are not UTF-8 (which the
    file system hands over as surrogates) shown as ``\\xe9``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _not_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def find_cases(root: Path, out: Path, series_filter: str = "") -> List[Case]:
    """Every volume file and every DICOM series under ``root``, each with its output under
    ``out`` mirroring the tree (``<folder>/<series description>-<uid tail>.nrrd`` for series).
    ``series_filter`` keeps only series whose description holds that text (any case). A file or
    folder whose name is not UTF-8 is a case of its own with a ``problem``."""
    root, out = Path(root), Path(_absolute(out))
    outputs = out.resolve()
    cases = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        rel = here.relative_to(root)
        if _not_utf8(str(rel)):
            dirs[:] = []
            cases.append(Case(printable(str(rel)), "", problem=(
                f"the folder name {printable(str(rel))!r} is not UTF-8 text; rename it")))
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if outputs == here.resolve() or outputs in here.resolve().parents:
            continue  # never the outputs of an earlier run inside the input tree
        volumes = sorted(f for f in files if _is_volume_file(here / f))
        for f in volumes:
            if _not_utf8(f):
                cases.append(Case(printable(str(rel / f)), "", problem=(
                    f"the file name {printable(f)!r} is not UTF-8 text; rename it")))
                continue
            cases.append(Case(str(rel / f), str(out / rel / f"{volume_name(f)}.nrrd"),
                              source=str(here / f)))
        if len(volumes) < len(files):  # other files: maybe DICOM slices
            series = [s for s in list_dicom_series(here)
                      if not series_filter or series_filter.lower() in s["description"].lower()]
            names: Dict[str, int] = {}
            for s in series:
                base = f"{_safe(s['description'])}-{s['uid'][-8:]}"
                names[base.lower()] = names.get(base.lower(), 0) + 1
            for s in series:
                base = f"{_safe(s['description'])}-{s['uid'][-8:]}"
                if names[base.lower()] > 1:  # two series alike in their tails: the whole UID
                    base = f"{_safe(s['description'])}-{_safe(s['uid'])}"
                kind = s.get("kind", "image")
                skip = "" if kind == "image" else f"a {kind} series, not interpolated"
                cases.append(Case(str(rel), str(out / rel / f"{base}.nrrd"), s["uid"],
                                  str(here), skip=skip))
    return sorted(cases, key=lambda c: (c.identity, c.output))


def _read_text(path: Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError as exc:
        raise HRINetError(f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as "
                          "UTF-8 CSV and retry") from None
    except OSError as exc:
        raise HRINetError(f"cannot read {what} {path} ({exc.strerror}); check the path and "
                          "its permissions") from None


def read_manifest(path: Path) -> List[Case]:
    """Cases from a CSV manifest with columns ``input`` and ``output`` (and optionally
    ``series_uid``); relative paths are relative to the manifest's folder. UTF-8 with or
    without a byte-order mark."""
    base = Path(_absolute(Path(path).parent))
    lines = _read_text(path, "manifest").splitlines()
    reader = csv.DictReader(lines)
    try:
        header = reader.fieldnames
        if not header or not {"input", "output"} <= {h.strip() for h in header}:
            raise HRINetError(f"manifest {path} needs the columns input and output (and "
                              "optionally series_uid); found "
                              f"{', '.join(header or []) or 'no header'}")
        cases = []
        for i, raw in enumerate(reader, 2):
            row = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else ""
                   for k, v in raw.items()}
            if not row.get("input") or not row.get("output"):
                raise HRINetError(f"manifest {path} line {i} lacks an input or an output")
            if max(len(v) for v in row.values()) > MAX_FIELD:
                raise HRINetError(f"manifest {path} line {i} has a field over {MAX_FIELD} "
                                  "characters; is it a manifest (columns input,output)?")
            cases.append(Case(row["input"], _absolute(base / row["output"]),
                              row.get("series_uid", ""), _absolute(base / row["input"])))
    except csv.Error as exc:
        raise HRINetError(f"manifest {path} is not a readable CSV ({exc}); columns "
                          "input,output, one case a line") from None
    return cases


def check_outputs(cases: List[Case]) -> None:
    """Refuse, before any work, two cases that would write one file (names equal but for
    letter case count: a case-insensitive file system makes them one file) and an output that
    is another case's input: each run would overwrite the other case's result, or an input."""
    seen: Dict[str, Case] = {}
    for case in cases:
        if not case.output:
            continue
        key = os.path.normcase(os.path.realpath(case.output)).casefold()  # links resolved
        if key in seen:
            other = seen[key]
            raise HRINetError(f"cases {other.input}{' ' + other.series_uid if other.series_uid else ''}"
                              f" and {case.input}{' ' + case.series_uid if case.series_uid else ''} "
                              f"would both write {case.output}; rename one of them (or give "
                              "them distinct outputs in a manifest) and retry")
        seen[key] = case
    sources = {os.path.normcase(os.path.realpath(c.path)): c for c in cases if c.source}
    for case in cases:
        if case.output and os.path.normcase(os.path.realpath(case.output)) in sources:
            other = sources[os.path.normcase(os.path.realpath(case.output))]
            raise HRINetError(f"the output of {case.input} is {case.output}, the input of case "
                              f"{other.input}; choose another output (inputs are never "
                              "overwritten)")
