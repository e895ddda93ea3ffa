"""What a killed batch leaves behind, and removing only what it can prove it left.

A write is done beside its file under a hidden temporary name that names its writer
(``.NAME.TAG.XXXXXXXX.partial`` with the file's own extension, ``TAG`` being ``hrinet-PID-HOST``
of :mod:`hrinet.core.io.temp_names`; for a volume the writer's own ``..NAME.TAG.XXXXXXXX.partial.
EXT.TAG.YYYYYYYY.partial.EXT`` inside it; a derived DICOM series is a folder
``.NAME.TAG.XXXXXXXX.partial`` of ``IMG00001.dcm`` files, and an earlier series moved aside
``.NAME.TAG.XXXXXXXX.old``). SIGKILL or a power loss gives the writer no chance to remove them.
The proof that such an entry is a killed write of the batch's: its name is exactly the temporary
name of a file the batch writes (an output of its cases or its results table), every writer tag
in it names this machine and a process that is gone, and a folder holds only what the batch
writes there. Anything else (a user's ``.a.nrrd.abcdefgh.partial``, or one of a run still
going) is left alone. Beside the tables and the outputs the tables record, a batch with no
results table in its folder yet removes nothing; just before writing a case's output it removes
that output's own proven leftovers (a killed ``interpolate`` of the same file leaves them too).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Sequence, Set

from hrinet.core.cohort.cases import Case
from hrinet.core.io import folder_sha256
from hrinet.core.io.temp_names import RANDOM_PATTERN, left_by_dead_writer, partial_name_pattern

if TYPE_CHECKING:
    from hrinet.core.cohort.ledger import Ledger

#: The files of a derived DICOM series while it is written.
_SERIES_FILE = re.compile(r"^IMG\d{5}\.dcm$")


def _only_series_files(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but files a derived series is written as."""
    try:
        return all(e.is_file(follow_symlinks=False) and _SERIES_FILE.match(e.name)
                   for e in os.scandir(folder))
    except OSError:
        return False


#: The name of the file a temporary name is written for: after one dot, or two (nested).
_CANDIDATES = (re.compile(rf"^\.(.+?)\.{RANDOM_PATTERN}\.(?:partial|old)"),
               re.compile(rf"^\.\.(.+?)\.{RANDOM_PATTERN}\.partial"))


def _is_stale(entry: os.DirEntry, name: str,
              owned_folder: Optional[Callable[[Path], bool]]) -> bool:
    """Whether ``entry`` is what an interrupted write of the file ``name`` left."""
    if entry.is_symlink() or not left_by_dead_writer(entry.name):
        return False  # a link is never a temporary file of ours; a live or foreign one not yet
    path = Path(entry.path)
    if partial_name_pattern(name).fullmatch(entry.name):
        return entry.is_file() or (entry.is_dir() and _only_series_files(path))
    old = re.compile(rf"^\.{re.escape(name)}\.{RANDOM_PATTERN}\.old$")
    if old.match(entry.name) and entry.is_dir() and owned_folder is not None:
        inside = os.listdir(path)
        return not inside or (inside == ["previous"] and owned_folder(path / "previous"))
    return False


def stale_partials(output: Path,
                   owned_folder: Optional[Callable[[Path], bool]] = None) -> List[Path]:
    """The entries beside ``output`` that an interrupted write of it left: temporary files of
    exactly its names, temporary series folders holding only series files and, where
    ``owned_folder`` proves the folder moved aside is the batch's own output, ``.old`` folders.
    Call it only for an output no running process is writing."""
    return _stale_in(Path(output).parent, {Path(output).name}, owned_folder)


def _stale_in(folder: Path, names: Set[str],
              owned_folder: Optional[Callable[[Path], bool]]) -> List[Path]:
    """:func:`stale_partials` of every file ``names`` of ``folder``, the folder read once."""
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".")]
    except OSError:
        return []
    found = []
    for e in entries:
        candidates = {m.group(1) for m in (c.match(e.name) for c in _CANDIDATES) if m}
        if any(_is_stale(e, n, owned_folder) for n in candidates & names):
            found.append(Path(e.path))
    return sorted(found)


def remove_partials(outputs: Iterable[Path],
                    owned_folder: Optional[Callable[[Path], bool]] = None) -> int:
    """Remove :func:`stale_partials` of every file of ``outputs`` (each folder read once);
    returns how many entries were removed."""
    folders: Dict[Path, Set[str]] = {}
    for output in outputs:
        folders.setdefault(Path(output).parent, set()).add(Path(output).name)
    gone = 0
    for folder, names in sorted(folders.items()):
        for path in _stale_in(folder, names, owned_folder):
            try:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                gone += 1
            except OSError:
                pass  # left for the next run; it never blocks a case
    return gone


def remove_left_by_killed_runs(table: Path, cases: Sequence[Case], every: Sequence[Case],
                               ledger: "Ledger", series: bool = False) -> int:
    """Remove what a killed run of a batch half-wrote, at the start of a rerun (under its
    table's lock): beside its ``table`` and the outputs of its shard's ``cases``, and beside
    outputs the tables record that no case of another shard (of ``every``) writes now; with
    ``series`` (output folders) also an earlier output folder moved aside whose fingerprint a
    table records. A folder with no results table of the batch yet (a first run) has nothing
    of its to remove. Returns how many entries were removed."""
    if not table.exists() and not ledger.rows:
        return 0
    mine = {c.key for c in cases}
    others = {os.path.normcase(os.path.realpath(c.output)) for c in every
              if c.output and c.key not in mine}
    outputs = {c.output for c in cases if c.output} | {
        row.output for row in ledger.rows.values()
        if row.output and os.path.normcase(os.path.realpath(row.output)) not in others}

    def owned_folder(folder: Path) -> bool:
        digest = folder_sha256(folder)
        return any(digest in hashes for hashes in ledger.owned.values())

    return remove_partials([table]) + remove_partials(
        [Path(o) for o in sorted(outputs)], owned_folder if series else None)
