"""A look at a volume without a viewer: its middle axial, coronal and sagittal reformats side by
side in one PNG, each at its physical aspect ratio, so that a wrong slice order, stair steps or
a squashed reconstruction show at a glance (``hrinet interpolate --preview``).

Drawn in index space (rows of the coronal and sagittal views run from the last slice at the top
to the first), in a window that shows lung, soft tissue and bone of CT at once; other
intensities are windowed to their 1st-99th percentiles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk

from hrinet.core.atomic import atomic_write, complete_png
from hrinet.core.errors import HRINetError
from hrinet.core.io import check_new_file
from hrinet.core.volume import Volume

#: The CT window of the preview, in HU: air to dense bone, lung and soft tissue distinguishable.
CT_WINDOW = (-1000.0, 1000.0)
#: The longest side of one view, in pixels.
MAX_VIEW = 640
#: Black pixels between two views.
GAP = 6


def display_window(array: np.ndarray) -> Tuple[float, float]:
    """:data:`CT_WINDOW` for CT (values reach down to air), else the 1st-99th percentiles."""
    sample = array[:: max(1, array.shape[0] // 16)].astype(np.float32)
    low, high = np.percentile(sample, [1, 99])
    if sample.min() <= -900 and high > -500:
        return CT_WINDOW
    return (float(low), float(high) if high > low else float(low) + 1.0)


def _resize(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Bilinear resize of a 2D array (a preview needs no better)."""
    r = np.linspace(0, image.shape[0] - 1, rows)
    c = np.linspace(0, image.shape[1] - 1, cols)
    r0, c0 = np.floor(r).astype(int), np.floor(c).astype(int)
    r1, c1 = np.minimum(r0 + 1, image.shape[0] - 1), np.minimum(c0 + 1, image.shape[1] - 1)
    fr, fc = (r - r0)[:, None], (c - c0)[None, :]
    top = image[r0][:, c0] * (1 - fc) + image[r0][:, c1] * fc
    bottom = image[r1][:, c0] * (1 - fc) + image[r1][:, c1] * fc
    return top * (1 - fr) + bottom * fr


def _view(image: np.ndarray, row_mm: float, col_mm: float, pixel_mm: float) -> np.ndarray:
    rows = max(1, round(image.shape[0] * row_mm / pixel_mm))
    cols = max(1, round(image.shape[1] * col_mm / pixel_mm))
    scale = min(1.0, MAX_VIEW / max(rows, cols))
    return _resize(image, max(1, round(rows * scale)), max(1, round(cols * scale)))


def preview_image(volume: Volume, window: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """The three middle reformats of ``volume`` side by side, as an 8-bit grey image."""
    a = volume.array.astype(np.float32, copy=False)
    nz, ny, nx = a.shape
    sx, sy, sz = (float(s) for s in volume.spacing)
    pixel = min(sx, sy, sz)
    low, high = window or display_window(a)
    views = [_view(a[nz // 2], sy, sx, pixel),  # axial: rows y, columns x
             _view(a[::-1, ny // 2, :], sz, sx, pixel),  # coronal: last slice on top
             _view(a[::-1, :, nx // 2], sz, sy, pixel)]  # sagittal
    height = max(v.shape[0] for v in views)
    width = sum(v.shape[1] for v in views) + GAP * (len(views) - 1)
    canvas = np.full((height, width), low, np.float32)
    x = 0
    for v in views:
        top = (height - v.shape[0]) // 2
        canvas[top:top + v.shape[0], x:x + v.shape[1]] = v
        x += v.shape[1] + GAP
    grey = np.clip((canvas - low) / (high - low), 0.0, 1.0) * 255.0
    return np.round(grey).astype(np.uint8)


def write_preview(volume: Volume, path, overwrite: bool = True) -> Path:
    """Write :func:`preview_image` of ``volume`` to ``path`` (a ``.png``), atomically."""
    path = check_preview_path(path, overwrite)
    image = sitk.GetImageFromArray(preview_image(volume))
    with atomic_write(path, overwrite=overwrite, verify=complete_png, suffix=".png",
                      what=f"the preview {path}") as tmp:
        sitk.WriteImage(image, str(tmp))
    return path


def check_preview_path(path, overwrite: bool) -> Path:
    """Refuse a preview path before any work, as the output path is: a symbolic link to nothing
    (writing there would fail only at the end, or replace the user's link), not a .png, or not
    a file that may be written (:func:`hrinet.core.io.check_new_file`)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise HRINetError(f"the preview {path} is a symbolic link to nothing (a missing file or "
                          "a loop); remove the link or choose another name")
    if path.suffix.lower() != ".png":
        raise HRINetError(f"the preview {path} must be a .png file, e.g. {path.with_suffix('.png')}")
    return check_new_file(path, overwrite, "the preview", "preview.png")
