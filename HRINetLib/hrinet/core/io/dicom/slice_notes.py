"""What is said of a series' slices once their headers are read (:mod:`.slice_geometry`) and
they are ordered: slices repeated at one position (the same pixels read once, different pixels
named), uneven gaps (the warning that names the widest), the pixel type that holds slices
rescaled differently, and a modality other than CT."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import SimpleITK as sitk

from hrinet.core.errors import HRINetError, first_line
from hrinet.core.geometry import GAP_TOLERANCE_MM, describe_gaps
from hrinet.core.itk import quiet_native_output


def _pixels(path: str) -> np.ndarray:
    try:
        with quiet_native_output():
            return sitk.GetArrayFromImage(sitk.ReadImage(path))
    except RuntimeError as exc:
        raise HRINetError(f"cannot read the pixels of {path} ({first_line(exc)}); replace or "
                          "remove the file and retry") from None


def drop_duplicates(files: List[str], positions: np.ndarray):
    """``(kept, notes, problems)`` for slices sorted by position: of several slices at one
    position (within GAP_TOLERANCE_MM) holding the same pixels one is kept (a copy); holding
    different pixels, they cannot be ordered and are named."""
    kept, notes, problems = [0], [], []
    for i in range(1, len(files)):
        j = kept[-1]
        if positions[i] - positions[j] > GAP_TOLERANCE_MM:
            kept.append(i)
            continue
        a, b = Path(files[j]).name, Path(files[i]).name
        if np.array_equal(_pixels(files[j]), _pixels(files[i])):
            notes.append(f"{b} repeats {a} (same position {positions[i]:.4g} mm, same pixels); "
                         "read once")
        else:
            problems.append(f"{a} and {b} are both at position {positions[i]:.4g} mm along the "
                            "slice normal with different pixels (two acquisitions or "
                            "reconstructions mixed in one series): keep one of them and retry")
    return kept, notes, problems


def uneven_gaps_warning(positions: np.ndarray) -> str:
    """What a series of uneven gaps (sorted ``positions``, mm) is told: each pair interpolated
    across its own gap, and where the widest gap may be a missing slice."""
    gaps = np.diff(positions)
    i = int(np.argmax(gaps))
    missing = (f"; the widest, {gaps[i]:.3g} mm between slices {i} and {i + 1}, may be a "
               "missing slice" if gaps[i] > 1.5 * np.median(gaps) else "")
    return (f"uneven slice gaps ({describe_gaps(positions)}): each pair of known slices is "
            "interpolated across its own gap onto one regular grid, the known slices at their "
            f"positions{missing}")


def rescale_pixel_type(rescales: List[tuple]) -> Optional[int]:
    """The pixel type to read a series whose slices are rescaled differently (ITK would read
    them all in the first slice's type: an unsigned one wraps the others' negative HU), or None
    where every slice has the same rescale: whole numbers in 32-bit integers, else float32."""
    if len(set(rescales)) < 2:
        return None
    values = [v for pair in rescales for v in pair]
    whole = all(isinstance(v, float) and v.is_integer() for v in values)
    return sitk.sitkInt32 if whole else sitk.sitkFloat32


def modality_warning(modality: str) -> str:
    """What a series of another modality than CT is told ("" for CT or none given)."""
    if modality.strip().upper() in ("CT", "?", ""):
        return ""
    return (f"the series' modality is {modality}, not CT; the learned models are trained on CT "
            "in Hounsfield units, so check the result or use the cubic method (--method cubic)")
