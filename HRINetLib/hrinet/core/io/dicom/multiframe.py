"""Enhanced (multi-frame) DICOM: one file holding a whole series, each frame's geometry in its
functional groups (PlanePositionSequence, PlaneOrientationSequence, PixelMeasuresSequence).

GDCM reads such a file's pixels (rescaled to HU) but guesses its geometry: with uneven frame
positions it falls back to 1 mm pixels and slices, with a repeated position it reports an even
gap that is not there. So the geometry is read here from every frame's header, as a series'
slices are (:mod:`.slice_geometry`): the frames are ordered along their normal, uneven gaps kept
as measured (the engine interpolates each pair across its own gap), a frame repeated exactly
read once, and frames that cannot share one grid (another orientation, positions off the line,
one position with different pixels) refused in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import pydicom
import SimpleITK as sitk

from hrinet.core.errors import HRINetError
from hrinet.core.geometry import GAP_TOLERANCE_MM, gap_spacing, uneven_gaps
from hrinet.core.io.dicom.slice_geometry import uneven_gaps_warning
from hrinet.core.itk import read_image_file
from hrinet.core.volume import Volume

#: How far (mm) a frame may lie in-plane off its file's first frame (positions are written to
#: 0.01-0.1 mm; a gantry tilt or another stack is off by millimetres).
IN_PLANE_TOLERANCE_MM = 0.1


def frame_count(path: Path) -> int:
    """The number of frames of an enhanced multi-frame DICOM file with per-frame functional
    groups, else 0 (a single-frame file, another format, or no DICOM at all)."""
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True,
                             specific_tags=["NumberOfFrames", "PerFrameFunctionalGroupsSequence"])
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except Exception:  # noqa: BLE001 - not DICOM, or a header pydicom cannot parse
        return 0
    return frames if frames > 1 and "PerFrameFunctionalGroupsSequence" in ds else 0


def read_multiframe_file(path: Path) -> Optional[Volume]:
    """An enhanced multi-frame DICOM file as a volume: GDCM's pixels, the frames' own geometry
    (:func:`read_multiframe`), uneven gaps said as a series' are; None for any other file."""
    if not frame_count(path):
        return None
    volume = read_multiframe(path, sitk.GetArrayFromImage(read_image_file(path)))
    positions = np.asarray(volume.metadata["slice_positions_mm"])
    if uneven_gaps(positions):
        volume.metadata["warnings"].append(uneven_gaps_warning(positions))
    return volume


def _group_item(ds, frame: int, name: str):
    """The first item of the functional group ``name`` of ``frame``: its own, else the shared
    one (DICOM PS3.3 C.7.6.16), else None."""
    per = ds.PerFrameFunctionalGroupsSequence
    shared = ds.get("SharedFunctionalGroupsSequence")
    for groups in ((per[frame] if frame < len(per) else None),
                   (shared[0] if shared else None)):
        items = getattr(groups, name, None) if groups is not None else None
        if items:
            return items[0]
    return None


def _numbers(item, keyword: str, count: int) -> Optional[np.ndarray]:
    value = getattr(item, keyword, None) if item is not None else None
    try:
        values = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return values if len(values) == count and np.all(np.isfinite(values)) else None


def read_multiframe(path: Path, array: np.ndarray) -> Volume:
    """The volume of the multi-frame file ``path`` whose frames ``array`` (frames, rows,
    columns; in file order, in HU: GDCM's read) holds, with the geometry its frame headers
    give. Refuses, in one line naming the file, frames without a position or orientation,
    frames of several orientations, frames off the line of the others (a gantry tilt or two
    stacks) and two frames at one position with different pixels."""
    name = Path(path).name
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    n = array.shape[0]
    if len(ds.PerFrameFunctionalGroupsSequence) != n:
        raise HRINetError(f"{name} describes {len(ds.PerFrameFunctionalGroupsSequence)} frames "
                          f"but holds {n}; the file is damaged: export the series again")
    ipps, iops = [], []
    for i in range(n):
        ipp = _numbers(_group_item(ds, i, "PlanePositionSequence"), "ImagePositionPatient", 3)
        iop = _numbers(_group_item(ds, i, "PlaneOrientationSequence"),
                       "ImageOrientationPatient", 6)
        if ipp is None or iop is None:
            raise HRINetError(f"frame {i + 1} of {name} has no usable ImagePositionPatient or "
                              "ImageOrientationPatient, so where it lies is unknown; export "
                              "the series again (single-frame files also do)")
        ipps.append(ipp)
        iops.append(iop)
    iop = iops[0]
    odd = [i for i, o in enumerate(iops) if np.abs(o - iop).max() > 1e-3]
    if odd:
        raise HRINetError(f"frame {odd[0] + 1} of {name} is oriented differently from its first "
                          f"frame ({len(odd)} frame(s) so); a file of several stacks cannot be "
                          "read as one volume: export each stack as its own series")
    pixel = _numbers(_group_item(ds, 0, "PixelMeasuresSequence"), "PixelSpacing", 2)
    if pixel is None or pixel.min() <= 0:
        raise HRINetError(f"{name} has no valid PixelSpacing in its functional groups, so the "
                          "size of its pixels in mm is unknown; export the series again")
    u, v = iop[:3], iop[3:]
    normal = np.cross(u, v)
    ipps = np.asarray(ipps)
    order = np.argsort(ipps @ normal, kind="stable")
    positions = (ipps @ normal)[order]
    plane = np.stack([ipps[order] @ u, ipps[order] @ v], axis=1)
    off = np.hypot(*(plane - plane[0]).T)
    if off.max() > max(IN_PLANE_TOLERANCE_MM, 0.1 * pixel.min()):
        raise HRINetError(f"the frames of {name} drift in-plane by up to {off.max():.3g} mm (a "
                          "gantry tilt or several stacks); such a multi-frame file is not read: "
                          "export the series as single-frame files, which are de-tilted")
    kept, notes = _distinct_frames(name, array[order], positions)
    order, positions = order[kept], positions[kept]
    thickness = _thickness(_group_item(ds, 0, "PixelMeasuresSequence"))
    gap = gap_spacing(positions) if len(positions) > 1 and positions[-1] > positions[0] else 1.0
    volume = Volume(array=np.ascontiguousarray(array[order]),
                    spacing=(float(pixel[1]), float(pixel[0]), float(gap)),
                    origin=tuple(float(c) for c in ipps[order[0]]),
                    direction=np.stack([u, v, normal], axis=1),
                    metadata={"source": str(path), "warnings": notes,
                              "series_uid": str(ds.get("SeriesInstanceUID", "")),
                              "slice_positions_mm": positions.tolist(), "multiframe": True})
    if thickness is not None:
        volume.metadata["slice_thickness_mm"] = thickness
    return volume


def _thickness(item) -> Optional[float]:
    try:
        value = float(getattr(item, "SliceThickness", None))
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _distinct_frames(name: str, frames: np.ndarray, positions: np.ndarray):
    """``(kept, notes)`` of frames sorted by position: of frames at one position the same
    pixels are read once (said in a note); different pixels are refused."""
    kept: List[int] = [0]
    notes: List[str] = []
    for i in range(1, len(positions)):
        j = kept[-1]
        if positions[i] - positions[j] > GAP_TOLERANCE_MM:
            kept.append(i)
        elif np.array_equal(frames[i], frames[j]):
            notes.append(f"{name}: a frame repeats the one at {positions[i]:.4g} mm (same "
                         "pixels); read once")
        else:
            raise HRINetError(f"{name} has two frames at position {positions[i]:.4g} mm along "
                              "the slice normal with different pixels (two reconstructions in "
                              "one file): export one of them as its own series")
    return kept, notes
