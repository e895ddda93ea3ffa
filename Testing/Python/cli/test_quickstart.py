"""The README's quick start, followed literally in a fresh clone: its commands are read from the
README, so the README cannot drift from what works."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import REPO, fresh_clone


def quick_start_commands() -> list:
    """The lines of the first ``bash`` block under ``## Quick start``, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.split(" #", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_quick_start_is_two_commands_a_demo_and_a_run_on_a_file():
    commands = quick_start_commands()
    assert len(commands) == 2 and commands[0] == "make demo"
    assert "interpolate" in commands[1] and "--preview" in commands[1]


@pytest.mark.slow
def test_the_quick_start_works_in_a_fresh_clone(tmp_path):
    clone = fresh_clone(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not p.startswith(str(REPO)))  # not this checkout's .venv
    for command in quick_start_commands():
        r = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True,
                           text=True, timeout=1500)
        assert r.returncode == 0, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    out = clone / "out"
    demo = sitk.ReadImage(str(out / "demo-isotropic.nrrd"))
    assert len(set(np.round(demo.GetSpacing(), 6))) == 1  # isotropic
    assert (out / "demo-comparison.png").read_bytes()[:4] == b"\x89PNG"
    args = shlex.split(quick_start_commands()[1])
    result = sitk.ReadImage(str(clone / args[3]))
    thick = sitk.ReadImage(str(clone / args[2]))
    assert result.GetSize()[2] > thick.GetSize()[2]  # slices were synthesised
    assert np.allclose(result.GetSpacing()[2], thick.GetSpacing()[0], rtol=0.05)
    preview = sitk.GetArrayFromImage(sitk.ReadImage(str(clone / args[args.index("--preview") + 1])))
    assert preview.ndim == 2 and preview.std() > 10
