"""One way to write a file: beside it, verified, then moved into place in one step.

Every writer of a result (volumes, weights and sidecars, checkpoints, metrics and results
tables, figures) goes through :func:`atomic_write`, so a failed, partial or interrupted write can
never be renamed into place, and a file that is there was written completely. The training
logs that grow line by line (``log.csv``, ``val.jsonl``) are appended to instead.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import shutil
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from hrinet.core.errors import HRINetError, first_line
from hrinet.core.io.temp_names import left_by_dead_writer, partial_name_pattern, temp_prefix

PathLike = Union[str, os.PathLike]


def current_umask() -> int:
    """The process's umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: PathLike, overwrite: bool = True,
                 verify: Optional[Callable[[Path], None]] = None,
                 what: str = "", suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success move it to ``path``.

    - The temporary file is hidden and names its writer (``.NAME.hrinet-PID-HOST.XXXX.partial``:
      :mod:`hrinet.core.io.temp_names`), removed on any failure, exception, Ctrl-C or (in the
      ``hrinet`` command) SIGTERM.
    - ``verify(tmp)`` runs before the move and raises if what was written is not complete (some
      writers report a full disk only on stderr and return normally).
    - Permissions follow the umask like any other new file (``mkstemp`` alone makes 0600).
    - With ``overwrite=False`` the move never replaces a file: if another process created
      ``path`` meanwhile, this write fails with a one-line error instead of replacing it.

    Args:
        path: the final file.
        overwrite: replace an existing file.
        verify: called with the temporary path after writing; raises to refuse it.
        what: a few words naming the file for error messages (default: its path).
        suffix: ending of the temporary file after ``.partial`` (writers that choose the format
            from the extension need the real one, e.g. ``.nii.gz``).

    Raises:
        HRINetError: the write, the check or the move failed; nothing was left at ``path``
            (and an existing file there is unchanged).

    Example:
        >>> with atomic_write("out.csv") as tmp:  # doctest: +SKIP
        ...     tmp.write_text("a,b\\n")
    """
    path = Path(path)
    label = what or str(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path.name),
                                    suffix=".partial" + suffix, dir=folder)
    except OSError as exc:
        raise HRINetError(f"cannot write {label} ({first_line(exc)}); check that the folder "
                          "exists and is writable") from None
    os.close(fd)
    tmp = Path(name)
    mode = 0o666 & ~current_umask()
    try:
        os.chmod(tmp, mode)
        yield tmp
        os.chmod(tmp, mode)  # some writers (safetensors) replace the file with a 0600 one
        if verify is not None:
            try:
                verify(tmp)
            except HRINetError as exc:
                raise HRINetError(f"cannot write {label}: {exc}") from None
        _move_into_place(tmp, path, overwrite, label)
    except HRINetError:
        raise
    except Exception as exc:
        if not _is_write_error(exc):
            raise
        # SimpleITK's RuntimeError names a C++ source line, not the cause: say what is known
        reason = "" if isinstance(exc, RuntimeError) else f" ({first_line(exc)})"
        raise HRINetError(f"cannot write {label}{reason}; {_free_space(folder)} check free disk "
                          "space and write permission; nothing was written") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _is_write_error(exc: Exception) -> bool:
    """Errors that writers raise for I/O trouble (safetensors has its own exception class)."""
    return isinstance(exc, (OSError, RuntimeError, ValueError)) or \
        type(exc).__name__ == "SafetensorError"


def _free_space(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f"{free / 2**20:.0f} MB free there;" if free < 2**30 else ""


def _move_into_place(tmp: Path, path: Path, overwrite: bool, label: str) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:  # a hard link fails if path exists: no window between a check and the rename
        os.link(tmp, path)
    except FileExistsError:
        raise HRINetError(f"{label} appeared while this was being written (another run?); "
                          "it was left as it is and nothing was written; choose another "
                          "name or pass --overwrite") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists():  # file systems without hard links: the best check they allow
            raise HRINetError(f"{label} appeared while this was being written (another run?); "
                              "nothing was written; choose another name or pass "
                              "--overwrite") from None
        os.replace(tmp, path)
    else:
        tmp.unlink()


def write_text(path: PathLike, text: str, overwrite: bool = True, what: str = "") -> Path:
    """Write ``text`` (UTF-8) atomically; read back and compared before the move."""
    data = text.encode("utf-8")

    def verify(tmp: Path) -> None:
        if tmp.read_bytes() != data:
            raise HRINetError("the text read back differs from what was written (disk full?); "
                              "free disk space and retry")

    with atomic_write(path, overwrite=overwrite, verify=verify, what=what) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def complete_png(tmp: Path) -> None:
    """A ``verify`` for PNG figures: the file ends with the PNG end chunk."""
    with open(tmp, "rb") as f:
        head = f.read(8)
        f.seek(max(0, tmp.stat().st_size - 12))
        tail = f.read()
    if head != b"\x89PNG\r\n\x1a\n" or not tail.endswith(b"IEND\xaeB`\x82"):
        raise HRINetError("the figure was cut off (disk full?); free disk space and retry")


def complete_safetensors(tmp: Path) -> None:
    """A ``verify`` for safetensors files: the header parses and the data it names is all there."""
    size = tmp.stat().st_size
    with open(tmp, "rb") as f:
        raw = f.read(8)
        n = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
        try:
            header = json.loads(f.read(n)) if 0 < n <= size - 8 else None
        except ValueError:
            header = None
    ends = [int(v["data_offsets"][1]) for k, v in (header or {}).items() if k != "__metadata__"]
    if header is None or size != 8 + n + max(ends, default=0):
        raise HRINetError("the tensors were cut off (disk full?); free disk space and retry")


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_sha256(folder: PathLike) -> str:
    """One digest for a folder's files: sha256 over their names and contents' sha256, in name
    order (what a batch records as its output's fingerprint)."""
    h = hashlib.sha256()
    root = Path(folder)
    for path in sorted(root.rglob("*")):  # any entry added (a subfolder, a link) changes it
        name = os.fsencode(str(path.relative_to(root))).decode("utf-8", "backslashreplace")
        if path.is_symlink() or not path.is_file():
            h.update(f"{name}\0{'link' if path.is_symlink() else 'folder'}\n".encode("utf-8"))
        else:
            h.update(f"{name}\0{file_sha256(path)}\n".encode("utf-8"))
    return h.hexdigest()


def remove_stale_partials(path: PathLike) -> int:
    """Remove the hidden temporary files an interrupted :func:`atomic_write` of ``path`` left
    (SIGKILL or power loss give it no chance to clean up); returns how many. Only entries whose
    name proves it are removed: exactly a temporary name of ``path``
    (:func:`hrinet.core.io.temp_names.partial_name_pattern`) whose writers all ran here and are
    gone (:func:`~hrinet.core.io.temp_names.left_by_dead_writer`); a user's file of a similar
    name never is."""
    path = Path(path)
    gone = 0
    name = glob.escape(path.name)  # a name holding * ? [ ] matches only itself
    found = set(path.parent.glob(f".{name}.hrinet-*.partial*")) | \
        set(path.parent.glob(f"..{name}.hrinet-*.partial*"))  # a writer's own partial inside ours
    exact = partial_name_pattern(path.name)
    for stale in sorted(found):
        if stale.is_symlink() or not stale.is_file() or not exact.fullmatch(stale.name) \
                or not left_by_dead_writer(stale.name):
            continue
        try:
            stale.unlink()
            gone += 1
        except OSError:
            pass
    return gone
