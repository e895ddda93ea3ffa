"""The library's layers: a core without torch, learned code loaded only when used, no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import hrinet

PACKAGE = Path(hrinet.__file__).parent
#: The torch-free core: volumes, I/O, the engine, classical methods, metrics, evaluation, CLI.
CORE = ("__init__", "atomic", "cli", "constants", "engine", "errors", "evaluate", "flow", "io",
        "methods", "metrics", "padding", "phantom", "runtime", "shipped", "slab", "train_args",
        "volume")
LEARNED = {"models", "inference", "motion", "motion_data", "train", "weights", "checkpoint",
           "losses", "lineage", "train_config", "train_cli",
           "data", "adapt", "augment", "torch", "safetensors"}


def module_imports(name: str) -> set:
    """Modules imported at module level (not inside functions) by ``hrinet.<name>``."""
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found.add((node.module or "").split(".")[0])
            elif node.module:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
    return found


def local_graph() -> dict:
    names = {p.stem for p in PACKAGE.glob("*.py")}
    return {n: {m for m in module_imports(n) if m in names} for n in names}


def test_the_classical_path_runs_where_torch_cannot_be_imported(tmp_path):
    script = f"""
import sys
sys.modules["torch"] = None  # any import of torch now fails
import hrinet
from hrinet.cli import main
from hrinet.phantom import make_phantom
vol = make_phantom(size=(32, 32, 5), spacing=(1.0, 1.0, 3.0))
for m in ("linear", "cubic", "flow"):
    hrinet.upsample_z(vol, factor=3, method=m)
path = hrinet.write_volume(vol, r"{tmp_path / 'v.nrrd'}")
assert main(["info", str(path)]) == 0
assert main(["interpolate", str(path), r"{tmp_path / 'o.nrrd'}", "--method", "cubic",
             "--factor", "2"]) == 0
assert main(["evaluate", str(path), "--methods", "linear,cubic", "--factors", "2",
             "--out", r"{tmp_path / 'e'}"]) == 0
try:
    hrinet.upsample_z(vol, factor=2, method="hrinet")
except hrinet.HRINetError as exc:
    print("LEARNED:", exc)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "LEARNED: method hrinet needs PyTorch, which is not installed" in r.stdout


def test_no_module_level_import_cycle_in_the_library():
    graph = local_graph()
    state: dict = {}

    def visit(n, path):
        state[n] = "open"
        for m in graph[n]:
            assert state.get(m) != "open", f"import cycle: {' -> '.join(path + [m])}"
            if m not in state:
                visit(m, path + [m])
        state[n] = "done"

    for n in graph:
        if n not in state:
            visit(n, [n])


def test_the_core_imports_no_model_code_even_indirectly():
    graph = local_graph()
    for name in CORE:
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            for m in module_imports(n):
                assert m not in LEARNED, f"hrinet.{name} reaches {m} through hrinet.{n}"
                if m in graph and m not in seen:
                    seen.add(m)
                    todo.append(m)
