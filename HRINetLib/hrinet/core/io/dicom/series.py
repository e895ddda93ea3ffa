"""DICOM series folders: reading one series (found and chosen by :mod:`.study`, its slices
ordered and checked by :mod:`.slice_geometry`) into a volume.

Slices are ordered by ImagePositionPatient along the slice normal. Every file in the folder is
accounted for: one that looks like DICOM but cannot be read, a broken link or a pipe is named
and refused, never silently left out (a missing first slice would shift the whole volume). A
slice whose orientation or pixel spacing differs from the series', that lies in-plane off the
line of the other slices, or that shares its position with a slice of other pixels, is named
and refused, every such problem in one message (the series cannot share one grid).

What scanners write on purpose is read: a gantry-tilted series is de-tilted onto an orthogonal
grid, uneven gaps are kept as measured for the engine to interpolate across, a slice repeated
exactly is read once, and slices of mixed thickness are recorded per slice
(:mod:`hrinet.core.geometry`). A folder holding no series itself is read as a study: the series
of its subfolders (a folder per series, or a DICOMDIR's tree), scouts, dose reports and
secondary captures listed but never chosen by default.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List, Optional

import numpy as np
import SimpleITK as sitk

from hrinet.core.errors import HRINetError, first_line
from hrinet.core.geometry import detilt, gap_spacing, uneven_gaps
from hrinet.core.io.dicom.multiframe import read_multiframe_file
from hrinet.core.io.dicom.slice_geometry import MAX_TILT_DEGREES, one_message, scan_geometry
from hrinet.core.io.dicom.slice_notes import (drop_duplicates, modality_warning,
                                              rescale_pixel_type, uneven_gaps_warning)
from hrinet.core.io.dicom.study import (choose_series, dicomdir_missing, study_series,
                                         unreadable_files)
from hrinet.core.itk import quiet_native_output, volume_from_image
from hrinet.core.volume import Volume


def read_dicom_folder(folder: Path, series_uid: Optional[str] = None,
                      lenient: bool = False) -> Volume:
    """Read one series of a DICOM folder (or of its subfolders:
    :func:`hrinet.core.io.dicom.study.study_series`).

    Slices are ordered along the slice normal. A gantry-tilted series is de-tilted onto an
    orthogonal grid (:func:`hrinet.core.geometry.detilt`); uneven gaps are kept as measured
    (``metadata["slice_positions_mm"]``; the engine interpolates each pair across its own gap);
    either is said in ``metadata["warnings"]``. Every problem that stops the slices from sharing
    one grid is named in one message; with ``lenient`` (``hrinet info``, which describes what
    it can) they go to ``metadata["problems"]`` instead and the slices are read as they lie.
    """
    folder = Path(folder)
    series = study_series(folder)
    if not series:
        bad = unreadable_files(folder, [])
        if bad:
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            raise HRINetError(f"{folder} holds {bad[0]}{more}; a slice left out would shift or "
                              "gap the volume: replace or remove the file and retry")
        raise HRINetError(f"no DICOM series found in folder {folder} or its subfolders; point "
                          "to a folder of DICOM files or to a volume file")
    entry, warnings = choose_series(folder, series, series_uid)
    chosen = entry["uid"]
    here = folder / entry["folder"] if entry.get("folder") else folder
    bad = unreadable_files(here, [s for s in series if s.get("folder") == entry.get("folder")])
    problems = []
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        problems.append(f"{here} holds {bad[0]}{more}; a slice left out would shift or gap "
                        "the volume: replace or remove the file and retry")
        if not lenient:
            raise HRINetError(problems[0])
    files = entry["files"]
    gone = dicomdir_missing(folder, chosen)
    if gone:  # listed by the study's index, not there: a slice left out would gap the volume
        more = f" and {len(gone) - 1} more" if len(gone) > 1 else ""
        problems.append(f"the DICOMDIR of {folder} lists {gone[0].relative_to(folder)}{more} of "
                        "this series, which is missing; a slice left out would gap the volume: "
                        "copy the study again from its medium")
        if not lenient:
            raise HRINetError(problems[-1])
    volume = read_multiframe_file(Path(files[0])) if len(files) == 1 else None
    if volume is not None:  # one enhanced multi-frame file
        volume.metadata.update(source=str(folder), dicom_series=[
            {k: v for k, v in s.items() if k != "files"} for s in series])
        volume.metadata["warnings"][:0] = warnings
        if entry.get("folder"):
            volume.metadata["series_folder"] = entry["folder"]
        return volume
    if len(files) < 2:
        raise HRINetError(f"DICOM series {chosen} in {here} has {len(files)} slice; "
                          "interpolation needs at least 2 slices")
    geometry = scan_geometry(files)
    problems += geometry.problems
    order = np.argsort(geometry.positions, kind="stable")
    positions = geometry.positions[order]
    kept, notes, duplicates = drop_duplicates([files[i] for i in order], positions)
    problems += [] if geometry.misoriented else duplicates  # slices of another orientation
    # (named) would meet the series' own at its positions: no second word on them
    if problems and not lenient:
        raise HRINetError(one_message(problems))
    if not duplicates:
        order, positions = order[kept], positions[kept]
    files = [files[i] for i in order]
    if len(files) < 2:
        raise HRINetError(f"DICOM series {chosen} in {here} has 1 distinct slice; "
                          "interpolation needs at least 2 slices")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    pixel_type = rescale_pixel_type(geometry.rescales)
    if pixel_type is not None:  # each slice turned into HU by its own slope and intercept
        reader.SetOutputPixelType(pixel_type)
    try:
        with quiet_native_output():
            image = reader.Execute()
    except RuntimeError as exc:
        if problems:  # lenient: the problems found say it better than ITK's words
            raise HRINetError(one_message(problems)) from None
        raise HRINetError(f"cannot read the DICOM series in {here} ({first_line(exc)})") from None
    sx, sy, _ = image.GetSpacing()
    gap = gap_spacing(positions) if positions[-1] > positions[0] else 1.0
    gap = gap if gap > 0 else 1.0  # lenient, slices at one place (their problems are listed)
    image.SetSpacing((sx, sy, gap))
    tilted = geometry.tilt > MAX_TILT_DEGREES and not problems
    if tilted:  # the slice normal as the third axis: the grid the slices are de-tilted onto
        u, v = geometry.iop[:3], geometry.iop[3:]
        image.SetDirection(tuple(np.stack([u, v, np.cross(u, v)], axis=1).ravel()))
    volume = volume_from_image(image, str(folder))
    volume.metadata["warnings"].extend(warnings + notes)
    if pixel_type is not None:
        volume.metadata["rescales_differ"] = True  # a derived series of it would round them
        kinds = Counter(geometry.rescales)
        volume.metadata["warnings"].append(
            "the slices' RescaleSlope/RescaleIntercept differ (" + ", ".join(
                f"{n} slice(s) {a:g}/{b:g}" if isinstance(a, float) and isinstance(b, float)
                else f"{n} slice(s) {a}/{b}" for (a, b), n in kinds.most_common()) +
            "); each slice is turned into HU by its own")
    if tilted:
        _detilt_volume(volume, geometry.ipps[order], positions)
    volume.metadata["series_uid"] = chosen
    if entry.get("folder"):
        volume.metadata["series_folder"] = entry["folder"]
    # the folder's listing, for `hrinet info` (which then need not scan the folder again)
    volume.metadata["dicom_series"] = [{k: v for k, v in s.items() if k != "files"}
                                       for s in series]
    other = modality_warning(entry["modality"])
    if other:
        volume.metadata["warnings"].append(other)
    volume.metadata["slice_positions_mm"] = positions.tolist()
    if uneven_gaps(positions) and not problems:
        volume.metadata["warnings"].append(uneven_gaps_warning(positions))
    thicknesses = [geometry.thicknesses[i] for i in order]
    _record_thickness(volume, thicknesses)
    if problems:
        volume.metadata["problems"] = problems
    return volume


def _detilt_volume(volume: Volume, ipps: np.ndarray, positions: np.ndarray) -> None:
    """De-tilt ``volume`` (slices in ``positions`` order, their ImagePositionPatient ``ipps``)
    in place: each slice moved in-plane onto the grid of the middle slice, the origin set where
    that grid's first slice lies, so every pixel keeps its position in patient space."""
    u, v, n = (volume.direction[:, i] for i in range(3))
    a, b = ipps @ u, ipps @ v
    m = len(ipps) // 2
    sx, sy, _ = volume.spacing
    shifts = np.stack([(b - b[m]) / sy, (a - a[m]) / sx], axis=1)
    volume.array = detilt(volume.array, shifts)
    volume.origin = tuple(float(c) for c in u * a[m] + v * b[m] + n * positions[0])
    tilt = float(np.degrees(np.arctan2(
        np.hypot(a[-1] - a[0], b[-1] - b[0]), positions[-1] - positions[0])))
    volume.metadata["gantry_tilt_degrees"] = tilt
    volume.metadata["warnings"].append(
        f"gantry tilt {tilt:.1f} degrees: slices de-tilted onto an orthogonal grid (each moved "
        f"in-plane by up to {np.abs(shifts).max():.1f} pixels; slice spacing measured along the "
        "slice normal)")


def _record_thickness(volume: Volume, thicknesses: List[Optional[float]]) -> None:
    """``slice_thickness_mm``: the series' Slice Thickness (the most common where slices differ,
    each slice's then in ``slice_thicknesses_mm`` and said in a warning)."""
    known = [round(t, 4) for t in thicknesses if t is not None]
    if not known:
        return
    counts = Counter(known)
    common = sorted(counts, key=lambda t: (-counts[t], t))
    volume.metadata["slice_thickness_mm"] = float(common[0])
    if len(counts) > 1:
        volume.metadata["slice_thicknesses_mm"] = [None if t is None else float(t)
                                                   for t in thicknesses]
        volume.metadata["warnings"].append(
            "slice thickness varies within the series (" +
            ", ".join(f"{counts[t]} slice(s) {t:g} mm" for t in common) +
            f"); {common[0]:g} mm, the most common, is reported for the series")
