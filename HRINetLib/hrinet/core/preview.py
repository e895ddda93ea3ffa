"""A look at a volume without a viewer: its middle axial, coronal and sagittal reformats side by
side in one PNG, each at its physical aspect ratio, so that a wrong slice order, stair steps or
a squashed reconstruction show at a glance (``hrinet interpolate --preview``).

Drawn in index space (rows of the coronal and sagittal views run from the last slice at the top
to the first: the head up for an axial CT in LPS), in a window that shows lung, soft tissue and
bone of CT at once; other intensities are windowed to their 1st-99th percentiles. The written
PNG is labelled: what made it, the window, and each view's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np
import SimpleITK as sitk

from hrinet.core.io.atomic import atomic_write, complete_png
from hrinet.core.errors import HRINetError
from hrinet.core.io import check_new_file
from hrinet.core.volume import Volume

#: The CT window of the preview, in HU: air to dense bone, lung and soft tissue distinguishable.
CT_WINDOW = (-1000.0, 1000.0)
#: The longest side of one view, in pixels.
MAX_VIEW = 640
#: Black pixels between two views.
GAP = 6
#: Height of the label strip above the views of a written preview, in pixels.
LABEL_STRIP = 22


def coronal(array: np.ndarray, row: Optional[int] = None) -> np.ndarray:
    """The coronal reformat ``(z, x)`` of a ``(z, y, x)`` array through ``row`` (the middle by
    default), the last slice at the top: how every figure of this project shows z (the head up
    for an axial CT in LPS), as Slicer and the preview do."""
    return array[::-1, array.shape[1] // 2 if row is None else row, :]


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
             _view(coronal(a), sz, sx, pixel),  # coronal: last slice on top
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


def view_widths(volume: Volume) -> Tuple[int, int, int]:
    """Pixel widths of the axial, coronal and sagittal views of :func:`preview_image`."""
    nz, ny, nx = volume.array.shape
    sx, sy, sz = (float(s) for s in volume.spacing)
    pixel = min(sx, sy, sz)
    return tuple(_view(np.zeros((r, c), np.float32), rm, cm, pixel).shape[1]
                 for r, c, rm, cm in ((ny, nx, sy, sx), (nz, nx, sz, sx), (nz, ny, sz, sy)))


def labelled(image: np.ndarray, widths: Tuple[int, int, int], caption: str,
             window: Tuple[float, float]) -> np.ndarray:
    """``image`` (from :func:`preview_image`) with a strip on top naming what made it
    (``caption``), the window (width and level in the image's units) and each view."""
    low, high = window
    head = f"{caption}  W{high - low:.0f} L{(high + low) / 2:.0f}  last slice up".strip()
    names = ("axial", "coronal", "sagittal")
    strip = np.zeros((LABEL_STRIP, max(image.shape[1], 8 * len(head))), np.uint8)
    x = 0
    for name, width in zip(names, widths):
        cv2.putText(strip, name, (x + 2, LABEL_STRIP - 5), cv2.FONT_HERSHEY_PLAIN, 0.9, 200, 1,
                    cv2.LINE_AA)
        x += width + GAP
    canvas = np.zeros((image.shape[0] + 2 * LABEL_STRIP, strip.shape[1]), np.uint8)
    cv2.putText(canvas, head, (2, LABEL_STRIP - 6), cv2.FONT_HERSHEY_PLAIN, 1.0, 255, 1,
                cv2.LINE_AA)
    canvas[LABEL_STRIP:2 * LABEL_STRIP] = strip
    canvas[2 * LABEL_STRIP:, :image.shape[1]] = image
    return canvas


def write_preview(volume: Volume, path, overwrite: bool = True, caption: str = "") -> Path:
    """Write :func:`preview_image` of ``volume`` to ``path`` (a ``.png``), atomically, labelled
    (:func:`labelled`) with ``caption`` (what made it, e.g. "hrinet x4")."""
    path = check_preview_path(path, overwrite)
    window = display_window(volume.array)
    image = labelled(preview_image(volume, window), view_widths(volume), caption, window)
    image = sitk.GetImageFromArray(image)
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
