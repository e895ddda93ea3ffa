"""Verified model downloads, on explicit request only.

``hrinet models --get NAME`` (or the panel's *Download*) fetches a model of the catalog
(:mod:`hrinet.core.models.catalog`) from its release URL into the user's cache folder
(:func:`~hrinet.core.models.shipped.cache_dir`). A download is written to a hidden partial file,
checked against the catalog's sha256 and only then moved into place, so nothing half-written or
altered is ever used; what is present and intact is never fetched again. A download reads no
more than the catalog's size (a sidecar no more than :data:`SIDECAR_LIMIT`) and ends within a
deadline, so a server that sends without end, or drips, can neither fill the disk nor hang the
command. The partial file's name says which process writes it, so one left by a killed download
is recognised and removed by the next ``hrinet models`` (:func:`remove_stale_downloads`) while a
download in progress is left alone. Nothing here runs unless the user asks for it.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, List, Optional

from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.io.atomic import atomic_write, file_sha256
from hrinet.core.io.temp_names import TAG_PATTERN, host_name, left_by_dead_writer, process_alive
from hrinet.core.models.catalog import (
    CatalogModel,
    check_model,
    installed_path,
    plain_file_name,
)
from hrinet.core.models.shipped import cache_dir

#: Bytes read per step of a download (progress and cancel are checked between them).
CHUNK = 1 << 20
#: Seconds without a byte before a download is given up.
TIMEOUT_S = 60
#: Seconds a whole download (weights and sidecar) may take before it is given up (``hrinet
#: models --get --deadline``): a model of a few MB needs well under a minute on any working
#: connection, so a server that drips bytes is stopped instead of waited on without end.
DEADLINE_S = 1800.0
#: The most bytes a sidecar may have (the catalog gives no size for it; sidecars are tens of kB).
SIDECAR_LIMIT = 4 << 20
#: Age in seconds after which a download's partial file is taken as left over whatever its
#: writer (a process on another machine sharing the cache, or a reused process id).
STALE_PARTIAL_S = 24 * 3600.0
#: What follows ``.NAME.`` in a download's partial file: the writer's tag
#: (:mod:`hrinet.core.io.temp_names`), or the untagged and ``.PID.HOST.download`` forms of
#: earlier versions.
_PARTIAL_TAG = re.compile(rf"(?:{TAG_PATTERN}\.)?[A-Za-z0-9_]+\.partial"
                          r"(?:\.(?P<pid>\d+)\.(?P<host>[A-Za-z0-9-]*)\.download)?")


def remove_stale_downloads(catalog: Iterable[CatalogModel], folder: Optional[Path] = None,
                           now: Optional[float] = None) -> List[Path]:
    """Remove the partial files that killed downloads left in the cache ``folder`` (default
    :func:`cache_dir`); returns them.

    A SIGKILL or power loss gives a download no chance to remove its partial file. Only hidden
    partials of the catalog's own file names are considered (``.NAME.TAG.XXXXXXXX.partial``, and
    earlier versions' ``.NAME.XXXXXXXX.partial[.PID.HOST.download]``), only plain files, and
    only when left over:
    written by a process of this machine that no longer exists, or older than
    :data:`STALE_PARTIAL_S`. A download in progress, and every other file, is left alone."""
    folder = cache_dir() if folder is None else Path(folder)
    names = {n for m in catalog for n in (m.file, m.sidecar) if plain_file_name(n)}
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no cache yet
        return removed
    host = host_name()
    for entry in entries:
        name = next((n for n in names if entry.name.startswith(f".{n}.")), None)
        tag = None if name is None else _PARTIAL_TAG.fullmatch(entry.name[len(name) + 2:])
        if tag is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            gone = left_by_dead_writer(entry.name) or (
                tag["pid"] is not None and tag["host"] == host
                and not process_alive(int(tag["pid"])))
            if gone or age > STALE_PARTIAL_S:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # vanished meanwhile, or not ours to remove: leave it
            continue
    return removed


def _too_slow(what: str, deadline_s: float, done: int, expected: int) -> HRINetError:
    of = f" of {expected}" if expected else ""
    return HRINetError(f"the download of {what} did not finish within {deadline_s:g} s "
                       f"({done}{of} bytes arrived; the server is too slow or stalled); nothing "
                       "was kept; check the network and run again, or allow more time with "
                       "--deadline SECONDS")


def _download(url: str, target: Path, size: Optional[int], sha256: str, what: str,
              progress: Optional[Callable[[int, int], None]],
              cancel: Optional[Callable[[], bool]], deadline: float, deadline_s: float) -> None:
    """Fetch ``url`` into ``target`` through a partial file: at most ``size`` bytes (a sidecar,
    with no size: :data:`SIDECAR_LIMIT`), done by the monotonic time ``deadline``, sha256
    checked before the move."""
    limit = size if size is not None else SIDECAR_LIMIT
    if time.monotonic() >= deadline:
        raise _too_slow(what, deadline_s, 0, size or 0)
    wait = min(TIMEOUT_S, max(0.1, deadline - time.monotonic()))
    try:
        response = urllib.request.urlopen(url, timeout=wait)
    except urllib.error.HTTPError as exc:
        raise HRINetError(f"{what} is not at {url} (HTTP {exc.code}); check the release or "
                          "--from") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if time.monotonic() >= deadline:
            raise _too_slow(what, deadline_s, 0, size or 0) from None
        reason = getattr(exc, "reason", exc)
        raise HRINetError(f"cannot reach {url} ({reason}); check the network, or download the "
                          f"file by hand into {cache_dir()}") from None

    def too_large() -> HRINetError:
        bound = f"the catalog's {size} bytes" if size is not None else \
            f"{SIDECAR_LIMIT} bytes, more than any sidecar"
        return HRINetError(f"{what} from {url} is larger than {bound}; it was not kept (not the "
                           "file the catalog names); check the release or --from")

    try:
        announced = int(response.headers.get("Content-Length") or 0)
    except (TypeError, ValueError):
        announced = 0
    if announced > limit:
        response.close()
        raise too_large()
    expected = size or announced
    digest, done = hashlib.sha256(), 0
    # read1 returns what has arrived (read would wait for a whole block, past any deadline)
    read = getattr(response, "read1", response.read)
    with response, atomic_write(target, what=what) as tmp:  # its name says who writes it
        with open(tmp, "wb") as f:
            while True:
                if cancel is not None and cancel():
                    raise Cancelled(f"download of {what} cancelled; nothing was kept")
                if time.monotonic() >= deadline:
                    raise _too_slow(what, deadline_s, done, expected)
                try:
                    block = read(min(CHUNK, limit - done + 1))  # one byte more shows an excess
                except (OSError, ValueError) as exc:  # a connection cut mid-file, or stalled
                    if time.monotonic() >= deadline:
                        raise _too_slow(what, deadline_s, done, expected) from None
                    raise HRINetError(f"the download of {what} was cut off after {done} bytes "
                                      f"({exc}); run the command again") from None
                if not block:
                    break
                done += len(block)
                if done > limit:
                    raise too_large()
                f.write(block)
                digest.update(block)
                if progress is not None:
                    progress(done, expected)
        if expected and done != expected:
            raise HRINetError(f"the download of {what} was cut off ({done} of {expected} bytes); "
                              "run the command again")
        if digest.hexdigest() != sha256:
            raise HRINetError(f"{what} downloaded from {url} does not match the catalog's sha256; "
                              "it was not kept (a changed or damaged file)")


def fetch_model(model: CatalogModel, source: Optional[str] = None,
                progress: Optional[Callable[[int, int], None]] = None,
                cancel: Optional[Callable[[], bool]] = None,
                deadline_s: float = DEADLINE_S) -> Path:
    """Make ``model`` present: the weights path, downloaded into :func:`cache_dir` from its
    release URL (or ``source``, a URL or a folder holding the release assets) only when no
    intact copy is present, within ``deadline_s`` seconds for the whole download. Raises a
    one-line :class:`HRINetError` for every failure; nothing that failed its sha256, was cut
    off, was too large or too slow is left where weights are looked for. Partial files that
    killed downloads of this model left in the cache are removed first."""
    check_model(model)
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, (int, float)) or \
            not math.isfinite(deadline_s) or deadline_s <= 0:
        raise HRINetError(f"--deadline must be a positive number of seconds, not {deadline_s!r}")
    deadline = time.monotonic() + deadline_s
    present = installed_path(model)
    if present is not None:
        return present
    base = model.url if source is None else source
    if "://" not in base:  # a folder of assets (e.g. dist/assets of `make release`)
        base = Path(base).resolve().as_uri()
    base = base if base.endswith("/") else base + "/"
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HRINetError(f"cannot create the model cache {folder} ({exc}); set HRINET_CACHE "
                          "to a writable folder") from None
    remove_stale_downloads([model], folder)
    # the sidecar first: the weights file is what marks the model as present
    for name, size, sha256 in reversed(model.files):
        target = folder / name
        if target.is_file() and file_sha256(target) == sha256:
            continue
        _download(base + name, target, size, sha256, name, progress if name == model.file
                  else None, cancel, deadline, deadline_s)
    return folder / model.file
