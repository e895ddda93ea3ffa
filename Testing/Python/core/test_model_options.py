"""The model options are declared once (hrinet.core.model_options): every command that runs a
model parses them from that declaration, and every job the Slicer panel starts builds its
command line from it, so what a job asks for is what the command reads."""

from __future__ import annotations

import itertools
import random
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from hrinet.cli.app import build_parser
from hrinet.core.constants import CLASSICAL_METHODS, PRECISIONS, QUALITIES
from hrinet.core.model_options import LEARNED_ONLY, ModelOptions, from_args

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "HRINetSlicer"))


def _draw(rng: random.Random) -> ModelOptions:
    target = rng.choice(["factor", "spacing", None])
    return ModelOptions(
        factor=rng.randint(2, 12) if target == "factor" else None,
        spacing=rng.choice([0.5, 0.8, 1.0, 1.25]) if target == "spacing" else None,
        method=rng.choice(["linear", "cubic", "flow", "hrinet", "acai", None]),
        weights=rng.choice([None, "/models/w.safetensors"]),
        device=rng.choice(["auto", "cpu", "cuda"]),
        precision=rng.choice(PRECISIONS),
        quality=rng.choice(QUALITIES),
        thickness=rng.choice([None, 0.0, 2.5, 5.0]))


def _expected(options: ModelOptions) -> ModelOptions:
    """What a command reads back: the learned-only options at their defaults for a classical
    method (they are left off its command line)."""
    if options.learned:
        return options
    defaults = {f.name: f.default for f in fields(ModelOptions) if f.name in LEARNED_ONLY}
    return ModelOptions(**{**options.__dict__, **defaults})


@pytest.mark.parametrize("seed", range(200))
def test_what_argv_asks_for_is_what_interpolate_and_batch_read(seed):
    options = _draw(random.Random(seed))
    parser = build_parser()
    for command in (["interpolate", "in.nrrd", "out.nrrd"], ["batch", "in", "--out", "o"]):
        args = parser.parse_args([*command, *options.argv()])
        assert from_args(args) == _expected(options), (command, options.argv())


def test_each_command_that_runs_a_model_parses_its_options_from_the_one_declaration():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    declared = {f.metadata["flag"]: f for f in fields(ModelOptions)}
    uses = {"interpolate": set(declared), "batch": set(declared),
            "evaluate": {"--device", "--precision", "--quality"}, "adapt": {"--device"}}
    for name, flags in uses.items():
        actions = {a.option_strings[0]: a for a in sub[name]._actions if a.option_strings}
        for flag in flags:
            f, action = declared[flag], actions[flag]
            assert action.help == f.metadata["help"], (name, flag)
            assert action.default == f.default, (name, flag)
            assert action.choices == f.metadata["argparse"].get("choices"), (name, flag)


def test_a_factor_is_a_whole_number_everywhere():
    parser = build_parser()
    for command in (["interpolate", "a.nrrd", "b.nrrd"], ["batch", "in", "--out", "o"]):
        assert parser.parse_args([*command, "--factor", "4"]).factor == 4
        assert parser.parse_args([*command, "--factor", "4.0"]).factor == 4
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--factor", "2.5"])


def test_factor_and_spacing_exclude_each_other():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["interpolate", "a", "b", "--factor", "2", "--spacing", "1"])


@pytest.mark.parametrize("method, precision, device, quality",
                         list(itertools.product(["cubic", "hrinet"], PRECISIONS,
                                                ["auto", "cpu"], QUALITIES)))
def test_the_panels_batch_job_asks_for_exactly_its_settings(tmp_path, method, precision,
                                                             device, quality):
    from HRINetSlicerLib.batch_job import BatchJob

    job = BatchJob(tmp_path / "in", tmp_path / "out",
                   ModelOptions(method=method, factor=3, precision=precision, device=device,
                                thickness=2.5, quality=quality))
    argv = job.command()
    args = build_parser().parse_args(argv[argv.index("hrinet.cli") + 1:])
    got = from_args(args)
    assert (got.method, got.factor, got.thickness) == (method, 3, 2.5)
    if method in CLASSICAL_METHODS:
        assert (got.precision, got.device, got.quality) == ("auto", "auto", "standard")
    else:
        assert (got.precision, got.device, got.quality) == (precision, device, quality)


def test_the_panels_jobs_pass_every_option_through_unchanged(scene, tmp_path):
    """Any options the panel can give (every field, drawn at random) reach the interpolation
    and batch commands as given: both jobs resolve an unset thickness to 0 (the acquired slices
    kept), and the interpolation job the target to the planned factor."""
    from hrinet.core.phantom import make_phantom
    from HRINetSlicerLib.batch_job import BatchJob
    from HRINetSlicerLib.jobs import InterpolationJob, as_run
    from HRINetSlicerLib.mrml import node_from_volume, plan_for_node

    node = node_from_volume(make_phantom(size=(16, 16, 4), spacing=(1, 1, 3)), "thick", scene)
    parser = build_parser()
    for seed in range(60):
        options = _draw(random.Random(seed))
        batch = BatchJob(tmp_path / "in", tmp_path / "out", options).command()
        assert from_args(parser.parse_args(batch[batch.index("hrinet.cli") + 1:])) == \
            _expected(as_run(options))
        job = InterpolationJob(node, options)
        job.folder = tmp_path / "job"
        argv = [str(a) for a in job.command()]
        plan = plan_for_node(node, options)
        assert from_args(parser.parse_args(argv[argv.index("hrinet.cli") + 1:])) == _expected(
            ModelOptions(**{**options.__dict__, "factor": plan.factor, "spacing": None,
                            "method": plan.method, "thickness": options.thickness or 0.0}))


def test_a_job_given_something_else_than_model_options_says_so(scene, tmp_path):
    from hrinet.core.phantom import make_phantom
    from HRINetSlicerLib.batch_job import BatchJob
    from HRINetSlicerLib.jobs import InterpolationJob
    from HRINetSlicerLib.mrml import node_from_volume

    node = node_from_volume(make_phantom(size=(16, 16, 4), spacing=(1, 1, 3)), "thick", scene)
    with pytest.raises(TypeError, match="expected ModelOptions.*got int 2"):
        InterpolationJob(node, 2)
    with pytest.raises(TypeError, match="expected ModelOptions.*got function"):
        BatchJob(tmp_path / "in", tmp_path / "out", lambda done, total: None)


def test_the_panels_interpolation_job_asks_for_exactly_its_settings(scene):
    from hrinet.core.phantom import make_phantom
    from HRINetSlicerLib.jobs import InterpolationJob
    from HRINetSlicerLib.mrml import node_from_volume

    node = node_from_volume(make_phantom(size=(16, 16, 4), spacing=(1, 1, 3)), "thick", scene)
    for precision, quality in itertools.product(PRECISIONS, QUALITIES):
        job = InterpolationJob(node, ModelOptions(factor=3, method="hrinet", precision=precision,
                                                  device="cpu", weights="/models/w.safetensors",
                                                  quality=quality))
        job.folder = Path("/tmp/job")
        argv = job.command()
        got = from_args(build_parser().parse_args(argv[argv.index("hrinet.cli") + 1:]))
        assert got == ModelOptions(factor=3, method="hrinet", weights="/models/w.safetensors",
                                   device="cpu", precision=precision, quality=quality,
                                   thickness=0.0)  # restore unchecked: the slices kept


def _job_classes() -> set:
    """Every background job class of the panel (a Job subclass in HRINetSlicerLib)."""
    from HRINetSlicerLib import adaptation, batch_job, download_job, jobs  # noqa: F401

    found, todo = set(), [jobs.Job]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("HRINetSlicerLib.") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_every_job_the_panel_builds_parses_with_the_real_hrinet_parser(scene, tmp_path):
    """Each job's command line (interpolate, batch, train and resume, adapt, models --get; the
    panel starts no evaluate job) is read by hrinet's own parser as the job meant it: a flag
    the command lacks (as adapt once lacked --crop) fails here, not in the user's log."""
    from hrinet.core.models.shipped import DEFAULT_NAME, find_weights
    from hrinet.core.phantom import make_phantom
    from HRINetSlicerLib.batch_job import BatchJob
    from HRINetSlicerLib.download_job import DownloadJob
    from HRINetSlicerLib.adaptation import AdaptJob, adapt_job
    from HRINetSlicerLib.jobs import InterpolationJob
    from HRINetSlicerLib.training_job import TrainingJob
    from HRINetSlicerLib.mrml import node_from_volume

    node = node_from_volume(make_phantom(size=(16, 16, 4), spacing=(1, 1, 3)), "thick", scene)
    interpolation = InterpolationJob(node, ModelOptions(factor=2, method="hrinet",
                                                        precision="bf16"), confidence=True)
    interpolation.folder = tmp_path / "job"
    data = [str(tmp_path / "a.nrrd"), str(tmp_path / "b.nrrd")]
    training = TrainingJob(tmp_path / "run", variant="hrinet-plus", iterations=77, crop=192,
                           batch=3, device="cpu", init_weights="/w/start.safetensors",
                           volume_paths=data)
    adapting = adapt_job(tmp_path / "adapt", node, iterations=33, crop=256, device="cpu")
    adapting.paths = data[:1]  # the exported input, without exporting it
    commands = {
        InterpolationJob: [interpolation.command()],
        BatchJob: [BatchJob(tmp_path / "in", tmp_path / "out",
                            ModelOptions(method="cubic", factor=3))
                   .command()],
        TrainingJob: [training.command(), training.command(resume=True)],
        AdaptJob: [adapting.command()],
        DownloadJob: [DownloadJob("acai", source=str(tmp_path)).command()],
    }
    assert set(commands) == _job_classes()  # a new job joins this test
    parsed = {}
    for cls, argvs in commands.items():
        for argv in argvs:
            assert argv[1:4] == ["-m", "hrinet.cli", "--progress"] and argv[4] == "jsonl"
            parsed.setdefault(cls, []).append(
                build_parser().parse_args([str(a) for a in argv[argv.index("hrinet.cli") + 1:]]))
    a = parsed[InterpolationJob][0]
    assert (a.command, a.input, a.factor, a.precision) == ("interpolate",
                                                           str(tmp_path / "job" / "in.nrrd"),
                                                           2, "bf16")
    assert a.confidence == str(tmp_path / "job" / "confidence.nrrd") and a.progress == "jsonl"
    a = parsed[BatchJob][0]
    assert (a.command, a.method, a.factor, a.shard) == ("batch", "cubic", 3, "1/1")
    new, resumed = parsed[TrainingJob]
    assert new.command == "train" and (new.variant, new.iterations, new.crop, new.batch) == \
        ("hrinet-plus", 77, 192, 3)
    assert list(new.data) == data and new.init_weights == "/w/start.safetensors"
    assert not new.resume and resumed.resume and resumed.init_weights is None
    a = parsed[AdaptJob][0]
    assert (a.command, a.input, a.iterations, a.crop, a.device) == ("adapt", data[0], 33, 256,
                                                                    "cpu")
    assert a.weights == str(find_weights(DEFAULT_NAME)) and a.out == str(tmp_path / "adapt")
    a = parsed[DownloadJob][0]
    assert (a.command, a.get) == ("models", "acai")
