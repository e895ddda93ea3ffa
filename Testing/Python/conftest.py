"""Shared fixtures: synthetic phantoms for unit tests, the real CT folder when it is present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hrinet.phantom import make_phantom

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
