"""The module's .ui loads with PySide6 and holds every widget the module's code uses."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6 import QtWidgets  # noqa: E402  (test extra; never skipped)
from PySide6.QtCore import QFile  # noqa: E402
from PySide6.QtUiTools import QUiLoader  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
UI = REPO / "HRINetSlicer" / "Resources" / "UI" / "HRINetSlicer.ui"
PANEL_SOURCES = sorted((REPO / "HRINetSlicer" / "HRINetSlicerLib").glob("*.py"))
PARAMETERS = REPO / "HRINetSlicer" / "HRINetSlicerLib" / "parameters.py"
SCREENSHOT = REPO / "Resources" / "screenshots" / "HRINetSlicer-panel.png"


@pytest.fixture(scope="module")
def panel():
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    f = QFile(str(UI))
    assert f.open(QFile.ReadOnly)
    widget = QUiLoader().load(f)  # Slicer's custom widgets fall back to their base classes
    f.close()
    assert widget is not None
    yield widget
    widget.deleteLater()
    app.processEvents()


def test_every_widget_the_module_uses_exists_in_the_ui(panel):
    used = {name for source in PANEL_SOURCES
            for name in re.findall(r"self\.ui\.(\w+)", source.read_text(encoding="utf-8"))}
    assert len(used) > 20
    missing = sorted(n for n in used if panel.findChild(QtWidgets.QWidget, n) is None)
    assert missing == []


def test_interpolate_button_says_what_it_does(panel):
    button = panel.findChild(QtWidgets.QPushButton, "interpolateButton")
    assert button.text() == "Interpolate volume"
    assert panel.findChild(QtWidgets.QPushButton, "cancelButton") is not None
    assert panel.findChild(QtWidgets.QProgressBar, "progressBar") is not None


def test_panel_screenshot(panel, tmp_path):
    """Saves the panel as PNG; HRINET_UPDATE_SCREENSHOTS=1 refreshes the README's copy."""
    combo = panel.findChild(QtWidgets.QComboBox, "modelComboBox")
    combo.addItems(["HRINet (shipped default)", "Cubic B-spline (classical)",
                    "Linear (classical)", "Weights file..."])
    panel.findChild(QtWidgets.QComboBox, "inputSelector").addItem("chest-lungdx-8mm")
    panel.findChild(QtWidgets.QLabel, "inputInfoLabel").setText(
        "512 x 512 x 30, 0.646 x 0.646 x 8 mm")
    panel.findChild(QtWidgets.QLabel, "planLabel").setText(
        "x12 with hrinet: 30 -> 349 slices, spacing 0.646 x 0.646 x 0.6667 mm")
    panel.findChild(QtWidgets.QLabel, "detectedDeviceLabel").setText("detected: CPU only")
    panel.findChild(QtWidgets.QComboBox, "precisionComboBox").addItem("auto precision")
    panel.findChild(QtWidgets.QComboBox, "qualityComboBox").addItems(
        ["standard quality", "high quality (slower)"])
    panel.findChild(QtWidgets.QPushButton, "interpolateButton").setEnabled(True)
    variants = panel.findChild(QtWidgets.QComboBox, "variantComboBox")
    variants.addItems(["hrinet-plus", "hrinet-mse", "hrinet-perceptual"])
    titles = {"interpolateCollapsibleButton": "Interpolate",
              "exportCollapsibleButton": "Export isotropic NRRD",
              "trainCollapsibleButton": "Fine-tune on loaded cases"}
    for name, title in titles.items():  # ctkCollapsibleButton's text, shown by its stand-in
        panel.findChild(QtWidgets.QGroupBox, name).setTitle(title)
    panel.resize(440, 1000)
    panel.show()
    QtWidgets.QApplication.processEvents()
    out = tmp_path / "panel.png"
    assert panel.grab().save(str(out))
    assert out.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("HRINET_UPDATE_SCREENSHOTS"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, SCREENSHOT)


def test_the_panel_lists_every_library_variant_from_the_one_list_without_torch():
    """The panel reads hrinet.core.variants (which imports nothing heavy), so it builds before
    PyTorch is installed and never drifts from the library's list."""
    import subprocess
    import sys

    logic = (REPO / "HRINetSlicer" / "HRINetSlicerLib" / "panel_logic.py").read_text(
        encoding="utf-8")
    assert "from hrinet.core.variants import menu_order" in logic
    assert re.search(r"^import torch|^from torch", logic, re.M) is None
    r = subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None; "
                        "from hrinet.core.variants import VARIANTS; print(len(VARIANTS))"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "7", r.stderr


def _parameter_node_fields() -> dict:
    """Fields of the module's parameterNodeWrapper class and the keyed combo table, read from
    the source (Slicer's wrapper itself only runs inside Slicer)."""
    import ast

    tree = ast.parse(PARAMETERS.read_text(encoding="utf-8"))
    fields, keyed = {}, {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "HRINetSlicerParameterNode":
            fields = {a.target.id: ast.unparse(a.annotation) for a in node.body
                      if isinstance(a, ast.AnnAssign)}
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "KEYED_COMBOS":
            keyed = ast.literal_eval(node.value)
    return {"fields": fields, "keyed": keyed}


INPUT_WIDGETS = (QtWidgets.QComboBox, QtWidgets.QAbstractSpinBox, QtWidgets.QLineEdit,
                 QtWidgets.QCheckBox)


def test_every_setting_in_the_panel_is_held_by_the_parameter_node_so_scenes_restore_it(panel):
    spec = _parameter_node_fields()
    bound = {}
    for w in panel.findChildren(QtWidgets.QWidget):
        name = w.property("SlicerParameterName")
        if name:
            bound[w.objectName()] = name
    bound.update(spec["keyed"])
    assert set(bound.values()) <= set(spec["fields"])  # each binding names a real field
    settings = [w.objectName() for w in panel.findChildren(QtWidgets.QWidget)
                if isinstance(w, INPUT_WIDGETS) and w.objectName()
                and not isinstance(w.parent(), INPUT_WIDGETS)]  # a spin box's own line edit
    unbound = sorted(n for n in settings if n not in bound)
    assert unbound == []
    # paths are Paths (ctkPathLineEdit's connector), the device a key
    assert spec["fields"]["device"] == "str" and spec["keyed"]["deviceComboBox"] == "device"
    assert all(spec["fields"][n] == "Path" for n in
               ("weightsPath", "exportPath", "trainOutputPath"))




def test_the_quality_setting_sits_beside_precision_and_starts_where_the_command_does(panel):
    """The panel offers --quality (filled from the option's choices at run time) and a new
    scene starts at the command's default, so a click in Slicer runs what the CLI runs."""
    import ast

    from hrinet.core.model_options import option_field

    assert panel.findChild(QtWidgets.QComboBox, "qualityComboBox") is not None
    assert _parameter_node_fields()["keyed"]["qualityComboBox"] == "quality"
    tree = ast.parse(PARAMETERS.read_text(encoding="utf-8"))
    defaults = {a.target.id: ast.literal_eval(a.value) for node in tree.body
                if isinstance(node, ast.ClassDef) for a in node.body
                if isinstance(a, ast.AnnAssign) and a.value is not None
                and isinstance(a.value, ast.Constant)}
    assert defaults["quality"] == option_field("quality").default == "standard"
    assert defaults["precision"] == option_field("precision").default
    labels = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                  and getattr(n.targets[0], "id", "") == "QUALITY_LABELS")
    assert set(labels) <= set(option_field("quality").metadata["argparse"]["choices"])


def test_every_name_the_module_and_its_lib_import_from_the_lib_is_defined_there():
    """The panel's files only run inside Slicer; a name imported from a sibling that does not
    define it (after a split or a rename) would fail only there, so it is checked here."""
    import ast

    lib = REPO / "HRINetSlicer" / "HRINetSlicerLib"

    def defined(module: str) -> set:
        tree = ast.parse((lib / f"{module}.py").read_text(encoding="utf-8"))
        names = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        return names

    checked = 0
    for source in PANEL_SOURCES + [REPO / "HRINetSlicer" / "HRINetSlicer.py"]:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 1:
                module = node.module
            elif (node.module or "").startswith("HRINetSlicerLib."):
                module = node.module.split(".", 1)[1]
            else:
                continue
            missing = {a.name for a in node.names} - defined(module)
            assert not missing, f"{source.name} imports {missing} from {module}"
            checked += 1
    assert checked >= 15
