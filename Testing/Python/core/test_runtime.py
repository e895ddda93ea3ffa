"""The process-level allocator setting (hrinet.core.runtime)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = ("import hrinet.core.runtime as r; a = r.tune_allocator(); b = r.tune_allocator(); "
         "print(a, b)")


def _run(env_value: str) -> str:
    import os

    env = dict(os.environ, HRINET_ALLOCATOR=env_value)
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_the_allocator_setting_takes_effect_once_per_process():
    assert _run("") == "True True"


def test_the_allocator_setting_can_be_turned_off_for_comparisons():
    assert _run("default") == "False False"


@pytest.mark.parametrize("method, applied", [(None, True), ("hrinet", True), ("cubic", False),
                                             ("linear", False), ("flow", False)])
def test_the_hrinet_command_applies_it_where_a_network_runs(monkeypatch, phantom, tmp_path,
                                                           method, applied):
    """Measured (make bench): it removes the learned path's system time but slows cubic."""
    import hrinet.cli.app as cli
    from hrinet.core.io import write_volume

    path = write_volume(phantom, tmp_path / "p.nrrd")
    calls = []
    monkeypatch.setattr(cli, "tune_allocator", lambda: calls.append(1))
    argv = ["interpolate", str(path), str(tmp_path / "o.nrrd"), "--factor", "2"]
    assert cli.main(argv + (["--method", method] if method else []) + ["--device", "cpu"]) == 0
    assert calls == ([1] if applied else [])
    assert cli.main(["info", str(path)]) == 0 and len(calls) == int(applied)
