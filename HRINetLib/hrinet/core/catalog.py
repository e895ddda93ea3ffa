"""The model catalog and verified downloads, on explicit request only.

``Resources/weights/catalog.json`` (made by ``benchmarks/release.py``) lists every model: its
files, variant, size, sha256, licence, measured quality and the release URL it is published at.
The default model is bundled with the extension and the package; the others are release assets
that ``hrinet models --get NAME`` (or the panel's *Download*) fetches into the user's cache
folder. A download is written to a hidden partial file, checked against the catalog's sha256 and
only then moved into place, so nothing half-written or altered is ever used; what is present
and intact is never fetched again. Nothing here runs unless the user asks for it.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from hrinet.core.atomic import atomic_write
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.shipped import cache_dir, default_weights_dirs

#: The catalog's file name, beside the bundled weights.
CATALOG_NAME = "catalog.json"
#: Bytes read per step of a download (progress and cancel are checked between them).
CHUNK = 1 << 20
#: Seconds without a byte before a download is given up.
TIMEOUT_S = 60


@dataclass(frozen=True)
class CatalogModel:
    """One model of the catalog: its weights file and sidecar, and where they are published."""

    name: str  # the weights file's stem, e.g. "hrinet-variant-acai"
    variant: str
    file: str
    size: int
    sha256: str
    sidecar: str
    sidecar_sha256: str
    url: str  # the release folder the files are published in (ends with "/")
    licence: str
    quality: str
    bundled: bool

    @property
    def files(self):
        """``(file name, size or None, sha256)`` of the weights and the sidecar."""
        return ((self.file, self.size, self.sha256), (self.sidecar, None, self.sidecar_sha256))


def catalog_path() -> Optional[Path]:
    """The first ``catalog.json`` among the weights folders (checkout, package, extension)."""
    for folder in default_weights_dirs():
        if (folder / CATALOG_NAME).is_file():
            return folder / CATALOG_NAME
    return None


def load_catalog(path: Optional[Path] = None) -> List[CatalogModel]:
    """Every model of the catalog, in its order (the default first)."""
    path = path or catalog_path()
    if path is None:
        raise HRINetError("no model catalog (catalog.json) was found beside the weights; "
                          "reinstall hrinet")
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))["models"]
        return [CatalogModel(**e) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HRINetError(f"the model catalog {path} is damaged ({exc}); reinstall hrinet") from None


def find_model(name: str, catalog: Optional[List[CatalogModel]] = None) -> CatalogModel:
    """The catalog model called ``name`` (its name or file), else the first of ``name``'s
    variant (the default model first: ``hrinet-flow`` is the bundled default)."""
    catalog = catalog if catalog is not None else load_catalog()
    for m in catalog:
        if name in (m.name, m.file):
            return m
    for m in catalog:
        if name == m.variant:
            return m
    names = ", ".join(m.name for m in catalog)
    raise HRINetError(f"no model {name!r} in the catalog; choose one of: {names}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def installed_path(model: CatalogModel) -> Optional[Path]:
    """Where ``model``'s weights are, intact (sha256 as the catalog says, sidecar beside), or
    None. Bundled weights are checked like downloaded ones."""
    for folder in default_weights_dirs():
        path = folder / model.file
        if path.is_file() and (folder / model.sidecar).is_file() and \
                path.stat().st_size == model.size and sha256_file(path) == model.sha256:
            return path
    return None


def _download(url: str, target: Path, size: Optional[int], sha256: str, what: str,
              progress: Optional[Callable[[int, int], None]],
              cancel: Optional[Callable[[], bool]]) -> None:
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        raise HRINetError(f"{what} is not at {url} (HTTP {exc.code}); check the release or "
                          "--from") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HRINetError(f"cannot reach {url} ({reason}); check the network, or download the "
                          f"file by hand into {cache_dir()}") from None
    expected = size or int(response.headers.get("Content-Length") or 0)
    digest, done = hashlib.sha256(), 0
    with response, atomic_write(target, what=what) as tmp:
        with open(tmp, "wb") as f:
            while True:
                if cancel is not None and cancel():
                    raise Cancelled(f"download of {what} cancelled; nothing was kept")
                try:
                    block = response.read(CHUNK)
                except (OSError, ValueError) as exc:  # a connection cut mid-file
                    raise HRINetError(f"the download of {what} was cut off after {done} bytes "
                                      f"({exc}); run the command again") from None
                if not block:
                    break
                f.write(block)
                digest.update(block)
                done += len(block)
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
                cancel: Optional[Callable[[], bool]] = None) -> Path:
    """Make ``model`` present: the weights path, downloaded into :func:`cache_dir` from its
    release URL (or ``source``, a URL or a folder holding the release assets) only when no
    intact copy is present. Raises a one-line :class:`HRINetError` for every failure; nothing
    that failed its sha256 or was cut off is left where weights are looked for."""
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
    # the sidecar first: the weights file is what marks the model as present
    for name, size, sha256 in reversed(model.files):
        target = folder / name
        if target.is_file() and sha256_file(target) == sha256:
            continue
        _download(base + name, target, size, sha256, name, progress if name == model.file
                  else None, cancel)
    return folder / model.file
