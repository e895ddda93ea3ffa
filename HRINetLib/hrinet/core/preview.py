"""A look at a volume without a viewer: its middle axial, coronal and sagittal reformats side by
side in one PNG, each at its physical aspect ratio, so that a wrong slice order, stair steps or
a squashed reconstruction show at a glance (``hrinet interpolate --preview``).

Drawn in index space (rows of the coronal and sagittal views run from the last slice at the top
to the first: the head up for an axial CT in LPS), in a window that shows lung, soft tissue and
bone of CT at once; other intensities (not Hounsfield units) are windowed to their 1st-99th
percentiles (:func:`choose_window`). The written PNG is labelled: what made it, which window
was used, and each view's name, laid out so that no two labels overlap (:func:`label_layout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import SimpleITK as sitk

from hrinet.core.io.atomic import atomic_write, complete_png
from hrinet.core.errors import HRINetError
from hrinet.core.io import check_file_name, check_new_file
from hrinet.core.volume import Volume

#: The CT window of the preview, in HU: air to dense bone, lung and soft tissue distinguishable.
CT_WINDOW = (-1000.0, 1000.0)
#: The largest 99th percentile of data taken for Hounsfield units (12-bit CT reaches 3071;
#: beyond that the data are another quantity, windowed by their own range).
HU_MAX_DISPLAY = 4095.0
#: The longest side of one view, in pixels.
MAX_VIEW = 640
#: Black pixels between two views.
GAP = 6
#: Height of the label strip above the views of a written preview, in pixels.
LABEL_STRIP = 22
#: The font of the labels, and the sizes a view's name may take (the largest that fits).
FONT = cv2.FONT_HERSHEY_PLAIN
LABEL_SCALES = (0.9, 0.8, 0.7)
#: The views' names, and the short ones used where the full ones do not fit.
VIEW_NAMES = ("axial", "coronal", "sagittal")
SHORT_NAMES = ("ax", "cor", "sag")


def coronal(array: np.ndarray, row: Optional[int] = None) -> np.ndarray:
    """The coronal reformat ``(z, x)`` of a ``(z, y, x)`` array through ``row`` (the middle by
    default), the last slice at the top: how every figure of this project shows z (the head up
    for an axial CT in LPS), as Slicer and the preview do."""
    return array[::-1, array.shape[1] // 2 if row is None else row, :]


def choose_window(array: np.ndarray) -> Tuple[float, float, str]:
    """``(low, high, words)``: the display window of ``array`` and how it was chosen.

    Data in Hounsfield units (values reach down to air, the 99th percentile is within CT's
    range) get :data:`CT_WINDOW`. Anything else (MR, a probability map in 0..1, values of
    1e30) gets its robust range: the 1st-99th percentiles of its finite values, or where most
    voxels share one value (a background) the 1st-99th percentiles of the others, so that
    the image is neither all black nor all white."""
    sample = np.asarray(array[:: max(1, array.shape[0] // 16)], dtype=np.float64)
    values = sample[np.isfinite(sample)]
    if values.size == 0:
        return 0.0, 1.0, "no finite values"
    low, high = (float(v) for v in np.percentile(values, [1, 99]))
    if values.min() <= -900 and -500 < high <= HU_MAX_DISPLAY:
        lo, hi = CT_WINDOW
        return lo, hi, f"CT window W{hi - lo:.0f} L{(hi + lo) / 2:.0f} HU"
    how = "1st-99th percentile"
    if high <= low:  # one value fills most of it: the range of the others
        others = values[values != low]
        if others.size:
            o_low, o_high = (float(v) for v in np.percentile(others, [1, 99]))
            low, high = min(low, o_low), max(low, o_high)
            how = "1st-99th percentile of the values other than the background"
    if high <= low:
        return low - 0.5, low + 0.5, f"window {low - 0.5:.4g} to {low + 0.5:.4g} (one value)"
    return low, high, f"window {low:.4g} to {high:.4g} ({how}; not HU)"


def display_window(array: np.ndarray) -> Tuple[float, float]:
    """The ``(low, high)`` of :func:`choose_window`."""
    low, high, _ = choose_window(array)
    return low, high


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
    return np.round(np.nan_to_num(grey)).astype(np.uint8)


def view_widths(volume: Volume) -> Tuple[int, int, int]:
    """Pixel widths of the axial, coronal and sagittal views of :func:`preview_image`."""
    nz, ny, nx = volume.array.shape
    sx, sy, sz = (float(s) for s in volume.spacing)
    pixel = min(sx, sy, sz)
    return tuple(_view(np.zeros((r, c), np.float32), rm, cm, pixel).shape[1]
                 for r, c, rm, cm in ((ny, nx, sy, sx), (nz, nx, sz, sx), (nz, ny, sz, sy)))


@dataclass(frozen=True)
class Label:
    """One line of text of a labelled preview: drawn at ``x`` on ``baseline``."""

    text: str
    x: int
    baseline: int
    scale: float

    @property
    def box(self) -> Tuple[int, int, int, int]:
        """``(left, top, right, bottom)``, right and bottom exclusive: every pixel the text
        may touch (antialiasing included)."""
        (w, h), below = cv2.getTextSize(self.text, FONT, self.scale, 1)
        return self.x - 1, self.baseline - h - 1, self.x + w + 2, self.baseline + below + 2

    def draw(self, canvas: np.ndarray, grey: int) -> None:
        cv2.putText(canvas, self.text, (self.x, self.baseline), FONT, self.scale, grey, 1,
                    cv2.LINE_AA)


def text_width(text: str, scale: float) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


def label_layout(widths: Sequence[int], head: str) -> List[Label]:
    """Where the labels of a preview go: ``head`` on the first strip; on the second each view's
    name over its view, the largest that fits every view's width (full names, then "ax",
    "cor", "sag"), or where the views are too narrow for that (a volume 20 pixels wide, a few
    slices) one line naming the views left to right. No two labels overlap, and a view's name
    never reaches over another view."""
    labels = [Label(head, 2, LABEL_STRIP - 6, 1.0)]
    baseline = 2 * LABEL_STRIP - 5
    for names in (VIEW_NAMES, SHORT_NAMES):
        for scale in LABEL_SCALES:
            if all(text_width(n, scale) + 4 <= w for n, w in zip(names, widths)):
                x = 0
                for name, width in zip(names, widths):
                    labels.append(Label(name, x + 2, baseline, scale))
                    x += width + GAP
                return labels
    return labels + [Label(f"views, left to right: {', '.join(VIEW_NAMES)}", 2, baseline,
                           LABEL_SCALES[0])]


def labelled(image: np.ndarray, widths: Tuple[int, int, int], caption: str,
             window: Tuple[float, float], window_words: Optional[str] = None) -> np.ndarray:
    """``image`` (from :func:`preview_image`) with two strips on top: one naming what made it
    (``caption``), the window (``window_words``, by default its width and level in the image's
    units) and the orientation; one naming each view (:func:`label_layout`). The canvas is as
    wide as the widest label."""
    low, high = window
    words = window_words or f"W{high - low:.4g} L{(high + low) / 2:.4g}"
    head = f"{caption}  {words}  last slice up".strip()
    labels = label_layout(widths, head)
    width = max([image.shape[1]] + [label.box[2] + 1 for label in labels])
    canvas = np.zeros((image.shape[0] + 2 * LABEL_STRIP, width), np.uint8)
    for i, label in enumerate(labels):
        label.draw(canvas, 255 if i == 0 else 200)
    canvas[2 * LABEL_STRIP:, :image.shape[1]] = image
    return canvas


def write_preview(volume: Volume, path, overwrite: bool = True, caption: str = "") -> Path:
    """Write :func:`preview_image` of ``volume`` to ``path`` (a ``.png``), atomically, labelled
    (:func:`labelled`) with ``caption`` (what made it, e.g. "hrinet x4")."""
    path = check_preview_path(path, overwrite)
    low, high, words = choose_window(volume.array)
    image = labelled(preview_image(volume, (low, high)), view_widths(volume), caption,
                     (low, high), words)
    image = sitk.GetImageFromArray(image)
    with atomic_write(path, overwrite=overwrite, verify=complete_png, suffix=".png",
                      what=f"the preview {path}") as tmp:
        sitk.WriteImage(image, str(tmp))
    return path


def check_preview_path(path, overwrite: bool) -> Path:
    """Refuse a preview path before any work, as the output path is: a symbolic link to nothing
    (writing there would fail only at the end, or replace the user's link), not a .png, or not
    a file that may be written (:func:`hrinet.core.io.check_new_file`)."""
    check_file_name(path, "the preview")
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise HRINetError(f"the preview {path} is a symbolic link to nothing (a missing file or "
                          "a loop); remove the link or choose another name")
    if path.suffix.lower() != ".png":
        raise HRINetError(f"the preview {path} must be a .png file, e.g. {path.with_suffix('.png')}")
    return check_new_file(path, overwrite, "the preview", "preview.png")
