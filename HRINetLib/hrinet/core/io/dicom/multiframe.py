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
from hrinet.core.io.dicom.slice_notes import modality_warning, uneven_gaps_warning
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


def frame_summary(path: Path) -> Optional[dict]:
    """What a study's listing says of a multi-frame file (its frames are its slices):
    ``slices``, ``pixel_spacing`` and ``thickness`` from the first frame's functional groups
    (text, "?" where absent); None for any other file."""
    frames = frame_count(path)
    if not frames:
        return None
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    measures = _group_item(ds, 0, "PixelMeasuresSequence")
    pixel = _numbers(measures, "PixelSpacing", 2)
    thickness = _thickness(measures)
    return {"slices": frames,
            "pixel_spacing": " x ".join(f"{v:g}" for v in pixel) if pixel is not None else "?",
            "thickness": f"{thickness:g}" if thickness is not None else "?"}


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
    pixels = [_numbers(_group_item(ds, i, "PixelMeasuresSequence"), "PixelSpacing", 2)
              for i in range(n)]
    pixel = pixels[0]
    if any(p is None or p.min() <= 0 for p in pixels):
        raise HRINetError(f"{name} has no valid PixelSpacing in its functional groups, so the "
                          "size of its pixels in mm is unknown; export the series again")
    odd = [i for i, p in enumerate(pixels) if np.abs(p - pixel).max() > 1e-3 * pixel.max()]
    if odd:
        raise HRINetError(f"frame {odd[0] + 1} of {name} has pixels of {pixels[odd[0]][0]:g} x "
                          f"{pixels[odd[0]][1]:g} mm where its first frame has {pixel[0]:g} x "
                          f"{pixel[1]:g} ({len(odd)} frame(s) so); frames of several grids "
                          "cannot be read as one volume: export each as its own series")
    array = _each_frame_in_hu(path, ds, array)
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
    other = modality_warning(str(ds.get("Modality", "")))
    if other:
        volume.metadata["warnings"].append(other)
    return volume


def _rescale(ds, frame: int) -> tuple:
    """``(slope, intercept)`` of ``frame``: its PixelValueTransformationSequence (own, else
    shared), else the file's top-level tags, else (1, 0)."""
    item = _group_item(ds, frame, "PixelValueTransformationSequence")
    values = []
    for keyword, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        raw = getattr(item, keyword, None) if item is not None else None
        raw = raw if raw is not None else ds.get(keyword, default)
        try:
            values.append(float(raw))
        except (TypeError, ValueError):
            values.append(default)
    return tuple(values)


def _each_frame_in_hu(path: Path, ds, array: np.ndarray) -> np.ndarray:
    """``array`` (GDCM's read, every frame rescaled as the first) or, where the frames are
    rescaled differently (enhanced MR does so), each frame's stored values with its own
    rescale (int32 for whole numbers, else float32)."""
    rescales = [_rescale(ds, i) for i in range(array.shape[0])]
    if len(set(rescales)) < 2:
        return array
    try:
        stored = pydicom.dcmread(str(path)).pixel_array.astype(np.float64)
    except Exception as exc:  # noqa: BLE001 - a transfer syntax pydicom cannot decode here
        raise HRINetError(f"the frames of {Path(path).name} are rescaled differently and its "
                          f"pixels cannot be decoded here ({type(exc).__name__}); export the "
                          "series as single-frame files") from None
    stored = stored.reshape(array.shape)
    slope = np.asarray([r[0] for r in rescales]).reshape(-1, 1, 1)
    intercept = np.asarray([r[1] for r in rescales]).reshape(-1, 1, 1)
    hu = stored * slope + intercept
    whole = np.all(np.mod(slope, 1) == 0) and np.all(np.mod(intercept, 1) == 0)
    return hu.astype(np.int32 if whole else np.float32)


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
