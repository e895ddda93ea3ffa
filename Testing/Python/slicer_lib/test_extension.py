"""The extension's build and index descriptions name everything the Extensions Index needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


# What schema v1.0.2 allows (Slicer/Schemas/slicer-extension-catalog-entry-schema-v1.0.2.json):
# required keys, every allowed key with its JSON type, and the scm_type values.
SCHEMA_REQUIRED = ("$schema", "category", "scm_url")
SCHEMA_TYPES = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str,
                "scm_type": str, "build_dependencies": list, "dicom_support_rule": str,
                "build_subdirectory": str, "enabled": bool, "tier": int}
#: Categories the catalog accepts that could fit this module (the catalog's own list is longer).
ACCEPTED_CATEGORIES = ("Image Synthesis", "Filtering", "Utilities")


def catalog_entry():
    entries = [p for p in REPO.glob("*.json")]
    assert len(entries) == 1, entries  # one catalog entry, named after the extension
    return entries[0], json.loads(entries[0].read_text(encoding="utf-8"))


def test_the_catalog_entry_follows_schema_v1_0_2():
    _, entry = catalog_entry()
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    for key in SCHEMA_REQUIRED:
        assert key in entry, key
    for key, value in entry.items():
        assert key in SCHEMA_TYPES, f"{key} is not allowed by the schema"
        assert isinstance(value, SCHEMA_TYPES[key]) and not (
            SCHEMA_TYPES[key] is int and isinstance(value, bool)), key
    assert entry.get("scm_type", "git") in ("git", "local")
    assert 1 <= entry.get("tier", 1) <= 5
    assert all(isinstance(d, str) for d in entry.get("build_dependencies", []))
    assert entry["build_dependencies"] == ["PyTorch"]


def test_the_catalog_names_category_and_repository_agree_everywhere():
    path, entry = catalog_entry()
    name = path.stem
    assert entry["category"] in ACCEPTED_CATEGORIES and entry["category"] == "Image Synthesis"
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"^project\((\w+)\)", top, re.M).group(1) == name
    assert f'set(EXTENSION_CATEGORY "{entry["category"]}")' in top
    module = (REPO / "HRINetSlicer" / "HRINetSlicer.py").read_text(encoding="utf-8")
    assert f'"qSlicerAbstractCoreModule", "{entry["category"]}")' in module
    assert not name.startswith("Slicer")  # the extension's name must not start with Slicer
    repo = re.search(r"github\.com/[^/]+/([^/.]+)(?:\.git)?$", entry["scm_url"]).group(1)
    assert repo.startswith("Slicer")  # ... and its repository's name must
    homepage = re.search(r'EXTENSION_HOMEPAGE "([^"]+)"', top).group(1)
    assert homepage.rstrip("/").endswith("/" + repo)


def test_icon_and_screenshots_are_files_of_the_repository():
    import struct

    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    icon = re.search(r'EXTENSION_ICONURL "([^"]+)"', top).group(1)
    shots = re.search(r'EXTENSION_SCREENSHOTURLS "([^"]+)"', top).group(1).split()
    for url in [icon] + shots:
        rel = re.sub(r"^https://raw\.githubusercontent\.com/[^/]+/[^/]+/[^/]+/", "", url)
        assert (REPO / rel).is_file(), url
    head = (REPO / re.sub(r"^https://raw\.githubusercontent\.com/[^/]+/[^/]+/[^/]+/", "",
                         icon)).read_bytes()[:24]
    assert struct.unpack(">II", head[16:24]) == (128, 128)


def test_the_licence_file_is_the_one_pyproject_declares():
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert 'license = { text = "Apache-2.0" }' in (REPO / "pyproject.toml").read_text()


def test_the_repository_stays_under_the_catalogs_100_mb():
    import subprocess

    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           text=True).stdout.split("\0")
    total = sum((REPO / f).stat().st_size for f in files if f and (REPO / f).is_file()
                and not (REPO / f).is_symlink())
    assert total < 100 * 2 ** 20, f"{total / 2**20:.0f} MB"


def test_cmake_builds_the_scripted_module_from_files_that_exist():
    top = (REPO / "CMakeLists.txt").read_text()
    assert "add_subdirectory(HRINetSlicer)" in top and 'EXTENSION_DEPENDS "PyTorch"' in top
    module = (REPO / "HRINetSlicer" / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule(" in module
    listed = re.findall(r"^\s+([\w/${}.]+\.(?:py|png|ui))\s*$", module, re.M)
    scripts = {p.relative_to(REPO / "HRINetSlicer").as_posix()
               for p in (REPO / "HRINetSlicer").rglob("*.py")}
    assert {r.replace("${MODULE_NAME}", "HRINetSlicer") for r in listed
            if r.endswith(".py")} == scripts  # every module file is built into the extension
    for rel in listed:
        assert (REPO / "HRINetSlicer" / rel.replace("${MODULE_NAME}", "HRINetSlicer")).is_file()
    assert "Resources/weights" in module and "HRINetLib" in module
