"""One process at a time in a run folder: a second ``hrinet train --resume`` (or adapt) on the
same folder would interleave its log with the first's and race it for the checkpoint.

The lock is an advisory ``flock`` on ``.hrinet-run.lock`` in the folder, held for the run's
life: the operating system releases it when the process ends however it ends (a SIGKILL leaves
no stale lock to clean up). Where ``fcntl`` is missing (Windows) runs are not locked. The lock
file is removed when the run ends, and so is the run folder when the lock made it and it is
still empty (a run refused before writing anything).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hrinet.core.io.paths import make_folder
from hrinet.core.lock import exclusive_lock

LOCK_NAME = ".hrinet-run.lock"


@contextmanager
def run_lock(folder) -> Iterator[None]:
    """Hold the run folder's lock for the ``with`` block; one line if another process has it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        yield  # a file in its place is refused by the trainer
        return
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    make_folder(folder)  # one line where it cannot be (a file in the way, read-only)
    try:
        with exclusive_lock(folder / LOCK_NAME, f"{folder} is in use by another run"):
            yield
    finally:  # a refused run leaves no empty folder it made (its lock file is gone already)
        for p in made:
            try:
                p.rmdir()  # only while empty: a run's files, or another run's lock, keep it
            except OSError:
                break
