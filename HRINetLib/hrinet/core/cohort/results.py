"""The results tables of a batch: one row a case, what makes a rerun skip what is done, and the
proof of which files the batch wrote.

A batch replaces a file only when it can show it wrote it: a row of a results table in its
``--out`` folder records that output's sha256 (written as ``writing`` before the file is moved
into place and ``ok`` after, so a stop between the two still proves it). "A row existed" is
never ownership: a user's file at an output path, or a file changed since, is refused.
A case counts as done only when its row is ``ok``, the output still hashes as recorded and the
options that shape the output (method, target, thickness, weights, precision) are the same
(:mod:`hrinet.core.cohort.ledger` reads every table of a folder so).

Each row also records its output relative to the table's folder (``output_rel``): a project
moved or copied elsewhere (inputs, ``--out`` and the outputs together) still finds and owns its
outputs there, the sha256 being the proof. The absolute ``output`` is kept for people and for an
``--out`` moved on its own (its outputs stayed where they were).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Dict, Iterable, List, Set

from hrinet.core.io.atomic import write_text
from hrinet.core.cohort.cases import Case
from hrinet.core.cohort.shards import MAX_SHARDS, SHARD_TABLE
from hrinet.core.errors import HRINetError
from hrinet.core.lock import is_locked

#: Statuses a row can have; ``writing``: the output was about to be moved into place;
#: ``superseded``: a later run (another shard layout, an edited manifest) wrote the file again.
STATUSES = ("ok", "failed", "skipped", "writing", "superseded")
#: The largest field a results table may hold (a message is a line; a path is short).
MAX_FIELD = 16384


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
    status: str = ""  # one of STATUSES
    message: str = ""
    options: str = ""  # what shaped the output, as written by options_text
    input_stamp: str = ""  # the input as it was read (input_stamp): a changed input is redone
    #: The batch's input (its folder tree or manifest), absolute with links resolved: a table
    #: made from another input is refused (:meth:`Ledger.check_input`). Empty in tables of
    #: earlier versions.
    input_root: str = ""

    @property
    def key(self) -> str:
        return Case(self.input, self.output, self.series_uid).key


#: The columns of a table: the fields of :class:`Result`, then where the output and the input
#: are relative to the table's folder (not fields: computed when written, used when read, so a
#: project moved as a whole is the same batch).
COLUMNS = tuple(f.name for f in fields(Result)) + ("output_rel", "input_root_rel")


def is_results_table(path: Path) -> bool:
    """Whether ``path`` is the results table of a batch that made something there: its columns
    are :data:`COLUMNS` (a byte-order mark allowed, as a spreadsheet saves it) and it records
    at least one output that is there. A user's file of that name, or a bare copy of the
    header, is no batch's."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = csv.reader(f)
            if tuple(next(rows, [])) != COLUMNS:
                return False
            at = COLUMNS.index("output_rel")
            return any(len(r) > at and r[at] and (Path(path).parent / r[at]).exists()
                       for r in rows)
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def options_text(options: Dict[str, object]) -> str:
    """The options that shape an output, as one comparable text (``method=linear factor=2``)."""
    return " ".join(f"{k}={'' if v is None else v}" for k, v in sorted(options.items()))


def read_results(path: Path) -> Dict[str, Result]:
    """The rows of a results table by case key (empty when there is none yet).

    Raises:
        HRINetError: the table is not one this program wrote (columns renamed, not UTF-8,
            a field too long): one line naming it and what to do; it is left as it is.
    """
    path = Path(path)
    if not path.is_file():
        return {}

    def damaged(why: str) -> HRINetError:
        return HRINetError(f"results table {path} is damaged ({why}); restore it, or choose a "
                           "new --out (outputs it recorded are refused without it: nothing of "
                           "yours is replaced)")

    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet saves it with a BOM
    except UnicodeDecodeError:
        raise damaged("not UTF-8 text") from None
    except OSError as exc:
        raise HRINetError(f"cannot read results table {path} ({exc.strerror}); check its "
                          "permissions") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = {}
    try:
        header = reader.fieldnames or []
        missing = [c for c in ("input", "series_uid", "output", "output_sha256", "status")
                   if c not in header]
        if missing:
            raise damaged(f"no column {', '.join(missing)}")
        for raw in reader:
            if None in raw.values():  # fewer fields than the header: cut off
                raise damaged(f"line {reader.line_num} has fewer fields than the header (cut "
                              "off?)")
            values = {k: (v or "") for k, v in raw.items() if k in COLUMNS}
            if any(len(v) > MAX_FIELD for v in values.values()):
                raise damaged(f"a field over {MAX_FIELD} characters")
            relative = values.pop("output_rel", "")
            root_relative = values.pop("input_root_rel", "")
            if values.get("status") not in STATUSES:  # a row cut off, or edited by hand
                raise damaged(f"line {reader.line_num}: status {values.get('status')!r} is not "
                              f"one of {', '.join(STATUSES)}")
            row = Result(**values)
            row.output = _located(row.output, relative, path.parent)
            row.input_root = _located(row.input_root, root_relative, path.parent)
            rows[row.key] = row
    except csv.Error as exc:
        raise damaged(str(exc)) from None
    return rows


def _relative(output: str, folder: Path) -> str:
    """``output`` relative to a table's ``folder`` ("" when it has none: no output, or on
    another drive)."""
    if not output:
        return ""
    try:
        return os.path.relpath(output, os.path.realpath(folder))
    except ValueError:  # Windows: another drive
        return ""


def _located(output: str, relative: str, folder: Path) -> str:
    """Where a row's output is now: relative to the table's folder when the table has moved
    with it (the file is there, or no longer at the recorded absolute place), else the
    recorded absolute path (the table moved on its own, or did not move)."""
    if not relative:
        return output
    here = os.path.normpath(os.path.join(os.path.realpath(folder), relative))
    if here == output or not output:
        return here
    return here if os.path.lexists(here) or not os.path.lexists(output) else output


def write_results(path: Path, rows: Iterable[Result]) -> None:
    """The whole table, written atomically (a crash never leaves half a table)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    for r in sorted(rows, key=lambda r: (r.input, r.series_uid, r.output)):
        w.writerow(dict(asdict(r), output_rel=_relative(r.output, Path(path).parent),
                        input_root_rel=_relative(r.input_root, Path(path).parent)))
    write_text(path, buf.getvalue())


def tables(folder: Path) -> List[Path]:
    """Every results table in a batch's folder (the unsharded one and every shard's), oldest
    first."""
    folder = Path(folder)
    found = [p for p in folder.glob("results*.csv")
             if p.name == "results.csv" or SHARD_TABLE.match(p.name)]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def running_shards(folder: Path) -> List[str]:
    """The shards (``"I of N"``) whose batch is running on ``folder`` now (its lock held)."""
    return [" of ".join(SHARD_TABLE.match(p.name).groups()) for p in tables(folder)
            if SHARD_TABLE.match(p.name) and is_locked(Path(folder) / f".{p.name}.lock")]


def merge_results(folder: Path, partial: bool = False) -> Path:
    """Every results table in ``folder`` merged into ``folder/results.csv``, one row a case,
    the newest row winning; rows of an earlier unsharded run are kept.

    Raises:
        HRINetError: no shard tables, or a shard missing (``partial`` merges what is there).
    """
    folder = Path(folder)
    found = [p for p in tables(folder) if SHARD_TABLE.match(p.name)]
    if not found:
        raise HRINetError(f"no shard results (results-shard-*.csv) in {folder}; give the --out "
                          "folder of the shards")
    present: Dict[int, Set[int]] = {}
    for p in found:
        i, n = (int(v) for v in SHARD_TABLE.match(p.name).groups())
        present.setdefault(n, set()).add(i)
    missing = [f"{i} of {n}" for n in sorted(present) if n <= MAX_SHARDS
               for i in range(1, n + 1) if i not in present[n]]
    missing += [f"{n - len(present[n])} of {n}" for n in sorted(present) if n > MAX_SHARDS]
    if missing and not partial:
        said = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                         else "")
        raise HRINetError(f"shard {said} has no results table in {folder} (not "
                          "run yet, or still running); run it, or pass --partial to merge what "
                          "is there")
    running = running_shards(folder)
    if running and not partial:  # its table is written as it goes: rows would be missing
        more = f" (and {len(running) - 1} more)" if len(running) > 1 else ""
        raise HRINetError(f"shard {running[0]}{more} is still running on {folder}; wait for it "
                          "to end, or pass --partial to merge what is there so far")
    merged: Dict[str, Result] = {}
    for table in tables(folder):
        merged.update(read_results(table))
    out = folder / "results.csv"
    write_results(out, merged.values())
    return out
