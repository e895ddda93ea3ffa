"""Shared fixtures: synthetic phantoms, a small cohort and its tables, a real MRML scene, a killed
writer's leftovers. Plain helpers (the real CT folder, DICOM writer, the command) are in helpers.py."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hrinet.core.phantom import make_phantom
from helpers import SLICER_MODULE, fill


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


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 2 MB tmpfs with not one free block left."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        fill(mnt)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
