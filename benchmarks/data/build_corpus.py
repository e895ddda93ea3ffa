"""Build the training and validation corpus from its recipe: public sources in, NRRD files out.

    python benchmarks/data/build_corpus.py --out ../corpus [--sources DIR] [--shared DIR]

Each series of ``corpus.toml`` (beside this script) comes from a public repository at a recorded
commit and path (a DICOM series, or one image file), or from the shared CT folder. Repositories
are looked up under ``--sources`` as ``owner+name`` (a bare snapshot, as the search tool's fetch
leaves it, or a clone) or ``owner/name`` (a clone); files are read at the recorded commit, never
from a working tree. Every DICOM series is checked for de-identification (no patient name other
than its ID, no birth date, no institution) and every built volume against the voxel sha256 the
recipe records. A missing source is skipped with one line; the build never downloads anything.
Nothing here is committed data: the corpus lives outside the project.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import tomllib
from hrinet.core.errors import HRINetError
from hrinet.core.io import read_volume, write_volume
from hrinet.core.volume import voxel_sha256

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "corpus.toml"
REPO_ROOT = HERE.parents[1]
#: Repositories whose data is kept for independent evaluation: never trained or validated on
#: (a git source's ``repo``, or named in a shared source's ``origin``).
EXCLUDED_REPOS = ("wasserth/TotalSegmentator", "neurolabusc/dcm_qa_ct",
                  "aryamanwastaken/covid_chestCT_image_analysis", "chafey/cornerstoneDemo",
                  "Tarnished006/Marvel-GPP")
#: Collections kept for independent evaluation, matched anywhere in a series' description.
EXCLUDED_COLLECTIONS = ("MIDRC-RICORD",)
#: The split recording series from excluded sources (provenance of earlier weights only).
EXCLUDED_SPLIT = "excluded"
#: DICOM tags that identify a person or a place: (tag, what).
IDENTIFYING = (("0010|0010", "patient name"), ("0010|0030", "birth date"),
               ("0008|0080", "institution"))


def excluded_source(series: dict) -> str | None:
    """Why ``series`` comes from a source kept for independent evaluation, or None.

    A git source is matched by its repository, a shared source by the repository its ``origin``
    names, and any series by a RICORD collection in its name, licence or origin; the match is
    case-insensitive, as GitHub's owner and repository names are."""
    src = series.get("source", {})
    where = " ".join(str(v) for v in (src.get("repo", ""), src.get("origin", ""),
                                      src.get("path", ""))).lower()
    for repo in EXCLUDED_REPOS:
        if src.get("repo", "").lower() == repo.lower() or repo.lower() in where:
            return f"{repo} is kept for independent evaluation"
    text = " ".join((series.get("name", ""), series.get("licence", ""), where)).upper()
    for collection in EXCLUDED_COLLECTIONS:
        if collection in text or collection.replace("-", "") in text.replace("-", "").replace("_", ""):
            return f"{collection} is kept for independent evaluation"
    return None


def load_recipe(path: Path = RECIPE) -> list:
    """The series of the recipe, each a dict (see ``corpus.toml``)."""
    with open(path, "rb") as f:
        return tomllib.load(f)["series"]


def git_dir(sources: Path, repo: str) -> Path | None:
    """The git directory of ``owner/name`` under ``sources``, or None."""
    owner, name = repo.split("/")
    for cand in (sources / f"{owner}+{name}" / "repo", sources / f"{owner}+{name}",
                 sources / owner / name):
        for g in (cand / ".git", cand):
            if (g / "objects").is_dir() and (g / "HEAD").is_file():
                return g
    return None


def extract(git: Path, commit: str, path: str, dest: Path) -> int:
    """Write the blobs under ``path`` at ``commit`` into ``dest``; returns how many."""
    ls = subprocess.run(["git", f"--git-dir={git}", "ls-tree", "-r", commit, "--", path],
                        capture_output=True, text=True)
    if ls.returncode != 0:
        raise HRINetError(f"commit {commit[:10]} is not in {git}; fetch the repository's history")
    items = [(line.split()[2], line.split("\t", 1)[1]) for line in ls.stdout.splitlines()
             if line.split()[1] == "blob"]
    cat = subprocess.Popen(["git", f"--git-dir={git}", "cat-file", "--batch"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    n = 0
    for sha, name in items:
        cat.stdin.write((sha + "\n").encode())
        cat.stdin.flush()
        head = cat.stdout.readline().split()
        if len(head) < 3 or head[1] == b"missing":
            continue
        data = cat.stdout.read(int(head[2]))
        cat.stdout.read(1)
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        n += 1
    cat.stdin.close()
    cat.wait()
    return n


def identifying_tags(folder: Path) -> list:
    """What in a DICOM series' headers names a person or a place (empty: de-identified)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    found = []
    for f in files[:: max(1, len(files) // 5)]:
        r = sitk.ImageFileReader()
        r.SetFileName(str(f))
        try:
            r.ReadImageInformation()
        except RuntimeError:
            continue
        pid = r.GetMetaData("0010|0020").strip() if r.HasMetaDataKey("0010|0020") else ""
        for tag, what in IDENTIFYING:
            value = r.GetMetaData(tag).strip() if r.HasMetaDataKey(tag) else ""
            named_by_id = tag == "0010|0010" and pid and value.startswith(pid)
            if value and value not in ("-", pid) and not named_by_id:
                found.append(f"{what} {value!r}")
    return sorted(set(found))


def narrowed(volume):
    """``volume`` as int16 when its integer voxels fit (GDCM gives int32 for some rescaled
    series; the narrowing is lossless and makes one series one digest, whatever the reader)."""
    a = volume.array
    if np.issubdtype(a.dtype, np.integer) and a.dtype != np.int16 and a.size \
            and a.min() >= -32768 and a.max() <= 32767:
        return volume.with_array(a.astype(np.int16))
    return volume


def build_one(series: dict, sources: Path, shared: Path, out: Path, record: bool = False) -> str:
    """Build one series into ``out``; returns its status line (``record``: only print the
    digest it builds to, for a series being added to the recipe)."""
    name, src = series["name"], series["source"]
    target = out / f"{name}.nrrd"
    why = excluded_source(series)
    if why and series["split"] != EXCLUDED_SPLIT:
        raise HRINetError(f"{name}: {why}; its split must be \"{EXCLUDED_SPLIT}\"")
    if not record and target.exists() and voxel_sha256(read_volume(target).array) == series["voxel_sha256"]:
        return f"present {name}"
    if src["kind"] == "shared":
        path = shared / src["file"]
        if not path.exists():
            return f"skipped {name}: {path} not found (the shared CT folder, --shared)"
        volume = read_volume(path)
    else:
        git = git_dir(sources, src["repo"])
        if git is None:
            return (f"skipped {name}: {src['repo']} not found under {sources}; clone "
                    f"https://github.com/{src['repo']} there (commit {src['commit'][:10]})")
        with tempfile.TemporaryDirectory() as tmp:
            if extract(git, src["commit"], src["path"], Path(tmp)) == 0:
                return f"skipped {name}: nothing at {src['path']} in {src['repo']}@{src['commit'][:10]}"
            where = Path(tmp) / src["path"]
            if where.is_dir():
                bad = identifying_tags(where)
                if bad:
                    return f"refused {name}: not de-identified ({', '.join(bad)})"
            volume = read_volume(where, series_uid=src.get("series_uid"))
    volume = narrowed(volume)
    digest = voxel_sha256(volume.array)
    if record:
        return f"digest {name} {digest}"
    if digest != series["voxel_sha256"]:
        return (f"mismatch {name}: voxel sha256 {digest[:12]} is not the recorded "
                f"{series['voxel_sha256'][:12]}; the source changed, check it before using it")
    write_volume(volume, target, overwrite=True)
    return f"built {name}"


def split_files(recipe: list, split: str, out: Path) -> tuple:
    """The built files of ``split`` under ``out`` (recipe order) and the names of its series
    not built there."""
    paths = [out / f"{s['name']}.nrrd" for s in recipe if s["split"] == split]
    return ([p for p in paths if p.is_file()],
            [p.name[:-len(".nrrd")] for p in paths if not p.is_file()])


def list_split(recipe: list, split: str, out: Path) -> int:
    """Print the built files of ``split`` under ``out``; a series not built is named on stderr
    (exit status 1 if any is missing: build the corpus first)."""
    files, missing = split_files(recipe, split, out)
    for path in files:
        print(path)
    if missing:
        print(f"not built in {out}: {', '.join(missing)}; run build_corpus.py --out {out}",
              file=sys.stderr)
    return 1 if missing else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO_ROOT.parent / "corpus"),
                   help="folder the NRRD files go to (default ../corpus beside the checkout)")
    p.add_argument("--sources", default=os.environ.get("HRINET_SOURCES", "sources"),
                   help="folder holding the source repositories (owner+name or owner/name)")
    p.add_argument("--shared", default=os.environ.get("HRINET_SHARED_CT",
                                                      str(REPO_ROOT.parent / "shared/data/ct")),
                   help="the shared CT folder (default ../shared/data/ct, or $HRINET_SHARED_CT)")
    p.add_argument("--recipe", default=str(RECIPE))
    p.add_argument("--digests", action="store_true", help="print each series' voxel sha256 "
                   "as built (to record a new series), writing nothing")
    p.add_argument("--list", choices=("train", "validation", "demo"), help="print the paths of "
                   "the built series of this split (one per line, recipe order), building nothing")
    p.add_argument("--with-excluded", action="store_true", help="also build the series of the "
                   f"\"{EXCLUDED_SPLIT}\" split (sources kept for independent evaluation, recorded "
                   "as the provenance of earlier weights; never for training or validation)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.list:
        return list_split(load_recipe(Path(args.recipe)), args.list, out)
    out.mkdir(parents=True, exist_ok=True)
    statuses = []
    for series in load_recipe(Path(args.recipe)):
        if series["split"] == EXCLUDED_SPLIT and not args.with_excluded:
            line = f"excluded {series['name']}: {excluded_source(series) or 'excluded split'}"
            statuses.append(line)
            print(line, flush=True)
            continue
        try:
            line = build_one(series, Path(args.sources), Path(args.shared), out, args.digests)
        except HRINetError as exc:
            line = f"failed {series['name']}: {exc}"
        statuses.append(line)
        print(line, flush=True)
    bad = [s for s in statuses if s.split()[0] in ("mismatch", "failed", "refused")]
    ready = sum(s.split()[0] in ("built", "present") for s in statuses)
    print(f"{ready} of {len(statuses)} series in {out}; {len(bad)} refused or mismatched")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
