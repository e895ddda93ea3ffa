"""An analytic head-like phantom defined in patient space (LPS mm), scanned as a DICOM series
with any slice geometry: straight, gantry-tilted, unevenly spaced. For the test_series_*.py
files: the truth is known at every physical point, so any output grid can be checked."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import SimpleITK as sitk

#: A bright, compact point (a calcification) at a known place: its centroid checks geometry.
POINT = np.array([12.0, -9.0, 31.0])


def _ball(p, centre, radii, edge=1.0):
    d = np.sqrt(sum(((p[..., i] - centre[i]) / radii[i]) ** 2 for i in range(3)))
    r = float(np.mean(radii))
    return 1.0 / (1.0 + np.exp((d - 1.0) * r / edge))


def phantom_hu(points: np.ndarray) -> np.ndarray:
    """HU at ``points`` ``(..., 3)`` (LPS mm): air, a skull-like shell, brain, ventricles and
    lesions whose sections change along z, and :data:`POINT`."""
    p = np.asarray(points, dtype=np.float64)
    hu = np.full(p.shape[:-1], -1000.0)
    head = _ball(p, (0, 0, 30), (52, 60, 46))
    brain = _ball(p, (0, 0, 30), (46, 54, 40))
    hu += head * (1000 + 900) - brain * 900 + brain * 35  # bone shell around 35 HU brain
    hu += -25 * _ball(p, (-8, 5, 34), (5, 14, 9)) - 25 * _ball(p, (8, 5, 34), (5, 14, 9))
    hu += 40 * _ball(p, (-20, -18, 18), (9, 7, 6)) + 60 * _ball(p, (22, 20, 44), (6, 10, 5))
    hu += 30 * _ball(p, (0, -30, 28), (15, 6, 14))
    d2 = np.sum((p - POINT) ** 2, axis=-1)
    hu += 2500 * np.exp(-d2 / (2 * 2.5 ** 2))
    return hu


def sample(origin, direction: np.ndarray, spacing, shape_zyx) -> np.ndarray:
    """The phantom on a grid: ``(z, y, x)`` voxels, ``direction`` columns the i, j, k axes."""
    nz, ny, nx = shape_zyx
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    ijk = np.stack([i * spacing[0], j * spacing[1], k * spacing[2]], axis=-1)
    points = np.asarray(origin) + ijk @ np.asarray(direction).T
    return phantom_hu(points)


def write_series(folder: Path, ipps: Sequence, row=(1.0, 0.0, 0.0), col=(0.0, 1.0, 0.0),
                 size: int = 100, pixel: float = 1.6, uid: str = "1.2.826.0.1.7",
                 tags: Optional[Dict[str, str]] = None,
                 thickness: Optional[Sequence[float]] = None) -> Path:
    """The phantom scanned as one DICOM file per slice: slice ``k`` at ImagePositionPatient
    ``ipps[k]`` with rows along ``row`` and columns along ``col``, ``size`` x ``size`` pixels of
    ``pixel`` mm (thin slices: each samples the phantom at its plane)."""
    folder.mkdir(parents=True, exist_ok=True)
    row, col = np.asarray(row, float), np.asarray(col, float)
    direction = np.stack([row, col, np.cross(row, col)], axis=1)
    for k, ipp in enumerate(ipps):
        values = sample(ipp, direction, (pixel, pixel, 1.0), (1, size, size))
        image = sitk.GetImageFromArray(np.rint(values).astype(np.int16))
        image.SetSpacing((pixel, pixel, 1.0))
        header = {"0020|000e": uid, "0020|000d": "1.2.826.0.1", "0008|0060": "CT",
                  "0020|0013": str(k + 1), "0008|0018": f"{uid}.{k + 1}",
                  "0020|0032": "\\".join(f"{v:.6f}" for v in ipp),
                  "0020|0037": "\\".join(f"{v:.8f}" for v in (*row, *col)),
                  "0028|0030": f"{pixel}\\{pixel}"}
        if thickness is not None:
            header["0018|0050"] = f"{thickness[k]:g}"
        header.update(tags or {})
        for key, value in header.items():
            image.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetImageIO("GDCMImageIO")  # names without an extension, as scanners write them
        writer.SetFileName(str(folder / f"IM{k:04d}"))
        writer.Execute(image)
    return folder


def tilted_scan(folder: Path, tilt_degrees: float, table_step: float, slices: int,
                sheared: bool = True, **options) -> Path:
    """A scan as a tilted gantry makes it: slice planes tilted about the x axis by
    ``tilt_degrees``, ImagePositionPatient stepping ``table_step`` mm along the table (z), so
    each slice lies in-plane ``table_step * sin(tilt)`` further along its columns; the header
    carries GantryDetectorTilt (0018,1120). ``sheared=False``: the same slice planes stacked
    straight along their normal (``table_step * cos(tilt)`` apart), the same scan untilted."""
    a = np.radians(tilt_degrees)
    size, pixel = options.get("size", 100), options.get("pixel", 1.6)
    col = np.array([0.0, np.cos(a), np.sin(a)])
    normal = np.cross([1.0, 0.0, 0.0], col)
    half = (size - 1) / 2 * pixel
    centre = np.array([-half, 0.0, 30.0]) - half * col
    step = np.array([0.0, 0.0, table_step]) if sheared else normal * table_step * np.cos(a)
    ipps = [centre + (k - slices // 2) * step for k in range(slices)]
    tags = dict(options.pop("tags", {}) or {})
    if sheared:
        tags["0018|1120"] = f"{tilt_degrees:g}"
    return write_series(folder, ipps, col=tuple(col), tags=tags, **options)


def straight_scan(folder: Path, zs: Sequence[float], **options) -> Path:
    """An axial scan with slices at ``zs`` (mm, table positions)."""
    size, pixel = options.get("size", 100), options.get("pixel", 1.6)
    half = (size - 1) / 2 * pixel
    return write_series(folder, [np.array([-half, -half, z]) for z in zs], **options)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 4096.0) -> float:
    mse = float(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2))
    return 10 * np.log10(data_range ** 2 / mse)


def point_position(volume) -> np.ndarray:
    """Physical position of the bright point in ``volume``: the intensity-weighted centroid
    of the voxels near the brightest one (above the brain around it)."""
    a = volume.array.astype(np.float64)
    k, j, i = np.unravel_index(np.argmax(a), a.shape)
    lo = [max(0, c - 4) for c in (k, j, i)]
    box = a[lo[0]:k + 5, lo[1]:j + 5, lo[2]:i + 5]
    w = np.clip(box - 300.0, 0, None)
    kk, jj, ii = np.meshgrid(*(np.arange(n) + o for n, o in zip(box.shape, lo)), indexing="ij")
    centre = [float((w * g).sum() / w.sum()) for g in (ii, jj, kk)]
    return volume.index_to_physical(centre)
