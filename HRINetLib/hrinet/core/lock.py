"""One process at a time on a folder's work: an advisory ``flock`` on a lock file, held for the
work's life. The operating system releases it when the process ends however it ends (a SIGKILL
leaves no stale lock, only an empty-looking file that the next run takes over). The file is
removed when the work ends normally; a file at the lock's path that is not such a lock (a
user's, of other content) is never truncated or removed: the work is refused instead. Where
``fcntl`` is missing (Windows) nothing is locked.
"""

from __future__ import annotations

import errno
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hrinet.core.errors import HRINetError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


#: The most characters a lock file of hrinet holds (``process PID`` and spaces).
LOCK_TEXT_LIMIT = 200
#: What a lock file holds: who holds it (or nothing, while it is being taken).
_CONTENT = re.compile(r"(process \d+)?")


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
    """Hold the lock file ``path`` for the ``with`` block, and remove it after. If another
    process holds it: one line, ``busy`` followed by who holds it and what to do. If ``path`` is
    some other file (not a lock's content): one line, and the file is left as it is."""
    path = Path(path)
    if fcntl is None:
        yield
        return
    not_a_lock = HRINetError(f"{path} exists and is not a lock file of hrinet; move it away "
                             "(this work keeps its lock there), then retry")
    for _ in range(20):  # taken over between open and flock by a remover: open it again
        if os.path.lexists(path) and (path.is_symlink() or not path.is_file()):
            raise not_a_lock  # a link, folder or pipe: never followed, opened or replaced
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0),
                         0o666)
        except OSError as e:
            if e.errno == errno.ELOOP or os.path.lexists(path) and not path.is_file():
                raise not_a_lock from None  # made a link or folder between the check and open
            raise HRINetError(f"cannot create the lock file {path}: {e.strerror}; check that "
                              "its folder exists and is writable, then retry") from None
        f = os.fdopen(fd, "a+")
        try:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                holder = f.read(200).strip() or "another process"
                raise HRINetError(f"{busy} ({holder}); wait for it to end or stop it, then "
                                  "retry") from None
            try:
                same = os.path.samestat(os.fstat(f.fileno()), os.stat(path, follow_symlinks=False))
            except OSError:
                same = False
            if not same:
                continue  # the holder before us removed it as we opened it
            f.seek(0)
            text = f.read(LOCK_TEXT_LIMIT + 1)  # a lock holds one short line; more is a user's
            if len(text) > LOCK_TEXT_LIMIT or not _CONTENT.fullmatch(text.strip()):
                raise not_a_lock
            f.seek(0)
            f.truncate()
            f.write(f"process {os.getpid()}")
            f.flush()
            try:
                yield
            finally:
                try:
                    os.unlink(path)  # while still held: a waiter then opens a new file
                except OSError:
                    pass
            return
        finally:
            f.close()  # closing releases the flock
    raise HRINetError(f"{busy}: its lock file {path} keeps changing; retry")
