"""The extension's build and index descriptions name everything the Extensions Index needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_s4ext_has_every_field_the_index_needs():
    fields = {}
    for line in (REPO / "HRINetSlicer.s4ext").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            fields[key] = value.strip()
    for key in ("scm", "scmurl", "depends", "build_subdirectory", "homepage", "category",
                "iconurl", "screenshoturls", "description", "contributors", "enabled"):
        assert fields.get(key), key
    assert fields["depends"] == "PyTorch" and fields["enabled"] == "1"


def test_json_catalog_entry():
    entry = json.loads((REPO / "HRINetSlicer.json").read_text())
    assert entry["build_dependencies"] == ["PyTorch"]
    assert entry["scm_url"].endswith(".git") and entry["category"] == "Filtering"


def test_cmake_builds_the_scripted_module_from_files_that_exist():
    top = (REPO / "CMakeLists.txt").read_text()
    assert "add_subdirectory(HRINetSlicer)" in top and 'EXTENSION_DEPENDS "PyTorch"' in top
    module = (REPO / "HRINetSlicer" / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule(" in module
    listed = re.findall(r"^\s+([\w/${}.]+\.(?:py|png|ui))\s*$", module, re.M)
    assert len(listed) == 5
    for rel in listed:
        assert (REPO / "HRINetSlicer" / rel.replace("${MODULE_NAME}", "HRINetSlicer")).is_file()
    assert "Resources/weights" in module and "HRINetLib" in module
