"""Downloads and the release against a hostile or broken world: a server that never stops
sending or drips, a download killed mid-file, a catalog naming files outside the cache, a
release whose catalog does not describe what it ships. Every case is one line, nothing of the
user's is touched, and nothing is written outside the folder it belongs in. The servers are
local (127.0.0.1 only)."""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
from helpers import cli, one_line_error
from hrinet.core.errors import HRINetError
from hrinet.core.io.temp_names import host_name
from hrinet.core.models.catalog import installed_path, load_catalog
from hrinet.core.models.downloads import (
    CHUNK,
    SIDECAR_LIMIT,
    STALE_PARTIAL_S,
    fetch_model,
    remove_stale_downloads,
)
from model_server import serving

REPO = Path(__file__).resolve().parents[4]
WEIGHTS = REPO / "Resources" / "weights"


# ---- a local server that misbehaves on request --------------------------------------------

class Hostile(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``mode[name]`` makes one file misbehave: ``"endless"`` (no length, bytes
    until the client goes), ``"huge"`` (announces 10 GB), ``"drip"`` (a byte every 0.2 s)."""

    mode: dict = {}
    sent: dict = {}

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        how = self.mode.get(name)
        if how is None:
            return super().do_GET()
        self.send_response(200)
        if how == "huge":
            self.send_header("Content-Length", str(10 * 2 ** 30))
        elif how == "drip":
            self.send_header("Content-Length", str((Path(self.directory) / name).stat().st_size))
        self.end_headers()
        block, pause = (b"\0" * 65536, 0) if how in ("endless", "huge") else (b"\0", 0.2)
        start = time.monotonic()
        try:
            while time.monotonic() - start < 60:  # a bound for the test's own sake
                self.wfile.write(block)
                self.wfile.flush()
                type(self).sent[name] = type(self).sent.get(name, 0) + len(block)
                time.sleep(pause)
        except OSError:  # the client gave up: what is being tested
            pass


@pytest.fixture
def server(tmp_path):
    """One model's assets (under a name no weights folder holds) on a local server; yields the
    model (its url the server's) and the assets folder."""
    Hostile.mode, Hostile.sent = {}, {}
    with serving(tmp_path, Hostile) as served:
        yield served


def catalog_folder(tmp_path: Path, monkeypatch, *models) -> Path:
    """A weights folder whose catalog lists ``models`` (dicts or CatalogModels), searched first
    by every command (HRINET_WEIGHTS_DIR)."""
    folder = tmp_path / "weights"
    folder.mkdir(exist_ok=True)
    entries = [m if isinstance(m, dict) else dataclasses.asdict(m) for m in models]
    (folder / "catalog.json").write_text(json.dumps({"version": "0", "models": entries}))
    monkeypatch.setenv("HRINET_WEIGHTS_DIR", str(folder))
    return folder


def leftovers(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---- 14: a download stops at the catalog's size and within a deadline ------------------------

def test_a_server_sending_without_end_is_stopped_at_the_catalog_size_and_nothing_is_kept(
        server, cache):
    model, _ = server
    Hostile.mode = {model.file: "endless"}
    start = time.monotonic()
    with pytest.raises(HRINetError, match=rf"larger than the catalog's {model.size} bytes; it "
                       "was not kept"):
        fetch_model(model)
    assert time.monotonic() - start < 30
    assert leftovers(cache) == [model.sidecar]  # the verified sidecar only, no partial
    assert installed_path(model) is None


def test_a_download_announcing_more_than_the_catalog_size_is_refused_before_reading(
        server, cache):
    model, _ = server
    Hostile.mode = {model.file: "huge"}
    with pytest.raises(HRINetError, match="larger than the catalog's"):
        fetch_model(model)
    assert leftovers(cache) == [model.sidecar]
    assert Hostile.sent.get(model.file, 0) < 64 * CHUNK  # stopped at once, not after 10 GB


def test_a_sidecar_without_end_is_stopped_at_the_sidecar_limit(server, cache):
    model, _ = server
    Hostile.mode = {model.sidecar: "endless"}
    with pytest.raises(HRINetError, match=f"larger than {SIDECAR_LIMIT} bytes, more than any "
                       "sidecar; it was not kept"):
        fetch_model(model)
    assert leftovers(cache) == []


def test_a_dripping_server_is_given_up_at_the_deadline_and_nothing_is_kept(server, cache):
    model, _ = server
    Hostile.mode = {model.file: "drip"}
    start = time.monotonic()
    with pytest.raises(HRINetError, match=r"did not finish within 1\.5 s .*--deadline SECONDS"):
        fetch_model(model, deadline_s=1.5)
    assert time.monotonic() - start < 1.5 + 2  # the deadline, not the drip, ends it
    assert leftovers(cache) == [model.sidecar]


def test_models_get_from_an_endless_or_dripping_server_is_one_line(server, cache, tmp_path,
                                                                    monkeypatch):
    model, _ = server
    catalog_folder(tmp_path, monkeypatch, model)
    Hostile.mode = {model.file: "endless"}
    one_line_error(cli("models", "--get", model.name, timeout=60), "larger than the catalog's")
    Hostile.mode = {model.file: "drip"}
    r = cli("models", "--get", model.name, "--deadline", "1", timeout=60)
    one_line_error(r, "did not finish within 1 s")
    assert leftovers(cache) == [model.sidecar]
    for bad in ("0", "-5", "nan", "inf"):
        one_line_error(cli("models", "--get", model.name, "--deadline", bad),
                       "--deadline must be a positive number of seconds")
    Hostile.mode = {}
    r = cli("models", "--get", model.name)  # a good server: the default deadline suffices
    assert r.returncode == 0 and "sha256 verified" in r.stdout, r.stderr


# ---- 24: partial files a killed download left are removed by the next run ------------------

def dead_pid() -> int:
    """The id of a process that has ended."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def partial_name(name: str, pid: Optional[int] = None, host: Optional[str] = None) -> str:
    """A download's partial file name; without ``pid`` the untagged form of older versions."""
    tag = "" if pid is None else f".{pid}.{host if host is not None else host_name()}" \
        ".download"
    return f".{name}.k3x9q2ab.partial{tag}"


def test_a_partial_left_by_a_killed_download_is_removed_by_the_next_models_run(cache):
    cache.mkdir()
    model = load_catalog(WEIGHTS / "catalog.json")[1]
    dead = cache / partial_name(model.file, dead_pid())
    old = cache / partial_name(model.sidecar)  # an older version's, two days old
    for path in (dead, old):
        path.write_bytes(b"\0" * 1000)
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    r = cli("models")
    assert r.returncode == 0, r.stderr
    assert leftovers(cache) == []
    assert "left by an interrupted download" in r.stderr


def test_a_download_in_progress_and_the_users_files_are_left_alone(cache, tmp_path):
    cache.mkdir()
    catalog = load_catalog(WEIGHTS / "catalog.json")
    model = catalog[1]
    kept = [partial_name(model.file, os.getpid()),  # a download running now (this process)
            partial_name(model.sidecar),  # untagged but fresh: perhaps running
            partial_name(model.file, dead_pid(), host="another-machine"),  # a shared cache
            partial_name("notes.safetensors", dead_pid()),  # not a catalog file
            f".{model.file}.mine", "notes.txt", model.file + ".partial",
            f"{model.file}.k3x9q2ab.partial"]  # not hidden: not one of ours
    for name in kept:
        (cache / name).write_bytes(b"user data")
    mine = tmp_path / "mine.bin"
    mine.write_bytes(b"precious")
    (cache / partial_name(model.sidecar, dead_pid())).symlink_to(mine)  # a link is not ours
    (cache / partial_name(model.file, 1)).mkdir()  # a folder is not ours either
    before = leftovers(cache)
    assert remove_stale_downloads(catalog, cache) == []
    assert cli("models").returncode == 0
    assert leftovers(cache) == before and mine.read_bytes() == b"precious"
    for name in kept:
        assert (cache / name).read_bytes() == b"user data"
    # a running download's partial is removed once it is older than any download can be
    running = cache / partial_name(model.file, os.getpid())
    os.utime(running, (time.time() - STALE_PARTIAL_S - 60,) * 2)
    assert remove_stale_downloads(catalog, cache) == [running]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_download_killed_with_sigkill_leaves_a_partial_the_next_run_removes(
        server, cache, tmp_path, monkeypatch):
    model, _ = server
    catalog_folder(tmp_path, monkeypatch, model)
    Hostile.mode = {model.file: "drip"}
    proc = subprocess.Popen([sys.executable, "-m", "hrinet.cli", "models", "--get", model.name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not [n for n in leftovers(cache) if n.startswith(f".{model.file}.")]:
            assert time.monotonic() < deadline and proc.poll() is None, "no download started"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partials = [n for n in leftovers(cache) if n.startswith(f".{model.file}.")]
    assert len(partials) == 1 and str(proc.pid) in partials[0]  # recognisable: it names its pid
    Hostile.mode = {}
    r = cli("models")
    assert r.returncode == 0, r.stderr
    assert leftovers(cache) == [model.sidecar]


# ---- 20: catalog file names never lead outside the cache ------------------------------------

@pytest.mark.parametrize("field", ["file", "sidecar"])
@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b.safetensors", "..\\x",
                                  "C:x.safetensors", ".hidden", "..", "", " x"])
def test_a_catalog_naming_a_file_outside_the_cache_is_refused_when_read(tmp_path, name, field):
    entries = json.loads((WEIGHTS / "catalog.json").read_text())
    entries["models"][1][field] = name
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(HRINetError, match="is not a plain file name") as info:
        load_catalog(path)
    assert "\n" not in str(info.value)


def test_models_get_with_a_catalog_pointing_above_the_cache_writes_nothing(server, tmp_path,
                                                                           monkeypatch):
    model, assets = server
    shutil.copy(assets / model.file, assets / "x")
    cache = tmp_path / "home" / "user" / "cache"  # ../../x would land in tmp_path/home
    monkeypatch.setenv("HRINET_CACHE", str(cache))
    bad = dataclasses.replace(model, file="../../x")
    catalog_folder(tmp_path, monkeypatch, bad)
    before = sorted(tmp_path.rglob("*"))
    one_line_error(cli("models", "--get", model.name), "'../../x' for model 'test-acai', which "
                   "is not a plain file name")
    one_line_error(cli("models"), "is not a plain file name")
    with pytest.raises(HRINetError, match="not a plain file name"):  # however it is built
        fetch_model(bad)
    assert sorted(tmp_path.rglob("*")) == before and not cache.exists()


# ---- 16: the release ships what its catalog says, from HEAD, and no candidates --------------

def fake_dist(tmp_path: Path):
    """A built release's layout: the default model in the repository, the others as assets."""
    from benchmarks.tools.release import WEIGHTS as W

    repo, assets = tmp_path / "dist" / "SlicerHRINet", tmp_path / "dist" / "assets"
    (repo / W).mkdir(parents=True)
    assets.mkdir()
    for m in load_catalog(WEIGHTS / "catalog.json"):
        for name in (m.file, m.sidecar):
            shutil.copy(WEIGHTS / name, (repo / W if m.bundled else assets) / name)
    shutil.copy(WEIGHTS / "catalog.json", repo / W / "catalog.json")
    return repo, assets


def test_a_built_release_is_checked_against_the_catalog_from_the_files_in_dist(tmp_path):
    from benchmarks.tools.release import verify_dist

    repo, assets = fake_dist(tmp_path)
    assert verify_dist(repo, assets) == []
    acai = assets / "hrinet-variant-acai.safetensors"
    data = bytearray(acai.read_bytes())
    data[-3] ^= 1
    acai.write_bytes(bytes(data))
    (assets / "hrinet-variant-ae.json").unlink()
    (assets / "stray.bin").write_bytes(b"x")
    shutil.copy(WEIGHTS / "hrinet-default.safetensors", repo / "model.safetensors")
    (repo / "benchmarks" / "candidates").mkdir(parents=True)
    failures = verify_dist(repo, assets)
    assert any("hrinet-variant-acai.safetensors does not match the catalog's sha256" in f
               for f in failures)
    assert any("hrinet-variant-ae.json is missing" in f for f in failures)
    assert any("stray.bin is not in the catalog" in f for f in failures)
    assert any("model.safetensors is weights outside" in f for f in failures)
    assert any("candidates is development material" in f for f in failures)
    assert len(failures) == 5


def release_clone(tmp_path: Path) -> Path:
    """A fresh clone of this repository running this checkout's release script (uncommitted
    there, so the script under test is this one while the release is made from the clone's
    HEAD)."""
    if not (REPO / ".git").is_dir():
        pytest.skip("not a git checkout: nothing to clone")
    dev = tmp_path / "dev"
    subprocess.run(["git", "clone", "-q", str(REPO), str(dev)], check=True)
    for name in ("__init__.py", "release.py", "tools/__init__.py", "tools/release.py"):
        (dev / "benchmarks" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "benchmarks" / name, dev / "benchmarks" / name)
    return dev


def run_release(dev: Path, out: Path):
    return subprocess.run([sys.executable, "benchmarks/release.py", "--out", str(out)], cwd=dev,
                          capture_output=True, text=True, timeout=600)


def test_the_release_ships_no_candidates_and_what_dist_holds_matches_the_catalog(tmp_path):
    from benchmarks.tools.release import verify_dist

    dev = release_clone(tmp_path)
    if not (dev / "benchmarks" / "candidates").is_dir():
        pytest.skip("no benchmarks/candidates committed")
    r = run_release(dev, tmp_path / "dist")
    assert r.returncode == 0, r.stdout + r.stderr
    repo = tmp_path / "dist" / "SlicerHRINet"
    assert not (repo / "benchmarks" / "candidates").exists()
    assert [p for p in repo.rglob("*.safetensors")] == [
        repo / "Resources" / "weights" / "hrinet-default.safetensors"]
    assert verify_dist(repo, tmp_path / "dist" / "assets") == []


def test_a_committed_catalog_of_uncommitted_weights_stops_the_release(tmp_path):
    """The catalog regenerated from changed weights and committed without them: dist (from
    HEAD) would ship weights whose sha256 the catalog does not give."""
    dev = release_clone(tmp_path)
    acai = dev / "Resources" / "weights" / "hrinet-variant-acai.safetensors"
    data = bytearray(acai.read_bytes())
    data[-3] ^= 1
    acai.write_bytes(bytes(data))
    subprocess.run([sys.executable, "benchmarks/release.py", "--catalog"], cwd=dev, check=True,
                   capture_output=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@invalid"]
    subprocess.run(git + ["commit", "-q", "-m", "catalog only", "--",
                          "Resources/weights/catalog.json"], cwd=dev, check=True)
    out = tmp_path / "dist"
    (out / "assets").mkdir(parents=True)
    (out / "assets" / "earlier.txt").write_text("an earlier release")
    r = run_release(dev, out)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.startswith("release:") and
             "note:" not in l]
    assert len(lines) == 1 and "is not the catalog of the committed weights" in lines[0], lines
    assert leftovers(out / "assets") == ["earlier.txt"]  # refused before dist was touched
