"""Property: whatever a cohort looks like and however its runs go, ``hrinet batch`` changes no
file it did not write, every recorded output is the file it recorded (hash and options), and
every case of a finished run has exactly one row.

A seeded generator draws each sequence: a folder tree or a manifest with colliding names
(``scan.nrrd`` beside ``scan.nii.gz``, names equal but for letter case, an output that is an
input), files of the user's at output paths, then runs with changed options, shard layouts that
change between runs, merges, and stops at random points (SIGTERM while writing a volume, between
moving an output in and recording it, or mid-computation); ``--out`` is given now as it is,
now through a link to it.
"""

from __future__ import annotations

import csv
import hashlib
import random
from pathlib import Path

import pytest
from hrinet.cli import main
from hrinet.cli.signals import Terminated
from hrinet.core import cohort
from hrinet.core.io import write_volume
from hrinet.core.phantom import make_phantom

NAMES = ["a.nrrd", "b.nrrd", "scan.nrrd", "scan.nii.gz", "Scan.nrrd", "sub/a.nrrd", "c.mha"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(root: Path) -> dict:
    return {p: _digest(p) for p in root.rglob("*") if p.is_file()}


def _make_cohort(rng: random.Random, root: Path):
    """A tree or a manifest, and the files of the user's at paths a batch might write."""
    inputs = root / "in"
    for i, name in enumerate(rng.sample(NAMES, rng.randint(1, 4))):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        write_volume(make_phantom(size=(12, 12, rng.randint(2, 4)), spacing=(1, 1, 3), seed=i),
                     inputs / name)
    present = sorted(str(p.relative_to(inputs)) for p in inputs.rglob("*") if p.is_file())
    out = root / "out"
    if rng.random() < 0.5:
        source = inputs
    else:  # a manifest: outputs drawn from a pool that holds inputs and users' files
        pool = [f"res/{n}" for n in ("x.nrrd", "y.nrrd", "report.nrrd", "X.nrrd")] + \
            [f"in/{p}" for p in present]
        lines = ["input,output"]
        for _ in range(rng.randint(1, 4)):
            lines.append(f"in/{rng.choice(present)},{rng.choice(pool)}")
        source = root / "manifest.csv"
        source.write_text("\n".join(lines) + "\n", encoding=rng.choice(["utf-8", "utf-8-sig"]))
    for target in rng.sample(["out/a.nrrd", "out/scan.nrrd", "res/report.nrrd", "res/x.nrrd",
                              "out/sub/a.nrrd"], rng.randint(0, 2)):
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        (root / target).write_text(f"the user's {target}\n")
    return source, out


def _stop_at(rng: random.Random, monkeypatch) -> None:
    """Arrange a SIGTERM at a random point of the next run (or none)."""
    import hrinet.cli.batch_case as batch  # where each case is interpolated and written

    where = rng.choice(["none", "none", "write_volume", "write_results", "upsample_z"])
    if where == "none":
        return
    owner = cohort if where == "write_results" else batch
    real, count, when = getattr(owner, where), [0], rng.randint(1, 4)

    def maybe_stop(*a, **k):
        count[0] += 1
        if count[0] == when:
            raise Terminated("SIGTERM")
        return real(*a, **k)

    monkeypatch.setattr(owner, where, maybe_stop)


def _rows(path: Path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _check(root: Path, source: Path, out: Path, before: dict, code: int, argv) -> None:
    for path, digest in before.items():  # nothing the batch did not write has changed
        assert path.is_file() and _digest(path) == digest, (argv, path)
    assert not [p for p in root.rglob("*") if ".partial" in p.name], argv
    for table in out.glob("results*.csv"):
        for r in _rows(table):  # every recorded output is what it records
            if r["status"] == "ok":
                assert _digest(Path(r["output"])) == r["output_sha256"], (argv, r)
    if code in (0, 1) and "--merge" not in argv:
        index, count = cohort.parse_shard(argv[argv.index("--shard") + 1])
        cases = cohort.read_manifest(source) if source.is_file() else \
            cohort.find_cases(source, out)
        mine = [c for c in cases if cohort.shard_of(c, count) == index]
        table = _rows(out / cohort.results_name(index, count))
        keys = [cohort.Case(r["input"], r["output"], r["series_uid"]).key for r in table]
        assert len(keys) == len(set(keys)), argv
        assert {c.key for c in mine} <= set(keys), argv  # one row for every case
        options = f"method={argv[argv.index('--method') + 1]}"
        for r in table:
            if r["status"] == "ok" and r["input"] in {c.input for c in mine}:
                assert f"factor={argv[argv.index('--factor') + 1]}" in r["options"], (argv, r)
                assert options in r["options"], (argv, r)


def _sequence(seed: int, root: Path, monkeypatch) -> None:
    rng = random.Random(seed)
    source, out = _make_cohort(rng, root)
    (root / "out-link").symlink_to("out", target_is_directory=True)  # the same --out
    before = _snapshot(root)
    for _ in range(rng.randint(2, 4)):
        if rng.random() < 0.15 and out.exists():
            argv = ["batch", str(out), "--merge", "--partial"]
        else:
            count = rng.choice([1, 1, 2, 3])
            given = out if rng.random() < 0.7 else root / "out-link"
            argv = ["batch", str(source), "--out", str(given), "--method",
                    rng.choice(["linear", "cubic"]), "--factor", str(rng.choice([2, 3])),
                    "--shard", f"{rng.randint(1, count)}/{count}"]
        with monkeypatch.context() as m:
            _stop_at(rng, m)
            code = main(argv)
        assert code in (0, 1, 2, 143), (seed, argv, code)
        _check(root, source, out, before, code, argv)


@pytest.mark.parametrize("block", range(4))
def test_batch_sequences_never_change_what_they_did_not_write(tmp_path, monkeypatch, block):
    for seed in range(block * 10, block * 10 + 10):
        _sequence(seed, tmp_path / str(seed), monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(10))
def test_five_hundred_batch_sequences_never_change_what_they_did_not_write(tmp_path,
                                                                          monkeypatch, block):
    for seed in range(1000 + block * 50, 1000 + block * 50 + 50):
        _sequence(seed, tmp_path / str(seed), monkeypatch)
