"""Which cells of an earlier ``bench_stress.py`` table a new run may copy instead of measuring.

A ship decision compares a candidate with the shipped default cell by cell, so a copied cell
must be one this run would have measured alike. Each run writes ``settings.json`` beside its
``stress.csv`` after every block of cells: the settings, the code that measures (a sha256 of the
``hrinet`` packages a measurement runs and of ``bench_stress.py``), each model's weights
(sha256), each volume's block of voxels (sha256), the table's own sha256, and which methods were
not measured by it but copied on the caller's word. A cell is copied only where all of these agree:

- other settings or code: refused (measure again);
- a ``settings.json`` that does not describe the table beside it (a run stopped before its first
  block, a table edited since): refused;
- a model with other weights, a volume with other voxels: measured again;
- a table made before ``settings.json`` existed: the classical methods and the models named by
  ``--reuse-as``, on the caller's word (warned, and recorded as such in the new run's file);
- ``--reuse-as old=new``: a model taken under another name on the caller's word, refused where
  the earlier run's weights are known to differ, or for a classical method's name.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from hrinet.core.constants import CLASSICAL_METHODS as CLASSICAL
from hrinet.core.io.atomic import file_sha256
from hrinet.core.models.shipped import find_weights
from hrinet.core.volume import voxel_sha256

REPO = Path(__file__).resolve().parents[1]
#: What a measurement runs: these packages of the library (the CLI and training are not run).
MEASURING = ("core", "methods", "learned", "evaluation")
#: Besides them: the conditions' kernel and noise (hrinet.training.augment), and the script that
#: makes the conditions and cuts the blocks (relative to the repository).
MEASURING_FILES = ("HRINetLib/hrinet/training/augment.py", "benchmarks/bench_stress.py")
#: Settings keys about the table's contents rather than how it was measured.
RECORDS = ("weights", "volumes", "unverified", "table_sha256")


def code_id() -> str:
    """sha256 of the measuring sources (paths and bytes, in order)."""
    root = REPO / "HRINetLib" / "hrinet"
    files = sorted(p for d in MEASURING for p in (root / d).rglob("*") if p.is_file()
                   and "__pycache__" not in p.parts)
    files += [REPO / f for f in MEASURING_FILES]
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def volume_id(volume) -> str:
    """A block's voxels (:func:`hrinet.core.volume.voxel_sha256`) with its spacing."""
    return f"{voxel_sha256(volume.array)}|{tuple(volume.spacing)}"


def weights_id(path: Optional[str]) -> str:
    """sha256 of a weights file (``None``: the shipped default's)."""
    return file_sha256(Path(path) if path else find_weights())


def _fail(message: str) -> None:
    raise SystemExit(f"bench_stress.py: {message}")


class Reuse:
    """The cells of an earlier table this run may copy (empty when ``path`` is None)."""

    def __init__(self, path: Optional[Path], rename: str, settings: dict):
        self.path, self.rows, self.volumes = path, {}, None
        self.unverified: set = set()  # methods taken on the caller's word
        if path is None:
            return
        try:
            rename_map = dict(_pair(item) for item in rename.split(",") if item.strip())
            theirs = self._settings(path)
            self._check(path, theirs, settings, rename_map)
            self.rows = self._read(path, self._names(theirs, settings, rename_map))
        except OSError as e:
            _fail(f"--reuse {path}: {e.strerror or e}; give an earlier run's stress.csv")

    @staticmethod
    def _settings(path: Path) -> Optional[dict]:
        made = path.with_name("settings.json")
        if not made.is_file():
            return None
        try:
            theirs = json.loads(made.read_text(encoding="utf-8"))
        except ValueError:
            _fail(f"--reuse: {made} is not readable JSON; measure again instead")
        if theirs.get("table_sha256") != file_sha256(path):
            _fail(f"--reuse: {made} does not describe {path.name} beside it (a run stopped "
                  "before its first cells, or the table changed since); measure again instead")
        return theirs

    def _check(self, path: Path, theirs, settings: dict, rename: dict) -> None:
        if theirs is not None:
            differ = [k for k in settings if k not in RECORDS and theirs.get(k) != settings[k]]
            if differ:
                _fail(f"--reuse {path}: measured with other {', '.join(differ)} "
                      f"({', '.join(f'{k} {theirs.get(k)!r}' for k in differ)}); "
                      "measure again instead")
            self.volumes = theirs.get("volumes", {})
        for old, new in rename.items():
            if old in CLASSICAL or new in CLASSICAL:
                _fail(f"--reuse-as {old}={new}: the classical methods keep their names")
            if new not in settings["weights"]:
                _fail(f"--reuse-as {old}={new}: this run has no model {new}")
            known = (theirs or {}).get("weights", {})
            if theirs is not None and old not in known:
                _fail(f"--reuse-as {old}={new}: {path} has no model {old}")
            if old in known and known[old] != settings["weights"][new]:
                _fail(f"--reuse-as {old}={new}: {path}'s {old} had other weights than this "
                      f"run's {new}; leave it out to measure {new} again")
        if theirs is None:
            print(f"warning: {path.with_name('settings.json')} is missing; taking {path}'s "
                  "classical methods" + "".join(f" and {o} as {n}" for o, n in rename.items())
                  + " on your word that they were measured as this run measures", flush=True)

    def _names(self, theirs, settings: dict, rename: dict) -> Dict[str, str]:
        """Their method name -> this run's, for the methods that may be copied."""
        if theirs is None:
            self.unverified = set(CLASSICAL) | set(rename.values())
            return {**{c: c for c in CLASSICAL}, **rename}
        earlier = set(theirs.get("unverified", []))
        self.unverified = (earlier & set(CLASSICAL)) | set(rename.values())
        if earlier & set(CLASSICAL):
            print(f"warning: {path_note(theirs)} took {', '.join(sorted(earlier & set(CLASSICAL)))}"
                  " on its caller's word; so does this run", flush=True)
        same = {m: m for m, sha in settings["weights"].items()
                if m not in earlier and theirs.get("weights", {}).get(m) == sha}
        return {**{c: c for c in CLASSICAL}, **same, **rename}

    @staticmethod
    def _read(path: Path, names: Dict[str, str]) -> dict:
        rows = {}
        with open(path, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                try:
                    method = names.get(r["method"])
                    if method is not None:
                        rows[(r["volume"], r["condition"], int(r["factor"]), method)] = dict(
                            r, factor=int(r["factor"]), method=method,
                            psnr_hu=float(r["psnr_hu"]), ssim_win=float(r["ssim_win"]))
                except (KeyError, TypeError, ValueError):
                    _fail(f"--reuse {path}: not a bench_stress.py table (a row without "
                          "volume, condition, factor, method, psnr_hu, ssim_win)")
        return rows

    def cells(self, volume: str, voxels: str, condition: str, factors: Iterable[int],
              methods: Iterable[str]) -> Tuple[List[str], List[dict]]:
        """The methods copied for one volume and condition (held at every factor, the voxels
        the same where the earlier run recorded them) and their rows."""
        factors = list(factors)
        if self.volumes is not None and self.volumes.get(volume) != voxels:
            return [], []
        copied = [m for m in methods
                  if all((volume, condition, k, m) in self.rows for k in factors)]
        return copied, [self.rows[(volume, condition, k, m)] for k in factors for m in copied]


def path_note(theirs: dict) -> str:
    return f"the earlier run (code {str(theirs.get('code'))[:12]})"


def _pair(item: str) -> Tuple[str, str]:
    old, eq, new = item.strip().partition("=")
    if not (old and eq and new):
        _fail(f"--reuse-as {item.strip()!r}: give OLD=NEW, e.g. new=hrinet")
    return old, new


def write_settings(out: Path, settings: dict, volumes: dict, unverified: set,
                   table: Path) -> None:
    """``settings.json`` for the table just written (replaced whole, after the table)."""
    record = dict(settings, volumes=volumes, unverified=sorted(unverified),
                  table_sha256=file_sha256(table))
    part = out / "settings.json.part"
    part.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    part.replace(out / "settings.json")
