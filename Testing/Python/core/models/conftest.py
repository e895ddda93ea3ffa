"""What the catalog and download tests share besides their servers (Testing/Python/model_server.py):
a model cache of the test's own."""

from __future__ import annotations

import pytest


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """``HRINET_CACHE`` set to a folder of the test's own (not yet made)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("HRINET_CACHE", str(folder))
    return folder
