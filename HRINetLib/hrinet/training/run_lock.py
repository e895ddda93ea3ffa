"""One process at a time in a run folder: a second ``hrinet train --resume`` (or adapt) on the
same folder would interleave its log with the first's and race it for the checkpoint.

The lock is an advisory ``flock`` on ``.hrinet-run.lock`` in the folder, held for the run's
life: the operating system releases it when the process ends however it ends (a SIGKILL leaves
no stale lock to clean up). Where ``fcntl`` is missing (Windows) runs are not locked.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hrinet.core.errors import HRINetError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".hrinet-run.lock"


@contextmanager
def run_lock(folder) -> Iterator[None]:
    """Hold the run folder's lock for the ``with`` block; one line if another process has it."""
    folder = Path(folder)
    if fcntl is None or (folder.exists() and not folder.is_dir()):
        yield  # no locking here; a file in its place is refused by the trainer
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise HRINetError(f"{folder} is in use by another run ({holder}); wait for it to "
                              "end or stop it, then retry") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
