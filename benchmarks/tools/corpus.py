"""Build the training and validation corpus from its recipe: public sources in, NRRD files out.

    python benchmarks/data/build_corpus.py --out ../corpus [--sources DIR] [--shared DIR]

Each series of ``benchmarks/data/corpus.toml`` comes from a public repository at a recorded
commit and path (a DICOM series, or one image file), or from the shared CT folder. Repositories
are looked up under ``--sources`` as ``owner+name`` (a bare snapshot, as the search tool's fetch
leaves it, or a clone) or ``owner/name`` (a clone); files are read at the recorded commit, never
from a working tree. Every file of every DICOM source is checked for de-identification (none of
the PS3.15 Basic Profile attributes that name a person, a place or an accession; ``IDENTIFYING``)
and every built volume against the voxel sha256 the recipe records. Sources kept for independent
evaluation (``EXCLUDED_REPOS``) are refused outside the ``excluded`` split, which is recorded for
provenance and built only with ``--with-excluded``. A missing source is skipped with one line; the
build never downloads anything. Nothing here is committed data: the corpus lives outside the
project.
"""

from __future__ import annotations

import argparse
import os
import re
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

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "benchmarks" / "data" / "corpus.toml"
#: Repositories whose data is kept for independent evaluation: never trained or validated on
#: (a git source's ``repo``, or named in a shared source's ``origin``).
EXCLUDED_REPOS = ("wasserth/TotalSegmentator", "neurolabusc/dcm_qa_ct",
                  "aryamanwastaken/covid_chestCT_image_analysis", "chafey/cornerstoneDemo",
                  "Tarnished006/Marvel-GPP")
#: Collections kept for independent evaluation, matched anywhere in a series' description.
EXCLUDED_COLLECTIONS = ("MIDRC-RICORD",)
#: The split recording series from excluded sources (provenance of earlier weights only).
EXCLUDED_SPLIT = "excluded"
#: The attributes of DICOM PS3.15's Basic Application Level Confidentiality Profile (Table E.1-1)
#: that name a person, a place or an accession, as (tag, what); sequences are not read (SimpleITK
#: does not expose them), so attributes nested in a sequence's items are not checked.
IDENTIFYING = (
    ("0010|0010", "patient name"), ("0010|0030", "birth date"), ("0010|0032", "birth time"),
    ("0010|1001", "other patient names"), ("0010|1005", "patient birth name"),
    ("0010|1060", "patient mother's birth name"), ("0010|1040", "patient address"),
    ("0010|2154", "patient telephone numbers"), ("0010|1000", "other patient IDs"),
    ("0010|2297", "responsible person"), ("0010|2299", "responsible organization"),
    ("0038|0300", "current patient location"), ("0038|0400", "patient institution residence"),
    ("0008|0050", "accession number"), ("0040|1001", "requested procedure ID"),
    ("0040|2016", "placer order number"), ("0040|2017", "filler order number"),
    ("0008|0080", "institution name"), ("0008|0081", "institution address"),
    ("0008|1040", "institutional department name"), ("0008|1010", "station name"),
    ("0008|0090", "referring physician"), ("0008|0092", "referring physician address"),
    ("0008|0094", "referring physician telephone numbers"),
    ("0008|1048", "physicians of record"), ("0008|1050", "performing physician"),
    ("0008|1060", "physicians reading the study"), ("0008|1070", "operators"),
    ("0032|1032", "requesting physician"), ("0040|0006", "scheduled performing physician"),
    ("0040|a123", "person name"), ("0040|0241", "performed station AE title"),
    ("0040|0242", "performed station name"), ("0040|0243", "performed location"),
    ("0040|1010", "intended recipients of results"), ("0040|2008", "order entered by"),
    ("0040|2009", "order enterer location"), ("0040|2010", "order callback phone number"),
)
#: Identifiers a de-identifier replaces by dummies (PS3.15 action Z or D): accepted only in a file
#: that declares Patient Identity Removed (0012,0062) = YES, as TCIA's hashed accession numbers do.
DUMMY_ALLOWED = ("0008|0050", "0040|1001", "0040|2016", "0040|2017")
#: Values that stand for a removed one (compared case-insensitively).
PLACEHOLDERS = frozenset(("-", "ANON", "ANONYMOUS", "ANONYMIZED", "ANONYMISED", "DEIDENTIFIED",
                          "DE-IDENTIFIED", "REMOVED", "REMOVED BY CTP", "XDONEX", "UNKNOWN",
                          "NONE", "N/A", "NA"))


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


def check_name(name) -> None:
    """Refuse a series name that is not a plain file name (letters, digits, ``.``, ``_``, ``-``;
    not starting with a dot): the name becomes ``<out>/<name>.nrrd``, so ``../x`` or ``a/b``
    would write outside ``--out``."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise HRINetError(f"series name {name!r} in the recipe is not a plain file name (letters, "
                          "digits, '.', '_', '-'; no folders); rename it")


def load_recipe(path: Path = RECIPE) -> list:
    """The series of the recipe, each a dict (see ``corpus.toml``); every name is checked to be
    a plain file name (``check_name``)."""
    try:
        with open(path, "rb") as f:
            series = tomllib.load(f)["series"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise HRINetError(f"cannot read the recipe {path} ({exc}); it must be a TOML file of "
                          "[[series]] tables") from None
    for s in series:
        check_name(s.get("name"))
    return series


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


def _is_removed(value: str) -> bool:
    """Whether a header value is empty or a placeholder for a removed one."""
    bare = value.replace("^", " ").replace("=", " ").strip()
    return not bare or " ".join(bare.upper().split()) in PLACEHOLDERS


def pseudonymous_name(name: str, patient_id: str) -> bool:
    """Whether a PatientName names no person: empty, a placeholder, the Patient ID itself, or one
    component (no ``^`` given, middle, prefix or suffix name; no ``=`` ideographic group) whose
    every word holds a digit, as pseudonyms such as ``LIDC-IDRI-0314`` or ``STS_001`` do.
    ``ANON1^Jane Doe`` (a given name) and ``Jane Doe`` (words without digits) name a person."""
    if _is_removed(name):
        return True
    groups = name.split("=")
    if any(g.strip(" ^") for g in groups[1:]):
        return False
    components = [c.strip() for c in groups[0].split("^")]
    if any(components[1:]):
        return False
    family = components[0]
    if patient_id and family == patient_id.strip():
        return True
    return all(any(ch.isdigit() for ch in word) for word in family.split())


def file_identifies(path: Path) -> list:
    """What in one DICOM file's header names a person, a place or an accession, as
    ``what (gggg,eeee)`` entries (empty: de-identified, or not a DICOM file). Reads the header
    only."""
    r = sitk.ImageFileReader()
    r.SetImageIO("GDCMImageIO")
    r.SetFileName(str(path))
    try:
        r.ReadImageInformation()
    except RuntimeError:
        return []

    def meta(tag: str) -> str:
        return r.GetMetaData(tag).strip() if r.HasMetaDataKey(tag) else ""

    removed = meta("0012|0062").upper() == "YES"
    found = []
    for tag, what in IDENTIFYING:
        value = meta(tag)
        if tag == "0010|0010":
            ok = pseudonymous_name(value, meta("0010|0020"))
        elif tag in ("0010|0030", "0010|0032"):
            ok = not value.strip(" -")
        else:
            ok = _is_removed(value) or (removed and tag in DUMMY_ALLOWED)
        if not ok:
            found.append(f"{what} ({tag.replace('|', ',').upper()})")
    return found


def identifying_tags(where: Path) -> list:
    """What in a DICOM series' headers names a person, a place or an accession (empty:
    de-identified): every file under ``where`` (a folder, or one file such as a multi-frame
    DICOM) is read, each finding as ``what (tag) in file`` (a few files named, then a count)."""
    files = [where] if where.is_file() else sorted(p for p in where.rglob("*") if p.is_file())
    by_attribute: dict = {}
    for f in files:
        for attribute in file_identifies(f):
            by_attribute.setdefault(attribute, []).append(
                f.name if f == where else f.relative_to(where).as_posix())
    found = []
    for attribute, names in by_attribute.items():
        more = f" and {len(names) - 3} more files" if len(names) > 3 else ""
        found.append(f"{attribute} in {', '.join(names[:3])}{more}")
    return found


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
            bad = identifying_tags(where)
            if bad:
                return f"refused {name}: not de-identified: {'; '.join(bad)}"
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
    try:
        recipe = load_recipe(Path(args.recipe))
    except HRINetError as exc:
        print(f"build_corpus.py: error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        return list_split(recipe, args.list, out)
    out.mkdir(parents=True, exist_ok=True)
    statuses = []
    for series in recipe:
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
