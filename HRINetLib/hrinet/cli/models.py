"""``hrinet models``: every model of the catalog, installed or not, with its measured quality;
``--get`` downloads one on request (:mod:`hrinet.core.models.downloads`: sha256-verified, cached,
at most the catalog's size, within ``--deadline``), the name resolved as everywhere else
(:func:`hrinet.core.models.catalog.find_model`). Every run first removes the partial files that
killed downloads left in the cache."""

from __future__ import annotations

import sys

from hrinet.cli.progress import BYTE, progress_bar
from hrinet.core.models.catalog import find_model, load_catalog
from hrinet.core.models.downloads import DEADLINE_S, fetch_model, remove_stale_downloads
from hrinet.core.models.shipped import shipped_models


def add_models_arguments(s) -> None:
    s.add_argument("--get", metavar="NAME", help="download this model of the catalog (its name, "
                   "its variant, hrinet for the default model, or the start of one name) into "
                   "the cache folder, sha256 verified (default: none, list)")
    s.add_argument("--from", dest="source", metavar="URL|FOLDER", help="where the release "
                   "assets are (a mirror, or the dist/assets folder of make release; default: "
                   "the catalog's release URL)")
    s.add_argument("--deadline", type=float, default=DEADLINE_S, metavar="SECONDS",
                   help="give up a download that has not finished after this many seconds "
                   f"(default {DEADLINE_S:g}; a slow connection may need more)")


def cmd_models(args) -> int:
    """List the models, or download one (``--get``); either way first remove what killed
    downloads left in the cache (a download in progress elsewhere is left alone)."""
    models = load_catalog()
    for stale in remove_stale_downloads(models):
        print(f"hrinet: removed {stale}, left by an interrupted download", file=sys.stderr)
    if args.get is not None:  # an empty name is refused, not taken for "list"
        return _get_model(args, models)
    catalog = {m.name: m for m in models}
    shipped = shipped_models()
    width = max([len(m.name) for m in models] + [len(m.path.stem) for m in shipped])
    group = None
    for m in shipped:  # present: under their headings, with their measured quality
        if m.group != group:
            group = m.group
            print(f"{group}:")
        # the same columns as the catalog's rows below: a model has one name in a checkout and
        # in a release (its file's name; --get takes it or the variant)
        print(f"  {m.path.stem:{width}s} {m.variant:18s} {m.quality}\n  {'':{width}s} "
              f"{'':18s} --weights {m.path}")
        catalog.pop(m.path.stem, None)
    if catalog:
        print("not installed (a verified download on request: hrinet models --get NAME):")
        for m in catalog.values():
            print(f"  {m.name:{width}s} {m.variant:18s} {m.size / 2 ** 20:5.1f} MB  {m.quality}")
    return 0


def _get_model(args, catalog) -> int:
    model = find_model(args.get, catalog, option="--get")
    bar, update = progress_bar(model.size, f"downloading {model.file}", BYTE)

    def progress(done: int, total: int) -> None:
        update(done, total)
        args.events.emit("progress", done=done, total=total, unit="byte")

    try:
        path = fetch_model(model, source=args.source, progress=progress,
                           deadline_s=args.deadline)
    finally:
        bar.close()
    print(f"{model.name}: {path} (sha256 verified)")
    args.events.emit("wrote", path=str(path))
    return 0
