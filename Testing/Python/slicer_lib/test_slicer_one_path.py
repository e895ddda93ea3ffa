"""The module's one way to interpolate (the panel's background job, which the Logic and the
self-test wait for), Slicer's process without PyTorch, and the events the jobs read, defined
in the library's lowest layer: against the real MRML library (PyPI slicer-core)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import slicer  # noqa: F401  (the real MRML library from the PyPI package slicer-core)

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "HRINetSlicer"))

from hrinet.core.errors import HRINetError  # noqa: E402
from hrinet.core.model_options import ModelOptions  # noqa: E402
from HRINetSlicerLib.jobs import interpolate_node  # noqa: E402


def test_the_module_interpolates_one_way_only_the_panels_background_job():
    """The panel's job is the only interpolation: the Logic (and so the self-test) waits for
    it, the MRML layer forwards to it, and no module runs the library's engine in Slicer's
    process (where it would have no precision option, and import torch)."""
    import ast
    import inspect

    from HRINetSlicerLib import jobs, mrml

    lib = REPO / "HRINetSlicer" / "HRINetSlicerLib"
    for source in sorted(lib.glob("*.py")):  # imports anywhere, functions included
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = {node.module or ""} | {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            engine = {"upsample_z", "create_interpolator", "hrinet.methods",
                      "hrinet.methods.engine", "hrinet.learned"} & names
            assert not engine and not any(n.startswith("hrinet.learned.") for n in names), \
                f"{source.name} imports {engine or names}"
    logic = ast.parse((lib / "panel_logic.py").read_text(encoding="utf-8"))
    method = next(n for n in ast.walk(logic)
                  if isinstance(n, ast.FunctionDef) and n.name == "interpolate")
    calls = {c.func.id for c in ast.walk(method) if isinstance(c, ast.Call)
             and isinstance(c.func, ast.Name)}
    assert "interpolate_node" in calls
    assert "from .jobs import interpolate_node" in \
        (lib / "panel_logic.py").read_text(encoding="utf-8")
    assert "logic.interpolate(" in (lib / "selftest.py").read_text(encoding="utf-8")
    assert "from .jobs import interpolate_node" in inspect.getsource(mrml.interpolate_node)
    assert "InterpolationJob(" in inspect.getsource(jobs.interpolate_node)


def test_the_waited_job_takes_the_panels_options_and_gives_a_node(scene, thick_node,
                                                                   monkeypatch):
    """interpolate_node is the panel's job: its precision (and every other option) reaches
    the command, and the node it returns is the job's, with the record."""
    from HRINetSlicerLib.jobs import InterpolationJob

    commands = []
    command = InterpolationJob.command
    monkeypatch.setattr(InterpolationJob, "command",
                        lambda job: commands.append(command(job)) or commands[-1])
    out, seconds = interpolate_node(thick_node, ModelOptions(factor=2, method="cubic",
                                                             device="cpu"),
                                    name="waited", scene=scene)
    assert out.GetName().startswith("waited (interpolated x2") and seconds > 0
    assert out.GetAttribute("HRINet.method") == "cubic"
    assert out.GetAttribute("HRINet.sourceNodeID") == thick_node.GetID()
    with pytest.raises(HRINetError, match="does not exist"):
        interpolate_node(thick_node, ModelOptions(factor=2, method="hrinet", precision="bf16",
                                                  device="cpu",
                                                  weights="/nonexistent.safetensors"))
    argv = [str(a) for a in commands[-1]]
    assert argv[argv.index("--precision") + 1] == "bf16" and "--progress" in argv


def test_slicers_process_reads_the_weights_sidecar_without_torch(tmp_path):
    """Adapt names the starting model's variant from its JSON sidecar; Slicer's own process
    imports no PyTorch for it (nor for any job module)."""
    import json
    import subprocess

    from hrinet.core.models.shipped import DEFAULT_NAME, find_weights
    from HRINetSlicerLib.adaptation import sidecar_variant

    shipped = find_weights(DEFAULT_NAME)
    script = f"""
import sys
sys.modules["torch"] = None  # any import of torch now fails
sys.path.insert(0, {str(REPO / "HRINetSlicer")!r})
import slicer
from hrinet.core.phantom import make_phantom
from HRINetSlicerLib import adaptation, batch_job, download_job, jobs, mrml, process
node = mrml.node_from_volume(make_phantom(size=(16, 16, 4), spacing=(1, 1, 3)), "t",
                             slicer.vtkMRMLScene())
job = adaptation.adapt_job({str(tmp_path / "adapt")!r}, node, crop=192)
print(job.variant, job.crop, job.init_weights)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    variant = json.loads(shipped.with_suffix(".json").read_text())["variant"]
    assert r.stdout.split() == [variant, "192", str(shipped)]
    with pytest.raises(HRINetError, match="w.safetensors does not exist"):
        sidecar_variant(tmp_path / "w.safetensors")
    (tmp_path / "w.safetensors").write_bytes(b"")
    with pytest.raises(HRINetError, match="no sidecar w.json"):
        sidecar_variant(tmp_path / "w.safetensors")
    (tmp_path / "w.json").write_text("[1, 2]")
    with pytest.raises(HRINetError, match="not an HRINet weights description"):
        sidecar_variant(tmp_path / "w.safetensors")


def test_event_names_are_one_enum_in_the_lowest_layer_with_todays_wire_strings(capsys):
    """hrinet.core.events defines the events; the command writes them, the panel's jobs read
    them from there (never from hrinet.cli, the top layer)."""
    import ast
    import json

    from hrinet.cli.events import Events
    from hrinet.core.events import EVENTS, Event, parse

    assert EVENTS == ("plan", "progress", "case", "warning", "wrote", "summary", "error")
    assert all(isinstance(e, str) and e == e.value and str(e) == e.value and f"{e}" == e.value
               for e in Event)
    Events(enabled=True).emit(Event.WROTE, path="a.nrrd")
    Events(enabled=True).emit("progress", done=1, total=2, unit="pair")
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["wrote", "progress"]
    assert parse(lines[0]) == {"event": Event.WROTE, "path": "a.nrrd"}
    assert parse(lines[0])["event"] is Event.WROTE
    for other in ("wrote x", '{"event": "done"}', '{"event": ["wrote"]}', "[1]", "{oops"):
        assert parse(other) is None
    with pytest.raises(ValueError, match="unknown event"):
        Events().emit("finished")
    lib = REPO / "HRINetSlicer"
    for source in sorted(lib.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any(n == "hrinet.cli" or n.startswith("hrinet.cli.") for n in names), \
                source.name
