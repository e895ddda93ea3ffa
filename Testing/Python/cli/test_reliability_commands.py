"""The commands around the model (adapt, evaluate, train, interpolate's preview, the help and the
learned extra): a folder or file of the user's is never replaced, a stopped run leaves the earlier
result whole, a run continues from any working directory, and every hint names what exists."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pytest
from helpers import cli, one_line_error
from hrinet.core.errors import HRINetError
from hrinet.core.io import write_volume
from hrinet.core.phantom import make_phantom


def _tree(folder: Path) -> dict:
    """Every file under ``folder`` (relative name -> sha256 of its bytes)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- adapt: only a new, empty or adaptation-owned folder is written ------------------------

@pytest.fixture
def start_weights(tmp_path):
    from hrinet.learned.models import ModelConfig
    from hrinet.learned.networks import build_generator
    from hrinet.learned.weights import save_weights

    return save_weights(build_generator(ModelConfig.for_variant("hrinet-flow")),
                        tmp_path / "start" / "start.safetensors", {"training": {}})


def _thick():
    return make_phantom(size=(64, 64, 26), spacing=(1, 1, 4), seed=1)


def _adapt(out, weights, **kw):
    from hrinet.training.adapt import adapt

    return adapt(_thick(), out, weights=str(weights), iterations=1, crop=64, device="cpu",
                 log=None, **kw)


@pytest.mark.parametrize("name", ["loss.png", "adapt.json", "hrinet-flow.json",
                                  "hrinet-adapted.json"])
def test_adapt_refuses_a_folder_holding_a_file_of_the_users_it_would_replace(tmp_path,
                                                                         start_weights, name):
    out = tmp_path / "mine"
    out.mkdir()
    for n in ("loss.png", "adapt.json", "hrinet-flow.json", "notes.txt", "hrinet-adapted.json"):
        (out / n).write_text(f"the user's {n}\n")
    before = _tree(out)
    with pytest.raises(HRINetError, match=r"holds (loss\.png|adapt\.json|hrinet-flow\.json|"
                                          r"hrinet-adapted\.json).*choose a new or empty folder"):
        _adapt(out, start_weights)
    assert _tree(out) == before  # nothing written, nothing removed
    # the one file named alone is in the way too
    for n in list(before):
        if n != name:
            (out / n).unlink()
    with pytest.raises(HRINetError, match=re.escape(name)):
        _adapt(out, start_weights)
    assert (out / name).read_text() == f"the user's {name}\n"


def test_adapt_in_a_folder_of_its_own_records_each_file_it_wrote_with_its_sha256(tmp_path,
                                                                                 start_weights):
    from hrinet.training.adapt import FOLDER_MARK, owned_files

    out = tmp_path / "run"
    _adapt(out, start_weights)
    owned = owned_files(out)
    assert "adapt.json" in owned and "loss.png" in owned
    for name, digest in owned.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert set(owned) | {FOLDER_MARK} == {p.name for p in out.iterdir()}
    _adapt(out, start_weights)  # its own folder: adapted again, as often as asked


def test_adapt_leaves_other_files_in_its_folder_alone(tmp_path, start_weights):
    """The Slicer panel keeps the exported input and its job log in the folder; a user may keep
    notes there: none of them is in the way, and none is touched."""
    out = tmp_path / "run"
    (out / "inputs").mkdir(parents=True)
    (out / "inputs" / "00-case.nrrd").write_text("the exported input")
    (out / "notes.txt").write_text("my notes")
    (out / "job.log").write_text("{}\n")
    before = _tree(out)
    _adapt(out, start_weights)
    after = _tree(out)
    assert {k: after[k] for k in before} == before


def test_adapt_refuses_a_file_of_its_own_that_was_changed_since(tmp_path, start_weights):
    out = tmp_path / "run"
    _adapt(out, start_weights)
    (out / "loss.png").write_bytes(b"the user's own plot, saved over it")
    with pytest.raises(HRINetError, match="loss.png, was changed since adaptation wrote it"):
        _adapt(out, start_weights)
    assert (out / "loss.png").read_bytes() == b"the user's own plot, saved over it"


def test_adapt_on_the_command_line_refuses_the_users_folder_in_one_line(tmp_path):
    src = write_volume(_thick(), tmp_path / "case.nrrd")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "loss.png").write_text("mine")
    (out / "notes.txt").write_text("mine")
    r = cli("adapt", src, "--out", out, "--iterations", "1", "--device", "cpu")
    one_line_error(r, "holds loss.png, which adaptation did not write")
    assert (out / "loss.png").read_text() == "mine" and sorted(os.listdir(out)) == [
        "loss.png", "notes.txt"]


# ---- interpolate --preview: checked like the output, before any work -----------------------

@pytest.mark.parametrize("overwrite", [False, True])
def test_a_preview_that_is_a_link_to_nothing_is_refused_before_any_work(tmp_path, phantom,
                                                                         overwrite):
    from hrinet.cli import main

    src = write_volume(phantom, tmp_path / "thick.nrrd")
    link = tmp_path / "preview.png"
    link.symlink_to(tmp_path / "gone" / "preview.png")
    out = tmp_path / "out.nrrd"
    argv = ["interpolate", str(src), str(out), "--method", "linear", "--preview", str(link)]
    assert main(argv + (["--overwrite"] if overwrite else [])) == 2
    assert not out.exists()  # refused before the work
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "gone" / "preview.png")


def test_a_preview_link_to_nothing_is_one_line_naming_the_preview(tmp_path, phantom):
    src = write_volume(phantom, tmp_path / "thick.nrrd")
    link = tmp_path / "p.png"
    link.symlink_to(link)  # a loop
    r = cli("interpolate", src, tmp_path / "o.nrrd", "--method", "linear", "--preview", link)
    one_line_error(r, "the preview")
    assert "symbolic link to nothing" in r.stderr and not (tmp_path / "o.nrrd").exists()


# ---- every option a help text names exists --------------------------------------------------

def _subcommands(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_texts(parser: argparse.ArgumentParser):
    """``(text, parser it speaks of)`` for every text ``--help`` shows for ``parser``: its
    description and epilog, each argument's help (with %(default)s and the like filled in) and
    each subcommand's one-line help, which speaks of that subcommand."""
    formatter = parser._get_formatter()
    yield parser.description or "", parser
    yield parser.epilog or "", parser
    for action in parser._actions:
        if action.help and action.help is not argparse.SUPPRESS:
            yield formatter._expand_help(action), parser
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield choice.help or "", action.choices[choice.dest]


OPTION = re.compile(r"(?<![\w-])(--[A-Za-z][\w-]*[A-Za-z0-9])")
#: "hrinet models --get" in another command's help: that command's option.
OTHER_COMMAND = re.compile(r"\bhrinet ([a-z]+)\b[^.;()]*?(--[A-Za-z][\w-]*[A-Za-z0-9])")


def _accepts(parser: argparse.ArgumentParser, option: str) -> bool:
    return option in {o for a in parser._actions for o in a.option_strings}


def test_every_option_a_help_text_names_is_accepted_by_its_command():
    from hrinet.cli.app import build_parser

    top = build_parser()
    commands = _subcommands(top)
    assert {"interpolate", "evaluate", "train", "adapt", "batch", "models"} <= set(commands)
    wrong = []
    for name, parser in [("hrinet", top)] + sorted(commands.items()):
        for text, about in _help_texts(parser):
            elsewhere = {opt: cmd for cmd, opt in OTHER_COMMAND.findall(text) if cmd in commands}
            for option in OPTION.findall(text):
                owner = commands[elsewhere[option]] if option in elsewhere else about
                if not (_accepts(owner, option) or _accepts(top, option)):
                    wrong.append(f"{name}: {option} in {text!r}")
    assert not wrong, "\n".join(wrong)


def test_train_help_names_no_channels_option_and_every_option_it_names_parses(capsys):
    from hrinet.cli.app import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    assert "--channels" not in text
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["train", "--channels", "16", "--out", "r"])
    assert stop.value.code == 2  # no such option, as the help now says


# ---- the learned extra: the missing package is named, with the install line ----------------

@pytest.fixture
def without_safetensors(monkeypatch):
    """PyTorch importable, safetensors not (``pip install .`` without the learned extra):
    the learned modules are imported afresh while safetensors fails to import."""
    import hrinet

    saved, package = dict(sys.modules), hrinet.learned if hasattr(hrinet, "learned") else None
    for name in list(sys.modules):
        if name == "safetensors" or name.startswith(("safetensors.", "hrinet.learned")):
            del sys.modules[name]
    sys.modules["safetensors"] = None  # import safetensors -> ModuleNotFoundError
    try:
        yield
    finally:
        for name in list(sys.modules):
            if name not in saved:
                del sys.modules[name]
        sys.modules.update(saved)
        if package is not None:
            hrinet.learned = package


def test_a_missing_safetensors_is_named_with_the_install_line_not_called_pytorch(
        without_safetensors):
    from hrinet.methods.registry import create_interpolator

    with pytest.raises(HRINetError) as err:
        create_interpolator("hrinet", device="cpu")
    text = str(err.value)
    assert "needs safetensors, which is not installed" in text
    assert 'pip install "hrinet[learned]"' in text and "PyTorch" not in text
    assert "\n" not in text


def test_the_default_method_without_safetensors_says_what_to_install(tmp_path, phantom,
                                                                      without_safetensors,
                                                                      capsys):
    from hrinet.cli import main

    src = write_volume(phantom, tmp_path / "thick.nrrd")
    assert main(["interpolate", str(src), str(tmp_path / "o.nrrd"), "--factor", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "safetensors, which is not installed" in err[0]
    assert 'pip install "hrinet[learned]"' in err[0] and not (tmp_path / "o.nrrd").exists()


def test_a_missing_pytorch_is_named_as_pytorch_with_the_install_line():
    from hrinet.methods.registry import missing_learned_words

    text = missing_learned_words("hrinet", ModuleNotFoundError("No module named 'torch'",
                                                               name="torch"))
    assert text.startswith("method hrinet needs PyTorch, which is not installed")
    assert 'pip install "hrinet[learned]"' in text and "cubic" in text


# ---- train --resume from another working directory ------------------------------------------

def _tiny_training_in(start: Path, monkeypatch) -> list:
    """A 4-step hrinet-flow run of one phantom, started in ``start`` with relative paths and
    stopped at step 2 (the options of test_checkpoint's tiny runs)."""
    from training_cases import volumes

    (start / "tr").mkdir(parents=True)
    write_volume(volumes()[0], start / "tr" / "t1.nrrd")
    write_volume(volumes()[1], start / "tr" / "v1.nrrd")
    monkeypatch.chdir(start)
    return ["train", "--data", "tr/t1.nrrd", "--val", "tr/v1.nrrd", "--val-every", "0",
            "--variant", "hrinet-flow", "--iterations", "4", "--crop", "64", "--batch", "2",
            "--device", "cpu", "--out", "run"]


def test_a_run_started_with_relative_paths_resumes_from_another_working_directory(
        tmp_path, monkeypatch):
    from hrinet.cli import main
    from hrinet.training.checkpoint import CHECKPOINT, read_checkpoint

    start = tmp_path / "project"
    argv = _tiny_training_in(start, monkeypatch)
    assert main(argv + ["--stop-at", "2"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--out", str(start / "run"), "--resume"]) == 0
    _, state = read_checkpoint(start / "run" / CHECKPOINT)
    assert state["step"] == 4
    assert state["config"]["data"] == [str(start / "tr" / "t1.nrrd")]
    assert state["config"]["val"] == [str(start / "tr" / "v1.nrrd")]
    saved = json.loads((start / "run" / "config.json").read_text())
    assert all(os.path.isabs(p) for p in saved["data"] + saved["val"])
    meta = json.loads((start / "run" / "hrinet-flow.json").read_text())
    assert meta["training"]["split"]["train"] == ["t1.nrrd"]  # the sidecar: names, no paths
    assert str(tmp_path) not in json.dumps(meta["lineage"][-1]["data"])


def test_resuming_a_run_recorded_with_relative_paths_elsewhere_says_where_to_resume_from(
        tmp_path, monkeypatch):
    """A run recorded before paths were made absolute (or started by a program with relative
    paths): the one line says why the volume is missing and what to do."""
    from hrinet.training.trainer import Trainer
    from training_cases import tiny, volumes

    start = tmp_path / "project"
    (start / "tr").mkdir(parents=True)
    write_volume(volumes()[0], start / "tr" / "t1.nrrd")
    monkeypatch.chdir(start)
    Trainer(tiny("hrinet-flow", 4, batch=2, data=["tr/t1.nrrd"]), "run", log=None).run(stop_at=2)
    monkeypatch.chdir(tmp_path)
    r = cli("train", "--out", start / "run", "--resume")
    one_line_error(r, "tr/t1.nrrd")
    assert "relative to the folder it was started in: resume from that folder" in r.stderr
    monkeypatch.chdir(start)  # from where it started, it resumes
    r = cli("train", "--out", "run", "--resume")
    assert r.returncode == 0, r.stderr


# ---- an empty path (an unset shell variable) is never the current folder --------------------

@pytest.mark.parametrize("argv, said", [
    (["interpolate", "", "o.nrrd"], "the input"),
    (["interpolate", "in.nrrd", ""], "the output"),
    (["info", ""], "the input"),
    (["batch", "", "--out", "results"], "the input"),
    (["evaluate", "in.nrrd", "--out", ""], "the output"),
    (["train", "--data", "in.nrrd", "--out", " "], "the output"),
    (["train", "--data", "", "--out", "run"], "--data"),
    (["interpolate", "in.nrrd", "o.nrrd", "--series", ""], "--series"),
])
def test_an_empty_path_is_refused_never_taken_for_the_current_folder(tmp_path, monkeypatch,
                                                                     capsys, argv, said):
    from hrinet.cli.app import main

    write_volume(make_phantom(size=(16, 16, 4)), tmp_path / "in.nrrd")
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1, err
    assert f"an empty value was given for {said} (an unset shell variable?)" in err
    assert _tree(tmp_path) == before  # nothing read there was written back, nothing new


def test_an_output_file_named_with_a_trailing_slash_is_refused(tmp_path):
    src = write_volume(make_phantom(size=(16, 16, 4)), tmp_path / "in.nrrd")
    r = cli("interpolate", src, f"{tmp_path / 'o.nrrd'}/", "--method", "linear")
    one_line_error(r, "ends with a slash, as a folder does")
    assert not (tmp_path / "o.nrrd").exists()
    r = cli("interpolate", src, tmp_path / "o.nrrd", "--method", "linear", "--preview",
            f"{tmp_path / 'p.png'}/")
    one_line_error(r, "the preview")
    assert not (tmp_path / "o.nrrd").exists() and not (tmp_path / "p.png").exists()
    from hrinet.training.lineage import export_checkpoint

    with pytest.raises(HRINetError, match="ends with a slash"):
        export_checkpoint(src, f"{tmp_path / 'w.safetensors'}/")
