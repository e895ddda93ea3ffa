"""What each feature of the module needs from pip, read from ``Resources/requirements.txt``.

Qt-free (tested outside Slicer); :mod:`HRINetSlicerLib.install` asks the user before installing.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import List, Sequence

REQUIREMENTS = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"

#: What the classical methods need installed; every other method is a learned model.
CLASSICAL_NEEDS = {"linear": "classical", "cubic": "classical", "flow": "flow"}


def need_of(method: str) -> str:
    """The need (:func:`requirements_for`) of ``method``, a resolved method name: "classical"
    for linear and cubic, "flow" for flow, "learned" for every model."""
    return CLASSICAL_NEEDS.get(method, "learned")


def requirements_for(need: str) -> List[str]:
    """The requirement strings of ``Resources/requirements.txt`` that ``need`` uses: "classical"
    (linear, cubic: none beyond Slicer), "flow" (OpenCV) or "learned" (everything)."""
    out = []
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        requirement, _, needs = line.partition("#")
        if requirement.strip() and need in needs.split():
            out.append(requirement.strip())
    return out


def missing_requirements(requirements: Sequence[str]) -> List[str]:
    """Those of ``requirements`` whose distribution is not installed (versions not compared:
    an older one is the user's choice)."""
    missing = []
    for req in requirements:
        name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0]
        try:
            version(name)
        except PackageNotFoundError:
            missing.append(req)
    return missing
