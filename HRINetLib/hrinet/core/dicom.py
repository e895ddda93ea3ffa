"""DICOM series folders: finding the series, ordering and checking their slices, reading one.

Slices are ordered by ImagePositionPatient along the slice normal. Every file in the folder is
accounted for: one that looks like DICOM but cannot be read, a broken link or a pipe is named
and refused, never silently left out (a missing first slice would shift the whole volume). A
slice whose orientation or pixel spacing differs from the series', or that lies in-plane off the
line of the other slices, is named and refused (the series is read on the first slice's grid);
gantry tilt, and uneven, missing or duplicate positions are refused too: a regular output grid
cannot keep known slices exact on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import SimpleITK as sitk

from hrinet.core.errors import HRINetError, first_line
from hrinet.core.itk import quiet_native_output, volume_from_image
from hrinet.core.volume import Volume

# Relative tolerance on DICOM slice gaps before a series counts as unevenly spaced.
GAP_TOLERANCE = 0.01

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


def _dicom_positions(files: List[str]) -> np.ndarray:
    """Positions of each file's slice along the series' slice normal, in mm.

    Refuses gantry-tilted series, whose slices are shifted in-plane as they advance: a regular
    3D grid (and so any resampling along z) would shear the anatomy.
    """
    reader = sitk.ImageFileReader()
    positions, normal, ipps, first_iop, spacings = [], None, [], None, []
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
        if normal is None:
            normal = np.cross(iop[:3], iop[3:])
            first_iop = np.asarray(iop)
        elif np.abs(np.asarray(iop) - first_iop).max() > 1e-3:
            raise HRINetError(f"{f} is oriented differently from the series' other slices "
                              f"(ImageOrientationPatient {iop}); it belongs to another "
                              "acquisition: move it out of the folder, or read the series with "
                              "Slicer's DICOM module")
        positions.append(float(np.dot(ipp, normal)))
        ipps.append(ipp)
    pixel = _check_pixel_spacing(files, spacings)
    ipps_arr = np.asarray(ipps)
    _check_in_line(files, ipps_arr, first_iop, np.asarray(positions), pixel)
    first, last = ipps_arr[np.argmin(positions)], ipps_arr[np.argmax(positions)]
    axis = last - first
    if np.linalg.norm(axis) > 0:
        cos = abs(float(np.dot(axis, normal))) / (np.linalg.norm(axis) * np.linalg.norm(normal))
        tilt = float(np.degrees(np.arccos(min(1.0, cos))))
        if tilt > MAX_TILT_DEGREES:
            raise HRINetError(
                f"the series has a gantry tilt of {tilt:.1f} degrees (slices are shifted "
                "in-plane as they advance); correct it first, e.g. Slicer's DICOM module with "
                "'Acquisition geometry regularization' enabled, then save and retry")
    return np.asarray(positions)


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
    """Return the slice gap of sorted ``positions``; refuse uneven or duplicate slices."""
    gaps = np.diff(positions)
    if len(gaps) == 0:
        return 1.0
    gap = float(np.median(gaps))
    if gap <= 0 or np.any(gaps <= 1e-6):
        raise HRINetError(f"{source} holds several slices at the same position (duplicate or "
                          "overlapping acquisitions); keep one slice per position and retry")
    bad = np.flatnonzero(np.abs(gaps - gap) > max(GAP_TOLERANCE * gap, 1e-3))
    if len(bad):
        i = int(bad[0])
        kind = "a missing slice" if gaps[i] > 1.5 * gap else "uneven spacing"
        raise HRINetError(
            f"{source} has {kind}: the gap between slices {i} and {i + 1} is {gaps[i]:.3f} mm "
            f"where the series' spacing is {gap:.3f} mm ({len(bad)} uneven gap(s)); resample the "
            "series to even spacing first (for example Slicer's Resample Scalar Volume)")
    return gap


def _dicom_tag(path: str, tag: str) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        with quiet_native_output():
            reader.ReadImageInformation()
        return reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
    except RuntimeError:
        return ""


def list_dicom_series(folder) -> List[dict]:
    """The DICOM series in ``folder``, largest first: ``uid``, ``description``, ``modality``,
    ``slices``, ``pixel_spacing`` (text as stored), ``thickness`` (text as stored) and ``files``
    (GDCM's scan of a large folder is slow: the reader uses these instead of scanning again)."""
    with quiet_native_output():
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or []
    series = []
    for uid in ids:
        with quiet_native_output():
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        first = files[0] if files else ""
        series.append({"uid": uid, "slices": len(files), "files": list(files),
                       "description": _dicom_tag(first, "0008|103e") or "(no description)",
                       "modality": _dicom_tag(first, "0008|0060") or "?",
                       "pixel_spacing": _dicom_tag(first, "0028|0030").replace("\\", " x ") or "?",
                       "thickness": _dicom_tag(first, "0018|0050") or "?"})
    return sorted(series, key=lambda s: (-s["slices"], s["uid"]))


def _choose_series(folder: Path, series: List[dict], wanted: Optional[str]):
    """``(uid, warnings)``: the wanted series (a UID or its number in :func:`list_dicom_series`'
    order, from 1), else the largest with a warning when there are several."""
    if wanted is None:
        chosen = series[0]
        warnings = []
        if len(series) > 1:
            warnings.append(f"{folder} holds {len(series)} series; read the largest, "
                            f"{chosen['description']} ({chosen['slices']} slices); choose another "
                            "with --series N or UID (hrinet info lists them; series_uid= in "
                            "Python)")
        return chosen["uid"], warnings
    text = str(wanted).strip()
    if text.isdigit() and 1 <= int(text) <= len(series):
        return series[int(text) - 1]["uid"], []
    if text in {s["uid"] for s in series}:
        return text, []
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


def read_dicom_folder(folder: Path, series_uid: Optional[str]) -> Volume:
    series = list_dicom_series(folder)
    bad = unreadable_files(folder, series)
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise HRINetError(f"{folder} holds {bad[0]}{more}; a slice left out would shift or "
                          "gap the volume: replace or remove the file and retry")
    if not series:
        raise HRINetError(f"no DICOM series found in folder {folder}; point to a folder of "
                          "DICOM files or to a volume file")
    chosen, warnings = _choose_series(folder, series, series_uid)
    entry = next(s for s in series if s["uid"] == chosen)
    files = entry["files"]
    if len(files) < 2:
        raise HRINetError(f"DICOM series {chosen} in {folder} has {len(files)} slice; "
                          "interpolation needs at least 2 slices")
    positions = _dicom_positions(files)
    order = np.argsort(positions, kind="stable")
    files = [files[i] for i in order]
    gap = check_even_spacing(positions[order], str(folder))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        with quiet_native_output():
            image = reader.Execute()
    except RuntimeError as exc:
        raise HRINetError(f"cannot read the DICOM series in {folder} ({first_line(exc)})") from None
    sx, sy, _ = image.GetSpacing()
    image.SetSpacing((sx, sy, gap))
    volume = volume_from_image(image, str(folder))
    volume.metadata["warnings"].extend(warnings)
    volume.metadata["series_uid"] = chosen
    # the folder's listing, for `hrinet info` (which then need not scan the folder again)
    volume.metadata["dicom_series"] = [{k: v for k, v in s.items() if k != "files"}
                                       for s in series]
    if entry["modality"] not in ("CT", "?"):
        volume.metadata["warnings"].append(
            f"the series' modality is {entry['modality']}, not CT; the learned models are trained on CT "
            "in Hounsfield units, so check the result or use the cubic method (--method cubic)")
    volume.metadata["slice_positions_mm"] = positions[order].tolist()
    thickness = _dicom_slice_thickness(files[0])
    if thickness is not None:
        volume.metadata["slice_thickness_mm"] = thickness
    return volume


def _dicom_slice_thickness(path: str) -> Optional[float]:
    """Slice Thickness (0018,0050) in mm, or None when absent or not a positive number."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
        value = float(reader.GetMetaData("0018|0050").strip())
    except (RuntimeError, ValueError):
        return None
    return value if value > 0 and np.isfinite(value) else None
