"""DICOM series folders: finding the series, ordering and checking their slices, reading one.

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

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from hrinet.core.errors import HRINetError, first_line
from hrinet.core.geometry import (
    GAP_TOLERANCE_MM,
    describe_gaps,
    detilt,
    gap_spacing,
    uneven_gaps,
)
from hrinet.core.itk import quiet_native_output, volume_from_image
from hrinet.core.volume import Volume

#: Largest angle between the slice normal and the line through the slice positions before a
#: series counts as gantry-tilted (sheared).
MAX_TILT_DEGREES = 0.5

#: Relative difference between two slices' PixelSpacing beyond which they are on different
#: grids. Scanners write one value for a whole series; the rounding of a decimal string (such
#: as 0.703125 written 0.7031) stays far below it.
PIXEL_SPACING_TOLERANCE = 1e-3

#: How far (in pixels, and at least IN_PLANE_TOLERANCE_MM) a slice may lie in-plane off the line
#: through its series' other slices. A tenth of a pixel moves nothing visibly, and positions are
#: often written to 0.01-0.1 mm; a slice of another acquisition is off by millimetres.
IN_PLANE_TOLERANCE_PIXELS = 0.1
IN_PLANE_TOLERANCE_MM = 0.1


@dataclass
class SeriesGeometry:
    """What a series' headers say about its slices (in the files' order)."""

    #: Position of each slice along the slice normal (mm).
    positions: np.ndarray
    #: ImagePositionPatient of each slice, ``(n, 3)``.
    ipps: np.ndarray
    #: The series' ImageOrientationPatient (row and column direction cosines).
    iop: np.ndarray
    #: Angle (degrees) between the slice normal and the line through the slice positions.
    tilt: float
    #: SliceThickness of each slice in mm (None where absent).
    thicknesses: List[Optional[float]]
    #: What stops the series from being read on one grid, each in one sentence.
    problems: List[str] = field(default_factory=list)


def _scan_geometry(files: List[str]) -> SeriesGeometry:
    """Every slice's position, orientation, pixel spacing and thickness, with every problem of
    the series named (a slice of another orientation or pixel spacing, or out of line), not the
    first one only. A gantry tilt is measured, not refused: :func:`read_dicom_folder` de-tilts."""
    reader = sitk.ImageFileReader()
    positions, normal, ipps, first_iop, spacings, thick = [], None, [], None, [], []
    misoriented = []
    for f in files:
        reader.SetFileName(f)
        try:
            reader.ReadImageInformation()
            ipp = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
            iop = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
            if len(ipp) != 3 or len(iop) != 6 or not np.all(np.isfinite(ipp + iop)):
                raise ValueError
        except (RuntimeError, ValueError):
            raise HRINetError(f"cannot read the slice position of {f}; the DICOM file lacks "
                              "ImagePositionPatient/ImageOrientationPatient") from None
        spacings.append(reader.GetMetaData("0028|0030").strip()
                        if reader.HasMetaDataKey("0028|0030") else "")
        thick.append(_positive(reader.GetMetaData("0018|0050"))
                     if reader.HasMetaDataKey("0018|0050") else None)
        if normal is None:
            normal = np.cross(iop[:3], iop[3:])
            first_iop = np.asarray(iop)
        elif np.abs(np.asarray(iop) - first_iop).max() > 1e-3:
            misoriented.append((f, iop))
        positions.append(float(np.dot(ipp, normal)))
        ipps.append(ipp)
    problems = []
    if misoriented:
        f, iop = misoriented[0]
        more = (f" (and {len(misoriented) - 1} more slice(s))" if len(misoriented) > 1 else "")
        problems.append(f"{f} is oriented differently from the series' other slices "
                        f"(ImageOrientationPatient {iop}){more}; it belongs to another "
                        "acquisition: move it out of the folder, or read the series with "
                        "Slicer's DICOM module")
    pixel = None
    try:
        pixel = _check_pixel_spacing(files, spacings)
    except HRINetError as exc:
        problems.append(str(exc))
    ipps_arr, pos = np.asarray(ipps), np.asarray(positions)
    try:
        _check_in_line(files, ipps_arr, first_iop, pos, pixel)
    except HRINetError as exc:
        problems.append(str(exc))
    tilt = 0.0
    axis = ipps_arr[np.argmax(pos)] - ipps_arr[np.argmin(pos)]
    if np.linalg.norm(axis) > 0:
        cos = abs(float(np.dot(axis, normal))) / (np.linalg.norm(axis) * np.linalg.norm(normal))
        tilt = float(np.degrees(np.arccos(min(1.0, cos))))
    return SeriesGeometry(pos, ipps_arr, first_iop, tilt, thick, problems)


def _positive(text: str) -> Optional[float]:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value > 0 and np.isfinite(value) else None


def _dicom_positions(files: List[str]) -> np.ndarray:
    """Positions of each file's slice along the series' slice normal, in mm; refuses a series
    whose slices cannot share one grid (every problem named in one message)."""
    geometry = _scan_geometry(files)
    if geometry.problems:
        raise HRINetError(_one_message(geometry.problems))
    return geometry.positions


def _one_message(problems: List[str]) -> str:
    """Several problems in one line, numbered; one problem as it is."""
    if len(problems) == 1:
        return problems[0]
    return f"the series has {len(problems)} problems: " + " ".join(
        f"({i}) {p}" + (";" if i < len(problems) else "") for i, p in enumerate(problems, 1))


def _parse_spacing(text: str) -> Optional[tuple]:
    try:
        values = tuple(float(v) for v in text.split("\\"))
    except ValueError:
        return None
    return values if len(values) == 2 else None


def _check_pixel_spacing(files: List[str], texts: List[str]) -> Optional[float]:
    """Every slice has the series' PixelSpacing (within PIXEL_SPACING_TOLERANCE, relative): the
    series is read on the first slice's grid, so a slice of another spacing would be stretched
    into it. Returns the series' smaller pixel spacing in mm (None where no slice has one)."""
    parsed = [_parse_spacing(t) for t in texts]
    finite = [p for p in parsed if p is not None and all(np.isfinite(p))]
    if not finite:
        return None
    reference = tuple(float(v) for v in np.median(np.asarray(finite), axis=0))

    def differs(p) -> bool:
        return p is None or not all(abs(a - b) <= PIXEL_SPACING_TOLERANCE * abs(b)
                                    for a, b in zip(p, reference))

    odd = [i for i, p in enumerate(parsed) if differs(p)]
    if odd:
        i = odd[0]
        more = f" (and {len(odd) - 1} more slice(s))" if len(odd) > 1 else ""
        has = (f"{parsed[i][0]:.6g} x {parsed[i][1]:.6g} mm" if parsed[i] is not None
               else repr(texts[i]) if texts[i] else "none")
        raise HRINetError(
            f"{Path(files[i]).name} has pixel spacing {has} where the series' other slices have "
            f"{reference[0]:.6g} x {reference[1]:.6g} mm{more}; it belongs to another "
            "acquisition or reconstruction: move it out of the folder, or read the series with "
            "Slicer's DICOM module")
    return min(reference) if min(reference) > 0 else None


def _check_in_line(files: List[str], ipps: np.ndarray, iop: np.ndarray, positions: np.ndarray,
                   pixel: Optional[float]) -> None:
    """Every slice lies on the line through its series' other slices, in-plane: a slice shifted
    sideways would be read at the first slice's place. The line may run along the slice normal
    (a straight series) or drift evenly in-plane as the slices advance (a gantry tilt, which is
    told apart and left to the tilt check); a slice off that line by more than
    IN_PLANE_TOLERANCE_PIXELS pixels (at least IN_PLANE_TOLERANCE_MM) is named.

    The drift is the median of the slice-to-slice drifts, so that one slice out of line (which
    spoils the two drifts beside it) does not move it; where the straight line explains as many
    slices, the straight line is taken."""
    if len(files) < 3:
        return  # two slices: any sideways step is a tilt (the tilt check decides)
    order = np.argsort(positions, kind="stable")
    s = positions[order]
    plane = np.stack([ipps[order] @ iop[:3], ipps[order] @ iop[3:]], axis=1)  # (u, v) in mm
    tolerance = max(IN_PLANE_TOLERANCE_PIXELS * (pixel or 1.0), IN_PLANE_TOLERANCE_MM)
    steps = np.diff(s)
    moving = steps > 1e-6
    drift = (np.median(np.diff(plane, axis=0)[moving] / steps[moving, None], axis=0)
             if moving.any() else np.zeros(2))
    best = None
    for slope in (np.zeros(2), drift):  # the straight line first: it wins ties
        offset = np.median(plane - s[:, None] * slope, axis=0)
        off = np.hypot(*(plane - offset - s[:, None] * slope).T)
        bad = np.flatnonzero(off > tolerance)
        if best is None or len(bad) < len(best[0]):
            best = (bad, off)
    bad, off = best
    if len(bad):
        i = int(bad[0])
        more = f" (and {len(bad) - 1} more slice(s))" if len(bad) > 1 else ""
        x, y, z = ipps[order][i]
        raise HRINetError(
            f"{Path(files[order[i]]).name} lies {off[i]:.3g} mm in-plane off the line of the "
            f"series' other slices (ImagePositionPatient {x:g}\\{y:g}\\{z:g}){more}; it "
            "belongs to another acquisition or was moved: move it out of the folder, or read "
            "the series with Slicer's DICOM module")


def check_even_spacing(positions: np.ndarray, source: str) -> float:
    """The slice gap of sorted ``positions`` (their median); refuses several slices at one
    position. Uneven gaps are allowed: the engine interpolates each pair across its own gap."""
    gaps = np.diff(positions)
    if len(gaps) == 0:
        return 1.0
    if np.any(gaps <= GAP_TOLERANCE_MM):
        raise HRINetError(f"{source} holds several slices at the same position (duplicate or "
                          "overlapping acquisitions); keep one slice per position and retry")
    return gap_spacing(positions)


def _pixels(path: str) -> np.ndarray:
    try:
        with quiet_native_output():
            return sitk.GetArrayFromImage(sitk.ReadImage(path))
    except RuntimeError as exc:
        raise HRINetError(f"cannot read the pixels of {path} ({first_line(exc)}); replace or "
                          "remove the file and retry") from None


def _drop_duplicates(files: List[str], positions: np.ndarray):
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


#: Tags read once per series for its listing: (key, DICOM tag).
_LISTING_TAGS = (("description", "0008|103e"), ("modality", "0008|0060"),
                 ("pixel_spacing", "0028|0030"), ("thickness", "0018|0050"),
                 ("image_type", "0008|0008"), ("sop_class", "0008|0016"))

#: SOP classes that hold no cross-sectional image: secondary capture (1.2.840.10008.5.1.4.1.1.7
#: and its multi-frame kinds) and structured reports such as the dose report (...1.1.88).
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_STRUCTURED_REPORT = "1.2.840.10008.5.1.4.1.1.88"


def _dicom_tags(path: str) -> Dict[str, str]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        with quiet_native_output():
            reader.ReadImageInformation()
    except RuntimeError:
        return {key: "" for key, _ in _LISTING_TAGS}
    return {key: (reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else "")
            for key, tag in _LISTING_TAGS}


def _dicom_tag(path: str, tag: str) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        with quiet_native_output():
            reader.ReadImageInformation()
        return reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
    except RuntimeError:
        return ""


def series_kind(modality: str, image_type: str, sop_class: str) -> str:
    r"""What a series holds: ``"image"`` (a CT or other cross-sectional series, the only kind
    read by default), ``"scout"`` (ImageType LOCALIZER), ``"dose report"`` (a structured
    report, Modality SR) or ``"secondary capture"`` (screenshots, documents: Modality OT/DOC).

    Example:
        >>> series_kind("CT", "ORIGINAL\\PRIMARY\\LOCALIZER", ""), series_kind("SR", "", "")
        ('scout', 'dose report')
    """
    modality = modality.upper().strip()
    if modality in ("SR", "KO", "PR") or sop_class.startswith(_STRUCTURED_REPORT):
        return "dose report" if modality in ("SR", "") else "report"
    if modality in ("OT", "DOC", "SC") or sop_class.startswith(_SECONDARY_CAPTURE):
        return "secondary capture"
    if "LOCALIZER" in image_type.upper():
        return "scout"
    return "image"


def list_dicom_series(folder) -> List[dict]:
    """The DICOM series in ``folder`` (not its subfolders), CT and other image series first,
    then scouts, reports and secondary captures, each group largest first: ``uid``,
    ``description``, ``modality``, ``kind`` (:func:`series_kind`), ``slices``,
    ``pixel_spacing`` (text as stored), ``thickness`` (text as stored), ``folder`` ("" here)
    and ``files`` (GDCM's scan of a large folder is slow: the reader uses these instead of
    scanning again)."""
    with quiet_native_output():
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or []
    series = []
    for uid in ids:
        with quiet_native_output():
            files = [f for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
                     if not Path(f).name.upper().startswith("DICOMDIR")]
        if not files:
            continue
        tags = _dicom_tags(files[0])
        series.append({"uid": uid, "slices": len(files), "files": list(files), "folder": "",
                       "description": tags["description"] or "(no description)",
                       "modality": tags["modality"] or "?",
                       "kind": series_kind(tags["modality"], tags["image_type"],
                                           tags["sop_class"]),
                       "pixel_spacing": tags["pixel_spacing"].replace("\\", " x ") or "?",
                       "thickness": tags["thickness"] or "?"})
    return sorted(series, key=lambda s: (s["kind"] != "image", -s["slices"], s["uid"]))


#: How deep :func:`study_series` looks into subfolders (a DICOMDIR export nests patient,
#: study and series folders).
MAX_STUDY_DEPTH = 6


def study_series(folder: Path) -> List[dict]:
    """The series of ``folder``; where it holds none itself (a study as a hospital exports it:
    a folder per series, or a DICOMDIR with its files in nested folders), those of its
    subfolders, each with its ``folder`` relative to ``folder``, ordered as
    :func:`list_dicom_series` orders them."""
    series = list_dicom_series(folder)
    if series:
        return series
    found = []
    root = Path(folder)
    for here, dirs, files in os.walk(root):
        rel = Path(here).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) \
            if len(rel.parts) < MAX_STUDY_DEPTH else []
        if rel.parts and any(not f.startswith(".") for f in files):
            for s in list_dicom_series(here):
                s["folder"] = rel.as_posix()
                found.append(s)
    return sorted(found, key=lambda s: (s["kind"] != "image", -s["slices"], s["folder"],
                                        s["uid"]))


def _series_name(s: dict) -> str:
    where = f" in {s['folder']}" if s.get("folder") else ""
    return f"{s['description']}{where} ({s['slices']} slices)"


def _choose_series(folder: Path, series: List[dict], wanted: Optional[str]):
    """``(entry, warnings)``: the wanted series (a UID, its number in :func:`study_series`'
    order from 1, or its subfolder), else the largest image series (never a scout, report or
    secondary capture), with a warning when there are several."""
    images = [s for s in series if s.get("kind", "image") == "image"]
    if wanted is None:
        if not images:
            kinds = sorted({s["kind"] for s in series})
            raise HRINetError(f"{folder} holds no CT or other image series, only "
                              f"{' and '.join(kinds)} ({len(series)} series); choose one with "
                              "--series N or UID if you mean it (hrinet info lists them)")
        chosen = images[0]
        warnings = []
        if len(series) > 1:
            others = len(series) - len(images)
            aside = (f" ({others} scout, report or secondary-capture series set aside)"
                     if others else "")
            warnings.append(f"{folder} holds {len(series)} series{aside}; read the largest, "
                            f"{_series_name(chosen)}; choose another with --series N or UID "
                            "(hrinet info lists them; series_uid= in Python)")
        return chosen, warnings
    text = str(wanted).strip()
    if text.isdigit() and 1 <= int(text) <= len(series):
        return series[int(text) - 1], []
    matches = [s for s in series if s["uid"] == text] or \
        [s for s in series if s.get("folder") and s["folder"] == text.strip("/")]
    if len(matches) == 1:
        return matches[0], []
    if len(matches) > 1:
        raise HRINetError(f"{text} names {len(matches)} series in {folder}; give its number "
                          "as listed by hrinet info")
    raise HRINetError(f"series {text} is not in {folder}; give a number from 1 to {len(series)} "
                      "or a series UID, as listed by hrinet info")


#: File names that are never slices (listings, notes, the DICOMDIR index).
NOT_SLICES = ("DICOMDIR", "README", "LICENSE")


def _looks_like_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".ima", ".dicom"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def unreadable_files(folder: Path, series: List[dict]) -> List[str]:
    """Files of ``folder`` that should be slices but are in no series GDCM could read: a DICOM
    file cut off or damaged, a broken link, a pipe or another special file."""
    read = {str(Path(f).resolve()) for s in series for f in s["files"]}
    bad, odd = [], []  # odd entries first: they can also upset GDCM's scan of the rest
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name.upper().startswith(NOT_SLICES):
            continue
        if entry.is_symlink() and not entry.exists():
            odd.append(f"{entry.name} (a broken link)")
        elif entry.exists() and not entry.is_file() and not entry.is_dir():
            odd.append(f"{entry.name} (not a regular file)")
        elif entry.is_file() and str(entry.resolve()) not in read and _looks_like_dicom(entry):
            bad.append(f"{entry.name} (a DICOM file that cannot be read: cut off or damaged)")
    return odd + bad


def read_dicom_folder(folder: Path, series_uid: Optional[str] = None,
                      lenient: bool = False) -> Volume:
    """Read one series of a DICOM folder (or of its subfolders: :func:`study_series`).

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
    entry, warnings = _choose_series(folder, series, series_uid)
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
    if len(files) < 2:
        raise HRINetError(f"DICOM series {chosen} in {here} has {len(files)} slice; "
                          "interpolation needs at least 2 slices")
    geometry = _scan_geometry(files)
    problems += geometry.problems
    order = np.argsort(geometry.positions, kind="stable")
    positions = geometry.positions[order]
    kept, notes, duplicates = _drop_duplicates([files[i] for i in order], positions)
    problems += duplicates
    if problems and not lenient:
        raise HRINetError(_one_message(problems))
    if not duplicates:
        order, positions = order[kept], positions[kept]
    files = [files[i] for i in order]
    if len(files) < 2:
        raise HRINetError(f"DICOM series {chosen} in {here} has 1 distinct slice; "
                          "interpolation needs at least 2 slices")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        with quiet_native_output():
            image = reader.Execute()
    except RuntimeError as exc:
        raise HRINetError(f"cannot read the DICOM series in {here} ({first_line(exc)})") from None
    sx, sy, _ = image.GetSpacing()
    gap = gap_spacing(positions) if positions[-1] > positions[0] else 1.0
    image.SetSpacing((sx, sy, gap))
    tilted = geometry.tilt > MAX_TILT_DEGREES and not problems
    if tilted:  # the slice normal as the third axis: the grid the slices are de-tilted onto
        u, v = geometry.iop[:3], geometry.iop[3:]
        image.SetDirection(tuple(np.stack([u, v, np.cross(u, v)], axis=1).ravel()))
    volume = volume_from_image(image, str(folder))
    volume.metadata["warnings"].extend(warnings + notes)
    if tilted:
        _detilt_volume(volume, geometry.ipps[order], positions)
    volume.metadata["series_uid"] = chosen
    if entry.get("folder"):
        volume.metadata["series_folder"] = entry["folder"]
    # the folder's listing, for `hrinet info` (which then need not scan the folder again)
    volume.metadata["dicom_series"] = [{k: v for k, v in s.items() if k != "files"}
                                       for s in series]
    if entry["modality"] not in ("CT", "?"):
        volume.metadata["warnings"].append(
            f"the series' modality is {entry['modality']}, not CT; the learned models are trained on CT "
            "in Hounsfield units, so check the result or use the cubic method (--method cubic)")
    volume.metadata["slice_positions_mm"] = positions.tolist()
    if uneven_gaps(positions) and not problems:
        gaps = np.diff(positions)
        i = int(np.argmax(gaps))
        missing = (f"; the widest, {gaps[i]:.3g} mm between slices {i} and {i + 1}, may be a "
                   "missing slice" if gaps[i] > 1.5 * np.median(gaps) else "")
        volume.metadata["warnings"].append(
            f"uneven slice gaps ({describe_gaps(positions)}): each pair of known slices is "
            "interpolated across its own gap onto one regular grid, the known slices at their "
            f"positions{missing}")
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


def _dicom_slice_thickness(path: str) -> Optional[float]:
    """Slice Thickness (0018,0050) in mm, or None when absent or not a positive number."""
    return _positive(_dicom_tag(path, "0018|0050"))
