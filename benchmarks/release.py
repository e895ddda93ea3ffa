"""What a release publishes, made from the committed tree (``make release``).

    python benchmarks/release.py [--out dist]      # dist/SlicerHRINet and dist/assets
    python benchmarks/release.py --catalog         # rewrite Resources/weights/catalog.json

``dist/SlicerHRINet/`` is the extension's repository as it would be pushed: the committed files
of HEAD with the default model only, as one commit (the development history, with its earlier
weights, stays here). ``dist/assets/`` holds every other model (weights and sidecar), the files
published with the release that ``hrinet models --get`` fetches and checks against the catalog.
The release is then checked as the Slicer Extensions Index checks a submission, offline: the
size of a full clone (its ``.git`` included) under 100 MB, a licence file, the catalog entry and
the top-level CMakeLists.txt. Nothing is pushed or uploaded.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "HRINetLib"))

from hrinet import __version__  # noqa: E402
from hrinet.core.catalog import CATALOG_NAME, sha256_file  # noqa: E402
from hrinet.core.shipped import DEFAULT_NAME, quality_line  # noqa: E402

WEIGHTS = Path("Resources") / "weights"
#: The Extensions Index's limit on a clone of the extension's repository.
SIZE_LIMIT_MB = 100
#: What the weights are published under (the training data's own licences are in each sidecar).
LICENCE = "Apache-2.0"
#: Top-level CMakeLists.txt settings the index reads.
CMAKE_KEYS = ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS",
              "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS")


def homepage(root: Path = REPO) -> str:
    text = (root / "CMakeLists.txt").read_text(encoding="utf-8")
    return re.search(r'set\(EXTENSION_HOMEPAGE "([^"]+)"\)', text).group(1).rstrip("/")


def make_catalog(root: Path = REPO) -> dict:
    """The catalog of every weights file in ``Resources/weights`` (the default first)."""
    folder = root / WEIGHTS
    url = f"{homepage(root)}/releases/download/v{__version__}/"
    files = sorted(folder.glob("*.safetensors"), key=lambda p: (p.name != DEFAULT_NAME, p.name))
    models = []
    for path in files:
        sidecar = path.with_suffix(".json")
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        models.append({"name": path.stem, "variant": meta["variant"], "file": path.name,
                       "size": path.stat().st_size, "sha256": sha256_file(path),
                       "sidecar": sidecar.name, "sidecar_sha256": sha256_file(sidecar),
                       "url": url, "licence": LICENCE, "quality": quality_line(meta),
                       "bundled": path.name == DEFAULT_NAME})
    return {"version": __version__, "models": models}


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


def make_release(out: Path) -> Path:
    """``out/SlicerHRINet`` (one commit) and ``out/assets``; returns the repository folder."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    if status.strip():
        print("release: note: uncommitted changes are not in the release (it is made from HEAD)")
    committed = subprocess.run(["git", "show", f"HEAD:{WEIGHTS.as_posix()}/{CATALOG_NAME}"],
                               cwd=REPO, capture_output=True, text=True)
    if committed.returncode or committed.stdout != catalog_text():
        raise SystemExit(f"release: {WEIGHTS / CATALOG_NAME} is not the catalog of the committed "
                         "weights; run python benchmarks/release.py --catalog and commit it")
    repo, assets = out / repo_name(), out / "assets"
    for folder in (repo, assets):
        shutil.rmtree(folder, ignore_errors=True)  # only what an earlier release made
    repo.mkdir(parents=True)
    assets.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "head.tar"
        subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), "HEAD"], cwd=REPO,
                       check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(repo, filter="data")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    for entry in make_catalog()["models"]:
        if not entry["bundled"]:
            for name in (entry["file"], entry["sidecar"]):
                shutil.move(str(repo / WEIGHTS / name), str(assets / name))
    git = ["git", "-c", "user.name=HRINetSlicer release", "-c", "user.email=release@invalid",
           "-c", "init.defaultBranch=main"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-q", "-m", f"SlicerHRINet {__version__} (development "
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
    assets = sorted(p.name for p in (Path(args.out) / "assets").iterdir())
    print(f"wrote {repo} (one commit; a clone is {size:.1f} MB of {SIZE_LIMIT_MB}) and "
          f"{len(assets)} files in {Path(args.out) / 'assets'}")
    for failure in failures:
        print(f"release: index check failed: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
