"""The cases of a cohort: every volume file and DICOM series of a folder tree, or the rows of a
CSV manifest, each with the one output it may write.

A case's identity is its name in the cohort (the path relative to the tree's root, or the input
as the manifest writes it) and its series UID, so the shard a case falls to depends on the case
alone, never on the order in which cases were found or on the working directory. Outputs are
absolute paths with their folder's links resolved (:func:`resolved`), so the results table names
the same files wherever a rerun starts and whichever link to ``--out`` it is given.
"""

from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from hrinet.core.io import list_dicom_series
from hrinet.core.errors import HRINetError
from hrinet.core.io import READ_EXTENSIONS, volume_name
from hrinet.core.io.paths import file_suffix

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


def resolved(path) -> str:
    """``path`` absolute, with every link in its folder resolved but not a link at its own
    name (a user's link at an output path stays what it is): one spelling of one place, so a
    rerun through a linked ``--out`` is the same batch."""
    path = _absolute(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


#: A shard's results table (``results-shard-I-of-N.csv``); the unsharded one is results.csv.
SHARD_TABLE = re.compile(r"^results-shard-(\d+)-of-(\d+)\.csv$")
#: Why a volume in another batch's output folder is not taken as a case.
OTHER_BATCH = ("it lies in {folder}, the output of another hrinet batch (its results table is "
               "there), and is interpolated already; give that batch's input instead")
#: Why a volume the user put inside ``--out`` is listed but not processed.
INSIDE_OUT = ("it lies inside --out {out}, where this batch writes its outputs, and is not one "
              "of them; move it out of --out to have it processed")


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


def _folder_cases(here: Path, rel: Path, out: Path, files: List[str],
                  series_filter: str) -> List[Case]:
    """The cases of one folder of the tree: its volume files and its DICOM series."""
    cases = []
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
    return cases


def _place(path: str) -> str:
    """One spelling of a place, to compare paths (letter case too where the system ignores
    it)."""
    return os.path.normcase(resolved(path))


def _output_places(output: str) -> List[str]:
    """Where a case's output may lie: its file, or (``--format dicom``) its folder."""
    return [_place(output), _place(os.path.join(os.path.dirname(output), volume_name(output)))]


def find_cases(root: Path, out: Path, series_filter: str = "",
               written: Optional[Callable[[str], bool]] = None,
               batch_table: Optional[Callable[[Path], bool]] = None) -> List[Case]:
    """Every volume file and every DICOM series under ``root``, each with its output under
    ``out`` mirroring the tree (``<folder>/<series description>-<uid tail>.nrrd`` for series).
    ``series_filter`` keeps only series whose description holds that text (any case). A file or
    folder whose name is not UTF-8 is a case of its own with a ``problem``.

    ``out`` may lie inside the tree. What is there is then never taken as an input when it is
    an output of the batch (a case's own output, or one ``written`` says a results table
    records); anything else there (a volume of the user's) is listed as a ``skip``ped case
    saying why (:data:`INSIDE_OUT`), never silently dropped and never processed (its output
    would land inside ``--out`` again). With ``batch_table`` (whether a file is a batch's
    results table), a folder holding one is another batch's output: the volumes at or below it
    are listed as ``skip``ped (:data:`OTHER_BATCH`), never interpolated again."""
    root, out = Path(root), Path(os.path.realpath(_absolute(out)))
    cases: List[Case] = []
    inside: List[Case] = []
    batches: List[Path] = []  # folders holding another batch's results table
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        rel = here.relative_to(root)
        if _not_utf8(str(rel)):
            dirs[:] = []
            cases.append(Case(printable(str(rel)), "", problem=(
                f"the folder name {printable(str(rel))!r} is not UTF-8 text; rename it")))
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        real = Path(os.path.realpath(here))
        found = _folder_cases(here, rel, out, files, series_filter)
        if real == out or out in real.parents:
            inside.extend(found)
            continue
        if batch_table is not None and any(
                (f == "results.csv" or SHARD_TABLE.match(f)) and batch_table(here / f)
                for f in files):
            batches.append(real)
        other = next((b for b in batches if b == real or b in real.parents), None)
        if other is not None:  # an earlier batch's output tree: listed, never interpolated again
            cases.extend(c if c.problem or not c.source else Case(
                c.input, "", c.series_uid, c.source, skip=OTHER_BATCH.format(folder=other))
                for c in found)
        else:
            cases.extend(found)
    planned = {place for c in cases if c.output for place in _output_places(c.output)}
    for c in inside:
        if c.problem or not c.source:
            cases.append(c)
            continue
        place = _place(c.source)
        if place in planned or (written is not None and written(c.source)):
            continue  # this batch's own output: never an input
        cases.append(Case(c.input, "", c.series_uid, c.source,
                          skip=INSIDE_OUT.format(out=out)))
    return sorted(cases, key=lambda c: (c.identity, c.output))


def _read_text(path: Path, what: str) -> str:
    """The text of a file exactly as it is (line breaks untranslated: a quoted field may hold
    one); UTF-8 with or without a byte-order mark."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError as exc:
        raise HRINetError(f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as "
                          "UTF-8 CSV and retry") from None
    except OSError as exc:
        raise HRINetError(f"cannot read {what} {path} ({exc.strerror}); check the path and "
                          "its permissions") from None


def _field(value) -> str:
    """A manifest field: spaces and tabs around it dropped, nothing else changed (a line break
    inside a quoted name is part of the name)."""
    return value.strip(" \t") if isinstance(value, str) else ""


def read_manifest(path: Path, extensions: Optional[Sequence[str]] = None) -> List[Case]:
    """Cases from a CSV manifest with columns ``input`` and ``output`` (and optionally
    ``series_uid``); relative paths are relative to the manifest's (real) folder. UTF-8 with or
    without a byte-order mark. A quoted field is taken exactly as written, a line break in it
    included; rows are named by the line they start on. With ``extensions`` (those a writer
    supports), an output ending in none of them is refused, naming its line, before any work."""
    base = Path(os.path.realpath(_absolute(path))).parent  # a linked manifest: the real one's,
    # as the batch it belongs to is known by its real path (one manifest, one cohort)
    reader = csv.DictReader(io.StringIO(_read_text(path, "manifest"), newline=""))
    try:
        header = reader.fieldnames
        if not header or not {"input", "output"} <= {h.strip() for h in header}:
            raise HRINetError(f"manifest {path} needs the columns input and output (and "
                              "optionally series_uid); found "
                              f"{', '.join(header or []) or 'no header'}")
        cases = []
        line = reader.line_num + 1  # where the next row starts
        for raw in reader:
            row = {(k or "").strip(): _field(v) for k, v in raw.items()}
            if not row.get("input") or not row.get("output"):
                raise HRINetError(f"manifest {path} line {line} lacks an input or an output")
            if max(len(v) for v in row.values()) > MAX_FIELD:
                raise HRINetError(f"manifest {path} line {line} has a field over {MAX_FIELD} "
                                  "characters; is it a manifest (columns input,output)?")
            if extensions is not None and file_suffix(Path(row["output"])) not in extensions:
                raise HRINetError(f"manifest {path} line {line}: output {row['output']!r} has an "
                                  "extension no writer supports; end it in one of "
                                  f"{', '.join(extensions)}")
            cases.append(Case(row["input"], resolved(base / row["output"]),
                              row.get("series_uid", ""), _absolute(base / row["input"])))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise HRINetError(f"manifest {path} is not a readable CSV ({exc}); columns "
                          "input,output, one case a line") from None
    return cases


def folder_output(output: str) -> str:
    """A case's output folder for ``--format dicom``: its file name without the extension."""
    return os.path.join(os.path.dirname(output), volume_name(output)) if output else output


def check_outputs(cases: List[Case]) -> None:
    """Refuse, before any work, two cases that would write one file (names equal but for
    letter case or Unicode normal form count: case-insensitive and normalising file systems make
    them one file) and an output that
    is another case's input: each run would overwrite the other case's result, or an input."""
    seen: Dict[str, Case] = {}
    for case in cases:
        if not case.output:
            continue
        key = unicodedata.normalize(  # links resolved; one name in NFC and NFD is one file
            "NFC", os.path.normcase(os.path.realpath(case.output))).lower()  # on macOS, but
        # 'strasse' and 'straße' are two on every file system (casefold would make them one)
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
