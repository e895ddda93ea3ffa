"""Shared fixtures: synthetic phantoms for unit tests, the real CT folder when it is present."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hrinet.core.phantom import make_phantom

REPO = Path(__file__).resolve().parents[2]
SHARED_CT = Path(os.environ.get("HRINET_SHARED_CT", REPO.parent / "shared" / "data" / "ct"))


def shared(name: str) -> Path:
    """Path of a real CT volume in ../shared/data/ct, skipping the test when it is absent."""
    p = SHARED_CT / name
    if not p.exists():
        pytest.skip(f"{p} not present (real CT lives beside the checkout, never in it)")
    return p


@pytest.fixture
def phantom():
    """A small thick-slice torso phantom: 64 x 64 x 12 at 3 x 3 x 6 mm, int16 HU."""
    return make_phantom(size=(64, 64, 12), spacing=(3.0, 3.0, 6.0), noise=10, seed=1)


@pytest.fixture
def oblique_phantom():
    """The phantom with an oblique (rotated) direction and a non-zero origin."""
    c, s = np.cos(0.3), np.sin(0.3)
    rot_z = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    rot_x = np.array([[1, 0, 0], [0, np.cos(0.2), -np.sin(0.2)], [0, np.sin(0.2), np.cos(0.2)]])
    return make_phantom(size=(48, 40, 9), spacing=(2.0, 2.5, 5.0), seed=2,
                        origin=(-120.5, 33.0, 410.25), direction=rot_z @ rot_x)


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


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "hrinet.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(r, fragment):
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("hrinet: error:")]
    assert len(errors) == 1 and fragment in errors[0], r.stderr


# ---- hrinet batch: a small cohort, its options and its results tables -----------------------

@pytest.fixture
def linear():
    """The options of a fast batch: factor 2, linear interpolation."""
    return ["--factor", "2", "--method", "linear"]


@pytest.fixture
def make_volume():
    """``make_volume(path, seed=0, slices=5)``: a 16 x 16 x ``slices`` phantom at 1 x 1 x 3 mm
    written at ``path`` (its folders made); returns the path."""
    from hrinet.core.io import write_volume

    def make(path, seed: int = 0, slices: int = 5) -> Path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_volume(make_phantom(size=(16, 16, slices), spacing=(1, 1, 3), seed=seed), path)
        return Path(path)

    return make


@pytest.fixture
def cohort_folder(tmp_path, make_volume):
    """A cohort of two volumes, ``tmp_path/vol/a.nrrd`` and ``b.nrrd``: the folder."""
    root = tmp_path / "vol"
    make_volume(root / "a.nrrd", 1)
    make_volume(root / "b.nrrd", 2)
    return root


@pytest.fixture
def read_rows():
    """``read_rows(table)``: the rows of a results table as dicts, fields exactly as written."""
    def read(path) -> list:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    return read


# ---- the Slicer module's tests: a real MRML scene (PyPI slicer-core) -------------------------

SLICER_MODULE = Path(__file__).resolve().parents[2] / "HRINetSlicer"


@pytest.fixture
def scene():
    import slicer  # the MRML library from slicer-core (test extra), only for these tests

    return slicer.vtkMRMLScene()


@pytest.fixture
def thick_node(scene, oblique_phantom):
    """The oblique phantom as a volume node of ``scene``."""
    if str(SLICER_MODULE) not in sys.path:
        sys.path.insert(0, str(SLICER_MODULE))
    from HRINetSlicerLib.mrml import node_from_volume

    return node_from_volume(oblique_phantom, "thick", scene)


def ijk_to_ras(node) -> np.ndarray:
    """A volume node's IJK-to-RAS matrix as an array."""
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


@pytest.fixture(scope="session")
def dead_pid() -> int:
    """The process id of a process that has ended (a writer killed before it could clean up)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def left_by_a_kill(dead_pid):
    """Make the temporary file (or, with ``folder=True``, folder) a write of ``name`` into
    ``folder`` leaves when its process is killed: named as hrinet's writers name them, with the
    writer's tag of a process that is gone."""
    import tempfile

    from hrinet.core.io.temp_names import temp_prefix

    def make(folder: Path, name: str, suffix: str = ".partial", is_folder: bool = False) -> Path:
        prefix = temp_prefix(name, pid=dead_pid)
        if is_folder:
            return Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=folder))
        fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        os.close(fd)
        return Path(path)
    return make
