"""The input series' instances a derived series is made from: read with pydicom (header only)
from the folder or files the volume was read from, matched to the volume's slices by their
position along its slice axis."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import pydicom

from hrinet.core.errors import HRINetError
from hrinet.core.io.dicom.derived.attributes import sop_uids
from hrinet.core.io.paths import PathLike
from hrinet.core.volume import Volume


def source_files(source: Union[PathLike, Sequence[PathLike]]) -> List[Path]:
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        return sorted(p for p in folder.iterdir()
                      if p.is_file() and not p.name.startswith(".")
                      and p.name.upper() != "DICOMDIR")
    return [Path(p) for p in source]


def source_instances(source: Union[PathLike, Sequence[PathLike]], volume: Volume,
                     input_spacing: float, series_uid: Optional[str] = None) -> list:
    """The input series' slices (pydicom datasets, header only) in the order of the volume's
    input slices: matched by their position along the volume's slice axis.

    Args:
        source: the DICOM folder the volume was read from, or its files.
        volume: the output (or input) volume, whose origin is the first input slice.
        input_spacing: the input's slice spacing in mm.
        series_uid: the series read (default: the volume's ``series_uid``, else the only one).

    Raises:
        HRINetError: no slices of the series, or slices that do not match the volume's.
    """
    uid = series_uid or volume.metadata.get("series_uid")
    found = []
    for path in source_files(source):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue  # not a slice (the reader named any DICOM file it could not read)
        if not sop_uids(ds)[1] or "ImagePositionPatient" not in ds:
            continue
        if uid and str(getattr(ds, "SeriesInstanceUID", "")) != uid:
            continue
        found.append(ds)
    if not found:
        raise HRINetError(f"no slices of series {uid or '?'} found in {source}; the derived "
                          "series needs the input's DICOM files")
    if not uid and len({str(getattr(d, "SeriesInstanceUID", "")) for d in found}) > 1:
        raise HRINetError(f"{source} holds several series; choose one with --series")
    origin = np.asarray(volume.origin)
    axis = volume.direction[:, 2]
    n_in = None
    slices: Dict[int, object] = {}
    for ds in found:
        t = float(np.dot(np.asarray([float(v) for v in ds.ImagePositionPatient]) - origin,
                         axis)) / input_spacing
        i = int(round(t))
        if abs(t - i) > 0.05 or i < 0 or i in slices:
            raise HRINetError(f"slice {sop_uids(ds)[1]} of the input series lies off the "
                              "volume's slices; the series changed since it was read: rerun")
        slices[i] = ds
    n_in = max(slices) + 1
    if sorted(slices) != list(range(n_in)):
        raise HRINetError("the input series' slices do not match the volume read (a slice is "
                          "missing); rerun on the unchanged folder")
    return [slices[i] for i in range(n_in)]
