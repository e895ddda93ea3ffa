"""The documentation stays true: every reliability case names a test that exists, and every
example in a docstring runs as written."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import hrinet
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_every_reliability_row_names_existing_tests():
    doc = (REPO / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    rows = [l for l in doc.splitlines() if l.startswith("| ") and not l.startswith("| case")]
    assert len(rows) > 40
    for row in rows:
        refs = re.findall(r"T/(test_\w+\.py)::(test_\w+)", row)
        assert refs, f"row without a test: {row[:80]}"
        for file, test in refs:
            source = (REPO / "Testing" / "Python" / file).read_text(encoding="utf-8")
            assert f"def {test}(" in source, test


def test_readme_quick_start_commands_exist_in_the_makefile():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test", "evaluate", "bench"):
        assert f"make {target}" in readme and f"\n{target}:" in makefile
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.slow  # imports every module, torch included
def test_every_docstring_example_in_the_library_runs_as_written():
    modules = [m.name for m in pkgutil.walk_packages(hrinet.__path__, "hrinet.")
               if not m.name.endswith("__main__")]  # (running it is the command itself)
    examples = 0
    for name in modules:
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, name
        examples += result.attempted
    assert examples >= 6  # the examples exist (those marked +SKIP need data or workers)
