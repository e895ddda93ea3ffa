"""The model catalog and ``hrinet models --get``: downloads on request, from a real HTTP server,
verified before use; every failure one line, nothing half-written or altered ever used."""

from __future__ import annotations

import dataclasses
import http.server
import socket
from pathlib import Path

import pytest
from helpers import REPO, cli, one_line_error
from hrinet.core.errors import HRINetError
from hrinet.core.io.atomic import file_sha256
from hrinet.core.models import shipped
from hrinet.core.models.catalog import (
    catalog_path,
    find_model,
    installed_path,
    load_catalog,
)
from hrinet.core.models.downloads import fetch_model
from hrinet.learned.weights import read_metadata
from model_server import serving

WEIGHTS = REPO / "Resources" / "weights"


def test_the_catalog_describes_every_weights_file_as_it_is():
    """Regenerated from the files by benchmarks/release.py --catalog: it cannot drift."""
    catalog = load_catalog(WEIGHTS / "catalog.json")
    assert {m.file for m in catalog} == {p.name for p in WEIGHTS.glob("*.safetensors")}
    for m in catalog:
        assert m.size == (WEIGHTS / m.file).stat().st_size
        assert m.sha256 == file_sha256(WEIGHTS / m.file)
        assert m.sidecar_sha256 == file_sha256(WEIGHTS / m.sidecar)
        assert m.variant == read_metadata(WEIGHTS / m.file)["variant"]
        assert m.url.startswith("https://github.com/") and m.licence and m.quality
    assert [m.name for m in catalog if m.bundled] == ["hrinet-default"] == [catalog[0].name]
    assert catalog_path() is not None



def test_find_model_is_one_rule_for_every_caller():
    """Name, file, variant, the ``hrinet`` alias, a unique start: the rule ``hrinet models
    --get`` and the panel share; blanks around a name are ignored, an empty one is refused."""
    catalog = load_catalog(WEIGHTS / "catalog.json")
    default = catalog[0]
    for name in (default.name, default.file, default.variant, "hrinet", f"  {default.name} "):
        assert find_model(name, catalog) == default
    assert find_model("hrinet-variant-ac", catalog).name == "hrinet-variant-acai"
    for name in ("", "   "):
        with pytest.raises(HRINetError, match="^choosing a model needs a model name; choose "
                                              "one of: hrinet-default, "):
            find_model(name, catalog)
        with pytest.raises(HRINetError, match="^--get needs a model name; "):
            find_model(name, catalog, option="--get")
    with pytest.raises(HRINetError, match="^no model 'nonsense' in the catalog; choose one of: "):
        find_model(" nonsense ", catalog)

class Assets(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; a file named in ``cut`` is sent half and the connection closed."""

    cut: set = set()
    requests: list = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if name in self.cut:
            data = (Path(self.directory) / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A release's assets (one model under a name no weights folder holds) on a local server."""
    Assets.cut, Assets.requests = set(), []
    with serving(tmp_path, Assets) as served:
        yield served


def test_a_model_is_downloaded_verified_and_never_fetched_again(server, cache):
    model, _ = server
    path = fetch_model(model)
    assert path == cache / model.file and installed_path(model) == path
    assert file_sha256(path) == model.sha256 and (cache / model.sidecar).is_file()
    assert shipped.find_weights(model.file) == path  # where every command looks for weights
    fetched = len(Assets.requests)
    assert fetch_model(model) == path and len(Assets.requests) == fetched  # present: no fetch


def test_an_interrupted_download_is_one_line_and_leaves_nothing(server, cache):
    model, _ = server
    Assets.cut = {model.file}
    with pytest.raises(HRINetError, match="cut off"):
        fetch_model(model)
    assert not (cache / model.file).exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".partial")]
    Assets.cut = set()
    assert fetch_model(model).is_file()  # the next try completes it


def test_a_file_that_does_not_match_the_catalog_is_never_kept(server, cache):
    model, assets = server
    data = bytearray((assets / model.file).read_bytes())
    data[-10] ^= 0xFF
    (assets / model.file).write_bytes(bytes(data))
    with pytest.raises(HRINetError, match="does not match the catalog's sha256; it was not kept"):
        fetch_model(model)
    assert not (cache / model.file).exists() and installed_path(model) is None


def test_a_missing_asset_and_no_network_are_one_line_each(server, cache):
    model, _ = server
    with pytest.raises(HRINetError, match="is not at .*HTTP 404"):
        fetch_model(dataclasses.replace(model, file="gone.safetensors"))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HRINetError, match="cannot reach .*check the network"):
        fetch_model(dataclasses.replace(model, url=f"http://127.0.0.1:{port}/"))
    weights = [p.name for p in cache.rglob("*") if p.suffix != ".json"] if cache.exists() else []
    assert weights == []  # at most a verified sidecar, which a later --get reuses


def test_a_download_onto_a_full_disk_is_one_line_and_leaves_nothing(server, full_disk,
                                                                    monkeypatch):
    monkeypatch.setenv("HRINET_CACHE", str(full_disk))
    model, _ = server
    with pytest.raises(HRINetError, match="cannot write"):
        fetch_model(model)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_models_lists_every_model_and_gets_one_from_a_release_folder(tmp_path, cache):
    r = cli("models")
    assert r.returncode == 0
    for m in load_catalog(WEIGHTS / "catalog.json"):  # all present in a checkout
        assert m.variant in r.stdout
    assert "not installed" not in r.stdout
    one_line_error(cli("models", "--get", "no-such-model"), "no model 'no-such-model'")
    # a model already present is not fetched again, whatever the source
    r = cli("models", "--get", "acai", "--from", tmp_path / "empty")
    assert r.returncode == 0 and "sha256 verified" in r.stdout, r.stderr


def test_a_variant_whose_weights_are_missing_says_how_to_get_them(monkeypatch, tmp_path):
    from hrinet.learned.inference import learned_method

    monkeypatch.setattr(shipped, "default_weights_dirs", lambda: [tmp_path])
    with pytest.raises(HRINetError, match="not installed; get it with: hrinet models --get ae"):
        learned_method("ae", device="cpu")
