"""The provenance record of a derived series read back from its DerivationDescription."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pydicom

from hrinet.core.io.dicom.derived.attributes import is_ours
from hrinet.core.io.paths import PathLike
from hrinet.core.io.provenance.record import FIELDS, Record
from hrinet.core.io.provenance.slices import format_indices, parse_indices


def read_derived(folder: PathLike, series_uid: Optional[str] = None) -> Optional[Record]:
    """The provenance record of a derived series hrinet wrote in ``folder`` (of the series
    ``series_uid``, default the first found), parsed from its DerivationDescription; None for
    any other folder. ``folder`` may also be one file of the series (what Slicer's DICOM
    database gives for a loaded series)."""
    folder = Path(folder)
    for path in [folder] if folder.is_file() else sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if series_uid and str(getattr(ds, "SeriesInstanceUID", "")) != series_uid:
            continue
        if not is_ours(ds):
            return None
        text = str(ds.DerivationDescription)
        rec = {}
        for part in text.split(": ", 1)[-1].split("; "):
            key, _, value = part.partition("=")
            if key in FIELDS:
                rec[key] = value
        if "acquired_slices" in rec and "output_slices" in rec:
            known = set(parse_indices(rec["acquired_slices"]))
            rec["synthesised_slices"] = format_indices(
                i for i in range(int(rec["output_slices"])) if i not in known)
        return rec or None
    return None
