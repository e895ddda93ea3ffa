"""Helpers the tests import (plain functions and paths; the fixtures are in conftest.py): the
real CT folder, a minimal DICOM series writer, the ``hrinet`` command in a subprocess and its
one-line errors, a Slicer volume node's geometry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
SHARED_CT = Path(os.environ.get("HRINET_SHARED_CT", REPO.parent / "shared" / "data" / "ct"))


def shared(name: str) -> Path:
    """Path of a real CT volume in ../shared/data/ct, skipping the test when it is absent."""
    p = SHARED_CT / name
    if not p.exists():
        pytest.skip(f"{p} not present (real CT lives beside the checkout, never in it)")
    return p


def write_dicom_series(folder: Path, positions, uid: str = "1.2.3.4", prefix: str = "s",
                       values=None, modality: str = "CT", description: str = "",
                       tags: dict = None, size: int = 8) -> None:
    """A minimal CT series of ``size`` x ``size`` slices (8 x 8 by default): one file per slice
    at ``positions`` (z in mm, or (x, y, z)), axial orientation, slice ``i`` filled with ``values[i]`` (default ``10 * i``); ``tags``: more
    header values, e.g. ``{"0010|0010": "Doe^Jane"}``."""
    folder.mkdir(exist_ok=True)
    for i, pos in enumerate(positions):
        x, y, z = (0.0, 0.0, float(pos)) if np.isscalar(pos) else pos
        value = 10 * i if values is None else values[i]
        img = sitk.GetImageFromArray(np.full((1, size, size), value, np.int16))
        header = {"0020|000e": uid, "0020|0013": str(i + 1), "0008|0060": modality,
                "0020|0032": f"{x}\\{y}\\{z}", "0020|0037": "1\\0\\0\\0\\1\\0",
                "0008|0018": f"{uid}.{i + 1}", "0020|000d": "1.2.3"}
        if description:
            header["0008|103e"] = description
        header.update(tags or {})
        for k, v in header.items():
            img.SetMetaData(k, v)
        w = sitk.ImageFileWriter()
        w.KeepOriginalImageUIDOn()
        w.SetFileName(str(folder / f"{prefix}{i:03d}.dcm"))
        w.Execute(img)


def fresh_clone(folder: Path) -> Path:
    """A fresh ``git clone`` of this checkout in ``folder``/fresh-clone (what a new user or CI
    starts from); the test is skipped where the tree is not a git checkout."""
    if not (REPO / ".git").exists():  # a folder, or a file in a worktree
        pytest.skip("not a git checkout: nothing to clone")
    clone = Path(folder) / "fresh-clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    return clone


def fill(folder: Path) -> None:
    """Write zeros to ``folder/filler`` until the file system refuses another byte."""
    with open(folder / "filler", "ab", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "hrinet.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(r, fragment):
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("hrinet: error:")]
    assert len(errors) == 1 and fragment in errors[0], r.stderr


SLICER_MODULE = Path(__file__).resolve().parents[2] / "HRINetSlicer"


def ijk_to_ras(node) -> np.ndarray:
    """A volume node's IJK-to-RAS matrix as an array."""
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
