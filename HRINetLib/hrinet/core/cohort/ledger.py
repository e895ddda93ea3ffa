"""What a batch's results tables prove and decide: which outputs the batch wrote (by path and
sha256, across every table in ``--out``: :class:`Ledger`), which input a table was made from,
and whether a case needs no work (:func:`is_done`, with the input's cheap stamp). The tables
themselves are :mod:`hrinet.core.cohort.results`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Optional, Set

from hrinet.core.cohort.cases import Case
from hrinet.core.cohort.results import Result, read_results, tables, write_results
from hrinet.core.errors import HRINetError
from hrinet.core.io import WRITE_EXTENSIONS
from hrinet.core.io.atomic import file_sha256, folder_sha256


def _where(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


class Ledger:
    """What every results table in a batch's folder records: which outputs the batch wrote
    (by path and sha256) and the newest row of each case."""

    def __init__(self, folder: Path):
        self.owned: Dict[str, Set[str]] = {}
        self.rows: Dict[str, Result] = {}
        self.tables: Dict[str, Set[Path]] = {}  # output -> the tables that name it
        self.inputs: Dict[str, tuple] = {}  # input root -> (the root as recorded, a table)
        for table in tables(folder):
            for row in read_results(table).values():
                self.rows[row.key] = row
                if row.input_root:
                    self.inputs.setdefault(_where(row.input_root), (row.input_root, table))
                if row.output:
                    self.tables.setdefault(_where(row.output), set()).add(table)
                if row.output and row.output_sha256:
                    self.owned.setdefault(_where(row.output), set()).add(row.output_sha256)

    def check_input(self, root: str) -> None:
        """Refuse to run on input ``root`` (a folder tree or a manifest) when a results table
        here was made from another input: its cases' outputs would replace the other input's
        under the same names, and its rows would mix with theirs. The same input (also moved
        together with --out, or given through a link) resumes.

        Raises:
            HRINetError: one line naming the table, its input, and what to do.
        """
        for place, (recorded, table) in self.inputs.items():
            if place != _where(root):
                raise HRINetError(f"results table {table} in --out was written for the input "
                                  f"{recorded}, not {root}; give another --out for this input, "
                                  "or the same input to resume that batch (nothing was changed)")

    def supersede(self, row: Result, table: Path, rows: Dict[str, Result]) -> None:
        """``row``'s output was just written again: every other row naming that file (in this
        table, or in a table of another shard layout, which cannot be running now) is marked
        ``superseded``, so no table claims bytes the file no longer holds."""
        where = _where(row.output)

        def mark(found: Dict[str, Result]) -> bool:
            changed = False
            for key, other in found.items():
                if other is not row and _where(other.output) == where and \
                        other.status in ("ok", "writing"):
                    other.status = "superseded"
                    other.message = f"written again by a later run ({table.name})"
                    changed = True
            return changed

        mark(rows)
        for other_table in self.tables.get(where, set()) - {table}:
            if other_table.is_file():
                found = read_results(other_table)
                if mark(found):
                    write_results(other_table, found.values())
        self.tables.setdefault(where, set()).add(table)

    def record(self, row: Result) -> None:
        """Take a row this run wrote into account."""
        self.rows[row.key] = row
        if row.output and row.output_sha256:
            self.owned.setdefault(_where(row.output), set()).add(row.output_sha256)

    def names(self, output: str) -> bool:
        """Whether a table names ``output`` as a case's output (whatever its status): the
        batch's place, never an input of it."""
        return _where(output) in self.tables

    def recorded_sha256(self, output: str, key: str) -> str:
        """The sha256 recorded for ``output`` (the row of case ``key`` first): kept by a row
        that refuses a changed output, so every later run still knows it as this batch's."""
        previous = self.rows.get(key)
        if previous is not None and previous.output_sha256:
            return previous.output_sha256
        return min(self.owned.get(_where(output), {""}))

    def recorded(self, output: str) -> bool:
        """Whether a table records this batch writing to ``output`` at all."""
        return bool(self.owned.get(_where(output)))

    def wrote(self, output: str) -> Optional[str]:
        """The sha256 of ``output`` if a table records this batch writing exactly those bytes
        there, else None (no file, a file of the user's, or one changed since)."""
        hashes = self.owned.get(_where(output))
        if not hashes or not os.path.isfile(output):
            return None
        digest = file_sha256(Path(output))
        return digest if digest in hashes else None

    def folder_wrote(self, output: str) -> Optional[str]:
        """:meth:`wrote` for an output folder (``--format dicom``): its digest if a table
        records this batch writing exactly that folder there."""
        hashes = self.owned.get(_where(output))
        if not hashes or not os.path.isdir(output):
            return None
        digest = folder_sha256(Path(output))
        return digest if digest in hashes else None


def _not_a_slice(name: str) -> bool:
    """A file in a DICOM folder that is no slice of it: hidden (a half-written output's) or a
    volume or preview file (a manifest may put a case's output beside its series): its coming
    or going does not change the input."""
    return name.startswith(".") or name.lower().endswith(WRITE_EXTENSIONS + (".png",))


def input_stamp(case: Case) -> str:
    """What the case's input is now, cheaply: size and modification time of its file, or of
    every file of its DICOM folder (not the outputs a manifest may put there). Another input under the same name (a replaced file, another
    cohort in the same --out) has another stamp."""
    path = case.path
    try:
        if path.is_file():
            st = path.stat()
            return f"{st.st_size}:{st.st_mtime_ns}"
        h = hashlib.sha256()
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if entry.is_file() and not _not_a_slice(entry.name):
                st = entry.stat()
                h.update(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}\n".encode("utf-8",
                                                                               "surrogateescape"))
        return h.hexdigest()[:32]
    except OSError:
        return ""


def is_done(case: Case, previous: Optional[Result], options: str = "",
            stamp: Optional[str] = None, folder: bool = False) -> bool:
    """Whether a case needs no work: recorded as ok with the same options (and, when
    ``stamp`` is given, the same input), and its output (a ``folder`` with ``--format dicom``)
    still there and intact."""
    if previous is None or previous.status != "ok" or not previous.output_sha256:
        return False
    if previous.options != options:
        return False
    if stamp is not None and previous.input_stamp != stamp:
        return False
    out = Path(case.output)
    if folder:
        return out.is_dir() and folder_sha256(out) == previous.output_sha256
    return out.is_file() and file_sha256(out) == previous.output_sha256
