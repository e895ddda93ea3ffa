"""What a release publishes, made from the committed tree (``make release``).

    python benchmarks/release.py [--out dist]      # dist/SlicerHRINet and dist/assets
    python benchmarks/release.py --catalog         # rewrite Resources/weights/catalog.json

``dist/SlicerHRINet/`` is the extension's repository as it would be pushed: the committed files
of HEAD with the default model only, as one commit (the development history, with its earlier
weights, stays here; development material such as ``benchmarks/candidates`` is left out).
``dist/assets/`` holds every other model (weights and sidecar), the files published with the
release that ``hrinet models --get`` fetches and checks against the catalog. The committed
catalog must be the catalog of the committed weights (both come from HEAD; the working tree
plays no part). After building, what is in dist -- the repository as a clone gets it, and the
assets -- is checked against the catalog's sizes and sha256 (:func:`verify_dist`), and as the
Slicer Extensions Index checks a submission, offline: the size of a full clone (its ``.git``
included) under 100 MB, a licence file, the catalog entry and the top-level CMakeLists.txt.
Nothing is pushed or uploaded.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "HRINetLib"))

from hrinet import __version__  # noqa: E402
from hrinet.core.errors import HRINetError  # noqa: E402
from hrinet.core.io.atomic import file_sha256  # noqa: E402
from hrinet.core.models.catalog import CATALOG_NAME, load_catalog  # noqa: E402
from hrinet.core.models.shipped import DEFAULT_NAME, quality_line  # noqa: E402

WEIGHTS = Path("Resources") / "weights"
#: The Extensions Index's limit on a clone of the extension's repository.
SIZE_LIMIT_MB = 100
#: What the weights are published under (the training data's own licences are in each sidecar).
LICENCE = "Apache-2.0"
#: Top-level CMakeLists.txt settings the index reads.
#: Committed folders that are development material, never part of the extension's repository
#: (weights kept to continue training from, not a shipped model).
NOT_SHIPPED = ("benchmarks/candidates",)
CMAKE_KEYS = ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS",
              "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS")


def homepage(root: Path = REPO) -> str:
    text = (root / "CMakeLists.txt").read_text(encoding="utf-8")
    return re.search(r'set\(EXTENSION_HOMEPAGE "([^"]+)"\)', text).group(1).rstrip("/")


def version(root: Path = REPO) -> str:
    """The package version of the tree at ``root`` (HEAD's for a release, not this checkout's)."""
    text = (root / "HRINetLib" / "hrinet" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    return found.group(1) if found else __version__


def make_catalog(root: Path = REPO) -> dict:
    """The catalog of every weights file in ``root/Resources/weights`` (the default first)."""
    folder = root / WEIGHTS
    url = f"{homepage(root)}/releases/download/v{version(root)}/"
    files = sorted(folder.glob("*.safetensors"), key=lambda p: (p.name != DEFAULT_NAME, p.name))
    models = []
    for path in files:
        sidecar = path.with_suffix(".json")
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        models.append({"name": path.stem, "variant": meta["variant"], "file": path.name,
                       "size": path.stat().st_size, "sha256": file_sha256(path),
                       "sidecar": sidecar.name, "sidecar_sha256": file_sha256(sidecar),
                       "url": url, "licence": LICENCE, "quality": quality_line(meta),
                       "bundled": path.name == DEFAULT_NAME})
    return {"version": version(root), "models": models}


def catalog_text(root: Path = REPO) -> str:
    return json.dumps(make_catalog(root), indent=2) + "\n"


def tree_size_mb(folder: Path) -> float:
    """Every file under ``folder``, ``.git`` included (as the index measures a clone)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2 ** 20


def index_checks(clone: Path) -> list:
    """The Extensions Index's offline checks of a clone; the failures, in words."""
    failures = []
    size = tree_size_mb(clone)
    if size > SIZE_LIMIT_MB:
        failures.append(f"a clone is {size:.1f} MB, over the {SIZE_LIMIT_MB} MB limit")
    if not any((clone / n).is_file() for n in ("LICENSE", "LICENCE", "LICENSE.txt", "COPYING")):
        failures.append("no licence file in the repository root")
    cmake = (clone / "CMakeLists.txt").read_text(encoding="utf-8")
    failures += [f"CMakeLists.txt sets no {k}" for k in CMAKE_KEYS
                 if not re.search(rf'set\({k}\s+"[^"]+"\)', cmake)]
    entries = sorted(clone.glob("*.json"))
    if len(entries) != 1:
        return failures + [f"expected one catalog entry (*.json) at the root, found {len(entries)}"]
    entry = json.loads(entries[0].read_text(encoding="utf-8"))
    name = entries[0].stem
    for key in ("$schema", "category", "scm_url", "scm_revision", "build_dependencies"):
        if key not in entry:
            failures.append(f"the catalog entry has no {key}")
    if name.startswith("Slicer"):
        failures.append(f"the extension name {name} starts with 'Slicer'")
    repo = re.search(r"github\.com/[^/]+/([^/.]+)(\.git)?$", entry.get("scm_url", ""))
    if repo is None or not repo.group(1).startswith("Slicer"):
        failures.append("scm_url does not name a GitHub repository whose name starts with Slicer")
    category = re.search(r'set\(EXTENSION_CATEGORY "([^"]+)"\)', cmake)
    if category is None or category.group(1) != entry.get("category"):
        failures.append("the catalog entry's category is not the CMakeLists.txt's")
    return failures


def verify_dist(repo: Path, assets: Path) -> list:
    """What is wrong with a built release, read from its files; the failures, in words.

    The catalog in ``repo`` must describe the files actually there: each bundled model (weights
    and sidecar) in ``repo/Resources/weights``, every other one in ``assets``, each with the
    catalog's size and sha256; nothing else in either folder, no weights anywhere else in the
    repository and none of :data:`NOT_SHIPPED`."""
    weights = repo / WEIGHTS
    try:
        catalog = load_catalog(weights / CATALOG_NAME)
    except HRINetError as exc:
        return [str(exc)]
    failures, expected = [], {weights: {CATALOG_NAME}, assets: set()}
    for m in catalog:
        folder = weights if m.bundled else assets
        expected[folder] |= {m.file, m.sidecar}
        for name, size, sha256 in m.files:
            path = folder / name
            if not path.is_file():
                failures.append(f"{path} is missing (the catalog lists it)")
            elif size is not None and path.stat().st_size != size:
                failures.append(f"{path} has {path.stat().st_size} bytes, the catalog says {size}")
            elif file_sha256(path) != sha256:
                failures.append(f"{path} does not match the catalog's sha256")
    for folder, names in expected.items():
        present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        failures += [f"{folder / n} is not in the catalog" for n in sorted(present - names)]
    for path in sorted(repo.rglob("*.safetensors")):
        if ".git" not in path.relative_to(repo).parts and path.parent != weights:
            failures.append(f"{path} is weights outside {WEIGHTS} (not in the catalog)")
    failures += [f"{repo / n} is development material and must not be shipped"
                 for n in NOT_SHIPPED if (repo / n).exists()]
    return failures


def make_release(out: Path) -> Path:
    """``out/SlicerHRINet`` (one commit) and ``out/assets``, both from HEAD; returns the
    repository folder. Refuses (before touching ``out``) when HEAD's catalog is not the catalog
    of HEAD's weights."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    if status.strip():
        print("release: note: uncommitted changes are not in the release (it is made from HEAD)")
    repo, assets = out / repo_name(), out / "assets"
    with tempfile.TemporaryDirectory() as tmp:
        archive, tree = Path(tmp) / "head.tar", Path(tmp) / "tree"
        subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), "HEAD"], cwd=REPO,
                       check=True)
        tree.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        committed = tree / WEIGHTS / CATALOG_NAME
        if not committed.is_file() or committed.read_text(encoding="utf-8") != catalog_text(tree):
            raise SystemExit(f"release: the committed {WEIGHTS / CATALOG_NAME} is not the catalog "
                             "of the committed weights; run python benchmarks/release.py "
                             "--catalog and commit it with the weights")
        for name in NOT_SHIPPED:
            shutil.rmtree(tree / name, ignore_errors=True)
        for folder in (repo, assets):
            shutil.rmtree(folder, ignore_errors=True)  # only what an earlier release made
        out.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tree), str(repo))
    assets.mkdir(parents=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    for entry in make_catalog(repo)["models"]:
        if not entry["bundled"]:
            for name in (entry["file"], entry["sidecar"]):
                shutil.move(str(repo / WEIGHTS / name), str(assets / name))
    git = ["git", "-c", "user.name=HRINetSlicer release", "-c", "user.email=release@invalid",
           "-c", "init.defaultBranch=main"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-q", "-m", f"SlicerHRINet {version(repo)} (development "
                          f"commit {head})"], cwd=repo, check=True)
    return repo


def repo_name() -> str:
    return homepage().rsplit("/", 1)[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "dist"), help="where the release goes (dist)")
    p.add_argument("--catalog", action="store_true", help=f"rewrite {WEIGHTS / CATALOG_NAME} "
                   "from the weights in it and stop")
    args = p.parse_args()
    if args.catalog:
        (REPO / WEIGHTS / CATALOG_NAME).write_text(catalog_text(), encoding="utf-8")
        print(f"wrote {WEIGHTS / CATALOG_NAME}")
        return 0
    repo = make_release(Path(args.out))
    with tempfile.TemporaryDirectory() as tmp:  # checked as the index checks: a full clone
        clone = Path(tmp) / repo.name
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        failures = index_checks(clone)
        size = tree_size_mb(clone)
        # what is in dist, as built and as a clone gets it, against the catalog
        failures += verify_dist(repo, Path(args.out) / "assets")
        failures += [f.replace(str(clone), f"a clone of {repo}")
                     for f in verify_dist(clone, Path(args.out) / "assets") if str(clone) in f]
    assets = sorted(p.name for p in (Path(args.out) / "assets").iterdir())
    print(f"wrote {repo} (one commit; a clone is {size:.1f} MB of {SIZE_LIMIT_MB}) and "
          f"{len(assets)} files in {Path(args.out) / 'assets'}")
    for failure in failures:
        print(f"release: check failed: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
