"""One model's release assets on a local server (127.0.0.1 only), for the catalog and download
tests (Testing/Python/core/models)."""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import shutil
import threading
from pathlib import Path

from hrinet.core.models.catalog import find_model, load_catalog

WEIGHTS = Path(__file__).resolve().parents[2] / "Resources" / "weights"


@contextlib.contextmanager
def serving(tmp_path: Path, handler: type):
    """The acai model's assets, renamed ``test-acai`` (a name no weights folder holds), served
    by ``handler`` (a ``SimpleHTTPRequestHandler``); yields the model (its url the server's)
    and the assets folder."""
    assets = tmp_path / "assets"
    assets.mkdir()
    real = find_model("acai", load_catalog(WEIGHTS / "catalog.json"))
    for name in (real.file, real.sidecar):
        shutil.copy(WEIGHTS / name, assets / name.replace("hrinet-variant-acai", "test-acai"))
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: handler(*a, directory=str(assets), **k))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        yield dataclasses.replace(real, name="test-acai", file="test-acai.safetensors",
                                  sidecar="test-acai.json", bundled=False, url=url), assets
    finally:
        httpd.shutdown()
        httpd.server_close()
