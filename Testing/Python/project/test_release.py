"""``make release`` in a fresh clone: the extension's repository as one commit with the default
model, every other model an asset; checked as the Extensions Index checks a submission, and the
assets installable with ``hrinet models --get``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO, fresh_clone


def test_the_development_repository_passes_every_index_check_but_perhaps_the_size():
    """The release exists for the size: a clone of this repository carries its history of
    weights (and a checkout its .venv); everything else the index checks holds here too."""
    from benchmarks.tools.release import index_checks

    if not (REPO / ".git").is_dir():
        pytest.skip("not a git checkout")
    failures = index_checks(REPO)
    assert [f for f in failures if "clone" not in f] == []  # all else holds here already


@pytest.mark.slow
def test_make_release_in_a_fresh_clone_passes_the_index_checks_and_serves_every_model(tmp_path):
    from benchmarks.tools.release import index_checks, tree_size_mb

    dev = fresh_clone(tmp_path)
    r = subprocess.run([sys.executable, "benchmarks/release.py", "--out", str(tmp_path / "dist")],
                       cwd=dev, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    release = tmp_path / "dist" / "SlicerHRINet"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(release), str(clone)], check=True)
    assert index_checks(clone) == [] and tree_size_mb(clone) < 100
    log = subprocess.run(["git", "log", "--oneline"], cwd=clone, capture_output=True, text=True)
    assert len(log.stdout.splitlines()) == 1  # one commit: no history of earlier weights
    catalog = json.loads((clone / "Resources" / "weights" / "catalog.json").read_text())["models"]
    assets = tmp_path / "dist" / "assets"
    shipped = sorted(p.name for p in (clone / "Resources" / "weights").iterdir())
    assert shipped == ["catalog.json", "hrinet-default.json", "hrinet-default.safetensors"]
    assert sorted(p.name for p in assets.iterdir()) == sorted(
        n for m in catalog if not m["bundled"] for n in (m["file"], m["sidecar"]))
    # the release's hrinet lists what is missing, and installs it from the assets, verified
    env = dict(os.environ, PYTHONPATH=str(clone / "HRINetLib"),
               HRINET_CACHE=str(tmp_path / "cache"))
    hrinet = [sys.executable, "-m", "hrinet.cli"]
    listed = subprocess.run(hrinet + ["models"], env=env, capture_output=True, text=True)
    assert "not installed" in listed.stdout and "hrinet-variant-acai" in listed.stdout
    got = subprocess.run(hrinet + ["models", "--get", "acai", "--from", str(assets)], env=env,
                         capture_output=True, text=True)
    assert got.returncode == 0 and "sha256 verified" in got.stdout, got.stderr
    listed = subprocess.run(hrinet + ["models"], env=env, capture_output=True, text=True)
    assert "hrinet-variant-acai" not in listed.stdout.split("not installed")[-1]
