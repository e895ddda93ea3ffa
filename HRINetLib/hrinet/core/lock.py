"""One process at a time on a folder's work: an advisory ``flock`` on a lock file, held for the
work's life. The operating system releases it when the process ends however it ends (a SIGKILL
leaves no stale lock to clean up). Where ``fcntl`` is missing (Windows) nothing is locked.
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


def is_locked(path: Path) -> bool:
    """Whether another process holds the lock file ``path`` now."""
    if fcntl is None or not Path(path).is_file():
        return False
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return False


@contextmanager
def exclusive_lock(path: Path, busy: str) -> Iterator[None]:
    """Hold the lock file ``path`` for the ``with`` block. If another process holds it: one line,
    ``busy`` followed by who holds it and what to do."""
    path = Path(path)
    if fcntl is None:
        yield
        return
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise HRINetError(f"{busy} ({holder}); wait for it to end or stop it, then "
                              "retry") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
