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

REPO = Path(__file__).resolve().parents[3]


def test_every_reliability_row_names_existing_tests():
    doc = (REPO / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    rows = [l for l in doc.splitlines() if l.startswith("| ") and not l.startswith("| case")]
    assert len(rows) > 40
    for row in rows:
        refs = re.findall(r"T/((?:\w+/)*test_\w+\.py)::(test_\w+)", row)
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


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def local_links(page: Path) -> list:
    """The (target, anchor) of every relative link and image in a Markdown page."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    links = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        links.append(((page.parent / path).resolve() if path else page, anchor))
    return links


def test_every_link_and_figure_in_the_readme_and_docs_resolves():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        for target, anchor in local_links(page):
            assert target.exists(), f"{page.name}: {target} does not exist"
            if anchor and target.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), re.M)
                assert anchor in {github_anchor(h) for h in headings}, f"{page.name}: #{anchor}"


def test_the_readme_is_a_landing_page_that_links_the_rest():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for page in ("usage", "results", "training", "benchmarks", "slicer"):
        assert f"(docs/{page}.md" in readme, page
    first_screen = readme.split("## Quick start", 1)[0]
    for jargon in ("cells", "SSIM_win", "PSNR"):
        assert jargon not in first_screen, jargon


def test_the_readme_says_how_to_pip_install_with_and_without_the_learned_extra():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "`pip install .`" in readme and "`pip install \".[learned]\"`" in readme
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert "\nlearned = [" in pyproject  # the extra the README names exists


def test_every_results_page_names_the_command_that_regenerates_it():
    for page, command in (("results", "make evaluate"), ("benchmarks", "make bench"),
                          ("training", "benchmarks/continue_default.sh")):
        assert command in (REPO / "docs" / f"{page}.md").read_text(encoding="utf-8"), page


def test_the_readme_quotes_no_release_size_that_make_release_would_contradict():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    text += (REPO / "docs" / "usage.md").read_text(encoding="utf-8")
    assert not re.search(r"clone is about [\d.]+ MB", text)
    assert "`make release` prints the size" in text
