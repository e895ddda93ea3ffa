"""The geometry of a DICOM series' slices, read from their headers: each slice's position along
the slice normal, the series' orientation and pixel spacing, the gantry tilt, each slice's
thickness, and every problem that stops the slices from sharing one grid (a slice of another
orientation or pixel spacing, one lying in-plane off the line of the others, two slices of
different pixels at one position), named in one message. Slices are ordered by
ImagePositionPatient along the slice normal; what follows from the ordered slices (repeated
positions, uneven gaps, differing rescales) is :mod:`.slice_notes`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
import SimpleITK as sitk

from hrinet.core.errors import HRINetError

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
    #: Each slice's (RescaleSlope, RescaleIntercept), numbers where they are (1, 0 where absent).
    rescales: List[tuple] = field(default_factory=list)
    #: How many slices have another orientation than the series' (scouts filed in it).
    misoriented: int = 0


def scan_geometry(files: List[str]) -> SeriesGeometry:
    """Every slice's position, orientation, pixel spacing and thickness, with every problem of
    the series named (a slice of another orientation or pixel spacing, or out of line), not the
    first one only. A gantry tilt is measured, not refused:
    :func:`hrinet.core.io.dicom.series.read_dicom_folder` de-tilts."""
    reader = sitk.ImageFileReader()
    ipps, iops, spacings, thick, rescales, sizes, scouts = [], [], [], [], [], [], []
    bad_slope = None
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
                              "ImagePositionPatient/ImageOrientationPatient: move it out of the "
                              "folder if it is no slice of the series, or read the series with "
                              "Slicer's DICOM module") from None
        sizes.append(tuple(reader.GetMetaData(k).strip() if reader.HasMetaDataKey(k) else ""
                           for k in ("0028|0010", "0028|0011")))
        spacings.append(reader.GetMetaData("0028|0030").strip()
                        if reader.HasMetaDataKey("0028|0030") else "")
        if reader.HasMetaDataKey("0028|1053") and not bad_slope:
            slope = reader.GetMetaData("0028|1053").strip()
            if slope and not _nonzero_finite(slope):
                bad_slope = (f, slope)
        rescales.append(tuple(_number(reader.GetMetaData(k)) if reader.HasMetaDataKey(k) else
                              default for k, default in (("0028|1053", 1.0), ("0028|1052", 0.0))))
        scouts.append(reader.HasMetaDataKey("0008|0008") and
                      "LOCALIZER" in reader.GetMetaData("0008|0008").upper())
        thick.append(_positive(reader.GetMetaData("0018|0050"))
                     if reader.HasMetaDataKey("0018|0050") else None)
        iops.append(np.asarray(iop))
        ipps.append(ipp)
    first_iop = _common_orientation(  # the series' own: a scout filed in it is not it
        [o for o, scout in zip(iops, scouts) if not scout] or iops)
    normal = np.cross(first_iop[:3], first_iop[3:])
    misoriented = [(f, iop.tolist()) for f, iop in zip(files, iops)
                   if np.abs(iop - first_iop).max() > 1e-3]
    positions = [float(np.dot(ipp, normal)) for ipp in ipps]
    problems = []
    if misoriented:
        f, iop = misoriented[0]
        more = (f" (and {len(misoriented) - 1} more slice(s))" if len(misoriented) > 1 else "")
        problems.append(f"{f} is oriented differently from the series' other slices "
                        f"(ImageOrientationPatient {iop}){more}; it belongs to another "
                        "acquisition: move it out of the folder, or read the series with "
                        "Slicer's DICOM module")
    common = Counter(sizes).most_common(1)[0][0]
    odd = [f for f, size in zip(files, sizes) if size != common]
    if odd:  # ITK would stop on the first with its own words: "Size mismatch!"
        more = f" (and {len(odd) - 1} more slice(s))" if len(odd) > 1 else ""
        rows, cols = sizes[files.index(odd[0])]
        problems.append(f"{odd[0]} has {rows} x {cols} pixels where the series' other slices "
                        f"have {common[0]} x {common[1]}{more}; it belongs to another "
                        "acquisition: move it out of the folder, or read the series with "
                        "Slicer's DICOM module")
    if bad_slope:
        problems.append(f"{Path(bad_slope[0]).name} has RescaleSlope {bad_slope[1]!r}, which "
                        "cannot turn its stored values into HU; the file is damaged or not a "
                        "CT image: fix the tag (0028,1053) or read the series with Slicer's "
                        "DICOM module")
    pixel = None
    try:
        pixel = _check_pixel_spacing(files, spacings)
    except HRINetError as exc:
        problems.append(str(exc))
    ipps_arr, pos = np.asarray(ipps), np.asarray(positions)
    aligned = [i for i, iop in enumerate(iops) if np.abs(iop - first_iop).max() <= 1e-3]
    try:  # among the slices of the series' orientation: a scout's is named above already
        _check_in_line([files[i] for i in aligned], ipps_arr[aligned], first_iop, pos[aligned],
                       pixel)
    except HRINetError as exc:
        problems.append(str(exc))
    tilt = 0.0
    axis = ipps_arr[np.argmax(pos)] - ipps_arr[np.argmin(pos)]
    if np.linalg.norm(axis) > 0:
        cos = abs(float(np.dot(axis, normal))) / (np.linalg.norm(axis) * np.linalg.norm(normal))
        tilt = float(np.degrees(np.arccos(min(1.0, cos))))
    return SeriesGeometry(pos, ipps_arr, first_iop, tilt, thick, problems, rescales,
                          len(misoriented))


def _common_orientation(iops: List[np.ndarray]) -> np.ndarray:
    """The orientation most slices share (within 1e-3; the first of them on a tie): the
    series', against which a slice of another (a scout filed in the series) is named."""
    keys = [tuple(np.round(o, 3)) for o in iops]
    counts = Counter(keys)
    common = max(counts.values())
    return next(o for o, key in zip(iops, keys) if counts[key] == common)


def _number(text: str):
    """A rescale value as a number, so that "1" and "1.000000" are one value (text that is no
    number is kept as it is: RescaleSlope's own check names it)."""
    try:
        return float(text.strip())
    except ValueError:
        return text.strip()


def _nonzero_finite(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return bool(np.isfinite(value)) and value != 0


def _positive(text: str) -> Optional[float]:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value > 0 and np.isfinite(value) else None


def one_message(problems: List[str]) -> str:
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
    if len(values) == 1:  # not conformant, but written by some scanners: square pixels, as ITK
        return values * 2
    return values[:2] if len(values) >= 2 else None


def _check_pixel_spacing(files: List[str], texts: List[str]) -> Optional[float]:
    """Every slice has the series' PixelSpacing (within PIXEL_SPACING_TOLERANCE, relative): the
    series is read on the first slice's grid, so a slice of another spacing would be stretched
    into it. Returns the series' smaller pixel spacing in mm; a series where no slice has a
    finite positive one is refused (ITK would read it as 1 mm)."""
    parsed = [_parse_spacing(t) for t in texts]
    finite = [p for p in parsed if p is not None and all(np.isfinite(p)) and min(p) > 0]
    if not finite:
        found = next((repr(t) for t in texts if t), "none")
        raise HRINetError(
            f"the series has no valid PixelSpacing (0028,0030; {Path(files[0]).name}: {found}), "
            "so the size of its pixels in mm is unknown and would be taken for 1 mm: add the "
            "tag, or read the series with Slicer's DICOM module")
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
