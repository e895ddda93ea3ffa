"""The model catalog: which models exist, where each is published, and whether one is here.

``Resources/weights/catalog.json`` (made by ``benchmarks/release.py``) lists every model: its
files, variant, size, sha256, licence, measured quality and the release URL it is published
at. The default model is bundled with the extension and the package; the others are release
assets that :mod:`hrinet.core.models.downloads` fetches on request. A model counts as installed
only when its weights match the catalog's size and sha256 and its sidecar is beside them, so
nothing altered or half-written is ever used. Catalog file names must be plain names
(:func:`plain_file_name`), so that nothing is ever written outside the cache folder, and an
entry that breaks this is refused when the catalog is read. :func:`find_model` is the one rule
that turns what a user typed into a model, for the command line and the Slicer panel alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from hrinet.core.errors import HRINetError
from hrinet.core.io.atomic import file_sha256
from hrinet.core.models.shipped import DEFAULT_NAME, default_weights_dirs

#: The catalog's file name, beside the bundled weights.
CATALOG_NAME = "catalog.json"
#: Names a model is also known by: ``hrinet``, the method that runs the default model.
ALIASES = {"hrinet": DEFAULT_NAME}
#: A sha256 as the catalog writes it (64 lowercase hex digits).
_SHA256 = re.compile(r"[0-9a-f]{64}")


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


def plain_file_name(name: object) -> bool:
    """Whether ``name`` names a file directly inside a folder: no folder part (``/`` or ``\\``),
    no drive (``:``), not absolute, not ``.``/``..`` and not hidden (partial files are), so
    that ``folder / name`` can never lead outside ``folder``."""
    return isinstance(name, str) and bool(name) and name == name.strip() and \
        not name.startswith(".") and not any(c in name for c in "/\\:\0")


def check_model(model: CatalogModel, where: str = "the model catalog") -> None:
    """Refuse (one line) a catalog entry whose file names could write outside the cache folder
    or whose size and sha256 cannot describe a file."""
    for name in (model.file, model.sidecar):
        if not plain_file_name(name):
            raise HRINetError(f"{where} names the file {name!r} for model {model.name!r}, which "
                              "is not a plain file name (a folder, drive or leading dot in it "
                              "would write outside the model cache); reinstall hrinet")
    if isinstance(model.size, bool) or not isinstance(model.size, int) or model.size <= 0:
        raise HRINetError(f"{where} gives model {model.name!r} the size {model.size!r}, not a "
                          "positive number of bytes; reinstall hrinet")
    for sha in (model.sha256, model.sidecar_sha256):
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise HRINetError(f"{where} gives model {model.name!r} the sha256 {sha!r}, not 64 "
                              "hex digits; reinstall hrinet")


def load_catalog(path: Optional[Path] = None) -> List[CatalogModel]:
    """Every model of the catalog, in its order (the default first); an entry whose file names
    are not plain names (``../x``, ``/x``, ``a/b``) is refused here, before anything is written."""
    path = path or catalog_path()
    if path is None:
        raise HRINetError("no model catalog (catalog.json) was found beside the weights; "
                          "reinstall hrinet")
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))["models"]
        models = [CatalogModel(**e) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HRINetError(f"the model catalog {path} is damaged ({exc}); reinstall hrinet") from None
    for model in models:
        check_model(model, where=f"the model catalog {path}")
    return models


def find_model(name: str, catalog: Optional[List[CatalogModel]] = None,
               option: Optional[str] = None) -> CatalogModel:
    """The catalog model ``name`` means, the one rule for the command line and the panel: a
    model's name or file, else the first model of that variant (the default model first), else
    what :data:`ALIASES` names (``hrinet``: the default model), else the one model whose name or
    variant starts with ``name``. Surrounding blanks are ignored. An empty name, a start shared
    by several models and an unknown name are each refused in one line that lists the valid
    names; ``option`` (``--get``) is the option an empty name was given to."""
    catalog = catalog if catalog is not None else load_catalog()
    names = ", ".join(m.name for m in catalog)
    given = name.strip() if isinstance(name, str) else ""
    if not given:
        needs = f"{option} needs" if option else "choosing a model needs"
        raise HRINetError(f"{needs} a model name; choose one of: {names}")
    for m in catalog:
        if given in (m.name, m.file):
            return m
    for m in catalog:
        if given == m.variant:
            return m
    if given in ALIASES:
        for m in catalog:
            if m.file == ALIASES[given]:
                return m
    matches = [m for m in catalog if m.name.startswith(given) or m.variant.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        which = ", ".join(m.name if m.name.startswith(given) else f"{m.name} (variant {m.variant})"
                          for m in matches)
        raise HRINetError(f"model name {given!r} is ambiguous: it starts {which}; give one of "
                          "them in full")
    raise HRINetError(f"no model {given!r} in the catalog; choose one of: {names}")


def installed_path(model: CatalogModel) -> Optional[Path]:
    """Where ``model``'s weights are, intact (sha256 as the catalog says, sidecar beside), or
    None. Bundled weights are checked like downloaded ones."""
    for folder in default_weights_dirs():
        path = folder / model.file
        if path.is_file() and (folder / model.sidecar).is_file() and \
                path.stat().st_size == model.size and file_sha256(path) == model.sha256:
            return path
    return None
