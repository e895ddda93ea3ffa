"""``hrinet models``: every model of the catalog, installed or not, with its measured quality;
``--get`` downloads one on request (:mod:`hrinet.core.catalog`: sha256-verified, cached)."""

from __future__ import annotations

from hrinet.cli.progress import progress_bar
from hrinet.core.catalog import fetch_model, find_model, load_catalog
from hrinet.core.shipped import shipped_models


def add_models_arguments(s) -> None:
    s.add_argument("--get", metavar="NAME", help="download this model of the catalog (its name "
                   "or variant) into the cache folder, sha256 verified (default: none, list)")
    s.add_argument("--from", dest="source", metavar="URL|FOLDER", help="where the release "
                   "assets are (a mirror, or the dist/assets folder of make release; default: "
                   "the catalog's release URL)")


def cmd_models(args) -> int:
    if args.get:
        return _get_model(args)
    catalog = {m.name: m for m in load_catalog()}
    group = None
    for m in shipped_models():  # present: under their headings, with their measured quality
        if m.group != group:
            group = m.group
            print(f"{group}:")
        print(f"  {m.variant:18s} {m.quality}\n  {'':18s} --weights {m.path}")
        catalog.pop(m.path.stem, None)
    if catalog:
        print("not installed (a verified download on request: hrinet models --get NAME):")
        for m in catalog.values():
            print(f"  {m.name:28s} {m.variant:18s} {m.size / 2 ** 20:5.1f} MB  {m.quality}")
    return 0


def _get_model(args) -> int:
    model = find_model(args.get)
    bar, update = progress_bar(model.size, f"downloading {model.file}", "B")

    def progress(done: int, total: int) -> None:
        update(done, total)
        args.events.emit("progress", done=done, total=total, unit="byte")

    try:
        path = fetch_model(model, source=args.source, progress=progress)
    finally:
        bar.close()
    print(f"{model.name}: {path} (sha256 verified)")
    args.events.emit("wrote", path=str(path))
    return 0
