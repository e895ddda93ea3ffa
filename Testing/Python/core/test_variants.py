"""The variant registry (:mod:`hrinet.core.variants`) is the one place that says what a variant
is: no other module of the library or of the Slicer module compares a variant's name, and
adding a variant is adding one record."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List

import hrinet
from hrinet.core import variants
from hrinet.core.variants import DEFAULT_VARIANT, REGISTRY, VARIANTS, menu_order, variant

REPO = Path(hrinet.__file__).resolve().parents[2]
REGISTRY_FILE = Path(variants.__file__).resolve()
#: The comparisons the guard looks at (``is`` compares objects, never names).
NAME_COMPARISONS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def holds_a_variant_name(value) -> bool:
    """Whether ``value`` is a variant name, or a collection (or mapping) with one."""
    if isinstance(value, str):
        return value in VARIANTS
    if isinstance(value, (tuple, list, set, frozenset, dict)):
        return any(isinstance(v, str) and v in VARIANTS for v in value)
    return False


#: Constants of the registry that hold names (``DEFAULT_VARIANT``, ``STAGE1_RESULT``...), by
#: name: such a name read as an attribute (``variants.DEFAULT_VARIANT``) is one too.
REGISTRY_CONSTANTS = {k for k, v in vars(variants).items() if k.isupper() and
                      holds_a_variant_name(v)}


class NameComparisons(ast.NodeVisitor):
    """Finds, in one module, every comparison of a variant name and every per-name table."""

    def __init__(self, tree: ast.Module):
        self.found: List[ast.AST] = []
        #: Module-level names bound to a variant name, or to names: imported or assigned.
        self.constants = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and \
                    (node.module or "").startswith("hrinet"):
                module = importlib.import_module(node.module)
                self.constants |= {a.asname or a.name for a in node.names
                                   if holds_a_variant_name(getattr(module, a.name, None))}
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and \
                    self.names_a_variant(node.value):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                self.constants |= {t.id for t in targets if isinstance(t, ast.Name)}
        self.visit(tree)

    def names_a_variant(self, node: ast.AST) -> bool:
        """A literal variant name, a constant holding one, or a collection or sum of such."""
        if isinstance(node, ast.Constant):
            return holds_a_variant_name(node.value)
        if isinstance(node, ast.Name):
            return node.id in self.constants
        if isinstance(node, ast.Attribute):
            return node.attr in REGISTRY_CONSTANTS
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(self.names_a_variant(e) for e in node.elts)
        if isinstance(node, ast.Dict):
            return any(k is not None and self.names_a_variant(k) for k in node.keys)
        if isinstance(node, ast.BinOp):
            return self.names_a_variant(node.left) or self.names_a_variant(node.right)
        return False

    @staticmethod
    def is_a_variant_name(node: ast.AST) -> bool:
        """An expression whose value is some variant's name: ``cfg.variant``,
        ``meta["variant"]``, ``meta.get("variant")``, ``variant(x).name``."""
        if isinstance(node, ast.Attribute):
            return node.attr == "variant" or (
                node.attr == "name" and isinstance(node.value, ast.Call) and
                getattr(node.value.func, "id", None) == "variant")
        if isinstance(node, ast.Subscript):
            return isinstance(node.slice, ast.Constant) and node.slice.value == "variant"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            return node.func.attr == "get" and bool(node.args) and \
                isinstance(node.args[0], ast.Constant) and node.args[0].value == "variant"
        return False

    @staticmethod
    def is_text(node: ast.AST) -> bool:
        """A string literal, or a collection of them (a name not registered yet)."""
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str)
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and \
            any(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts)

    def visit_Compare(self, node: ast.Compare) -> None:
        sides = [node.left, *node.comparators]
        if any(isinstance(op, NAME_COMPARISONS) for op in node.ops) and (
                any(self.names_a_variant(s) for s in sides) or
                (any(self.is_a_variant_name(s) for s in sides) and
                 any(self.is_text(s) for s in sides))):
            self.found.append(node)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.constants:
            self.found.append(node)  # a lookup in a per-name table
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        if self.names_a_variant(node):
            self.found.append(node)  # a per-name table
        self.generic_visit(node)


def name_comparisons(source: str) -> List[str]:
    """``"<line>: <code>"`` of each comparison of a variant name in ``source``."""
    return [f"{n.lineno}: {ast.get_source_segment(source, n)}"
            for n in NameComparisons(ast.parse(source)).found]


def project_modules() -> List[Path]:
    """Every Python module of the library and of the Slicer module."""
    return sorted(p for top in (REPO / "HRINetLib" / "hrinet", REPO / "HRINetSlicer")
                  for p in top.rglob("*.py"))


def test_no_module_compares_a_variant_name_outside_the_registry():
    """Code asks ``variant(name)`` what a variant is; a name compared (or a table keyed by
    names) in some module is a second definition that drifts (the defaults once disagreed)."""
    modules = project_modules()
    assert len(modules) > 80 and REGISTRY_FILE in modules
    found: Dict[str, List[str]] = {}
    for path in modules:
        if path != REGISTRY_FILE:
            hits = name_comparisons(path.read_text(encoding="utf-8"))
            if hits:
                found[str(path.relative_to(REPO))] = hits
    assert found == {}


def test_the_guard_flags_every_way_a_name_was_compared():
    """The forms the library used before the registry held every fact (each must be found),
    beside comparisons that name no variant (none may be)."""
    flagged = {
        "the default by its constant": """
            from hrinet.core.variants import DEFAULT_VARIANT
            if cfg.variant == DEFAULT_VARIANT: pass""",
        "a stage by constants": """
            from hrinet.core.variants import STAGE1_RESULT
            STAGE2_VARIANTS = ("hrinet-patchgan", "hrinet-mse", "hrinet-perceptual")
            if meta["variant"] == STAGE1_RESULT and cfg.variant in STAGE2_VARIANTS: pass""",
        "a table of names built from a constant": """
            from hrinet.core.variants import DEFAULT_VARIANT
            AUTO_BF16_VARIANTS = (DEFAULT_VARIANT,)
            ok = variant in AUTO_BF16_VARIANTS""",
        "a literal name": 'ok = name == "hrinet-flow"',
        "a literal not registered yet": 'ok = cfg.variant != "hrinet-next"',
        "literal names from metadata": 'ok = meta.get("variant") in ("ae", "acai")',
        "an attribute of the registry": 'ok = name == variants.STAGE1_RESULT',
        "a menu order by names": """
            from hrinet.core.variants import DEFAULT_VARIANT, PAPER_VARIANTS
            order = sorted(names, key=lambda v: (v != DEFAULT_VARIANT, v in PAPER_VARIANTS))""",
        "a per-name table and its lookup": """
            SPECS = {"ae": 1.0, "acai": 0.5}
            fraction = SPECS[self.variant]""",
    }
    for what, source in flagged.items():
        assert name_comparisons(textwrap.dedent(source)), what
    clean = """
        from hrinet.core.variants import GROUP_DEFAULT, variant
        same = meta["variant"] != cfg.variant  # two records' names: the same variant or not
        ok = name == "hrinet" or variant(name).default  # "hrinet" is the method, not a variant
        heading = m.group == GROUP_DEFAULT
        if variant(cfg.variant).motion and cfg.precision != "fp32": pass"""
    assert name_comparisons(textwrap.dedent(clean)) == []


def test_the_registry_has_one_default_and_one_stage1_result_and_lists_every_variant():
    assert VARIANTS == tuple(REGISTRY) and len(set(VARIANTS)) == len(VARIANTS)
    assert variant(DEFAULT_VARIANT).default
    assert [v.name for v in REGISTRY.values() if v.default] == [DEFAULT_VARIANT]
    assert [v.name for v in REGISTRY.values() if v.stage1_result] == [variants.STAGE1_RESULT]
    # menus: the default, then ours, then the paper's, newest first under each heading
    assert menu_order()[0] == DEFAULT_VARIANT and sorted(menu_order()) == sorted(VARIANTS)
    paper = [n for n in menu_order() if n in variants.PAPER_VARIANTS]
    assert menu_order()[-len(paper):] == tuple(paper) == variants.PAPER_VARIANTS[::-1]


def test_adding_a_variant_is_one_record(tmp_path):
    """A copy of the library with one record added (docs/development.md, "Adding a variant")
    offers the new variant to train, builds its network and resolves its settings."""
    copy = tmp_path / "hrinet"
    shutil.copytree(REPO / "HRINetLib" / "hrinet", copy,
                    ignore=shutil.ignore_patterns("shipped_weights", "__pycache__"))
    registry = copy / "core" / "variants.py"
    text = registry.read_text(encoding="utf-8")
    last = ")}\n\n\ndef _the_one"
    assert text.count(last) == 1
    record = ('    Variant("hrinet-flow-small", GROUP_OURS, motion=True, channels=(8, 16, 24, 32),\n'
              '            supervised=True, unsupervised=False, group_sizes=(3, 4, 5)),\n')
    registry.write_text(text.replace(last, record + last), encoding="utf-8")
    script = """
import torch
from hrinet.cli.app import build_parser
from hrinet.core.variants import VARIANTS, menu_order
from hrinet.learned.models import ModelConfig
from hrinet.learned.networks import build_generator
from hrinet.learned.precision import resolve_precision
from hrinet.methods.registry import available_methods
from hrinet.training.config import TrainConfig
new = "hrinet-flow-small"
train = build_parser()._subparsers._group_actions[0].choices["train"]
assert new in train.format_help() and new in VARIANTS and new in menu_order()
assert new in available_methods()
net = build_generator(ModelConfig.for_variant(new))
assert type(net).__name__ == "MotionNet" and net.cfg.channels == (8, 16, 24, 32)
cfg = TrainConfig(variant=new, precision="bf16")
cfg.check()
assert cfg.resolved().group_sizes == (3, 4, 5) and cfg.resolved().stage1_iterations == 0
assert resolve_precision("auto", torch.device("cpu"), new) == "fp32"  # not measured yet
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_a_group_of_n_slices_spans_n_minus_one_and_back():
    """``--gaps`` speaks of gaps and the training recipe of group sizes: one pair of functions
    turns each into the other, and the variants' and a run's settings use them."""
    from hrinet.core.variants import gap_group_sizes, group_gaps, variant

    assert group_gaps((3, 4, 9)) == (2, 3, 8)
    assert gap_group_sizes((2, 3, 8)) == (3, 4, 9)
    assert group_gaps(gap_group_sizes((2, 2, 5))) == (2, 2, 5)
    flow = variant("hrinet-flow")
    assert flow.gaps == group_gaps(flow.group_sizes) and min(flow.gaps) == 2
