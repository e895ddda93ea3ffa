"""The process-level allocator setting (hrinet.runtime)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = ("import hrinet.runtime as r; a = r.tune_allocator(); b = r.tune_allocator(); "
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


def test_the_hrinet_command_applies_it_before_any_work(monkeypatch, phantom, tmp_path):
    import hrinet.cli as cli
    from hrinet.io import write_volume

    path = write_volume(phantom, tmp_path / "p.nrrd")
    calls = []
    monkeypatch.setattr(cli, "tune_allocator", lambda: calls.append(1))
    assert cli.main(["info", str(path)]) == 0
    assert calls == [1]
