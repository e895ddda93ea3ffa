"""What scanners vary, drawn at random for training groups (NumPy only).

A model trained on a few scanners meets others: another dose (noise), another reconstruction
kernel (smooth to bone-sharp), another pixel size (0.25 to 1 mm), a small display field of view
whose circle cuts through the body. Each training group may be re-made with some of these,
consistently across its slices, so the known slices and the targets stay one acquisition. The
field-of-view circle is filled with air, as the engine shows padding to every method
(:mod:`hrinet.core.padding`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.ndimage import gaussian_filter

from hrinet.core.constants import HU_MIN


@dataclass(frozen=True)
class Acquisition:
    """One drawn re-acquisition of a group (None / 0: that part unchanged)."""

    #: Pixel-size change: the crop covers ``zoom`` times the field of the training crop.
    zoom: float = 1.0
    #: In-plane kernel: < 0 smooths (Gaussian sigma in pixels), > 0 sharpens (unsharp amount).
    kernel: float = 0.0
    #: Added noise, HU standard deviation (a lower dose).
    noise: float = 0.0
    #: Field-of-view circle (centre y, centre x, radius) as fractions of the crop, or None.
    circle: Optional[tuple] = None


#: Chance of each part in an augmented group.
PART_CHANCE = 0.5
#: Ranges each part is drawn from.
ZOOM_RANGE = (0.6, 1.6)
SMOOTH_RANGE = (0.4, 1.0)
SHARPEN_RANGE = (0.3, 1.2)
NOISE_RANGE = (5.0, 40.0)
RADIUS_RANGE = (0.35, 0.8)


def draw(rng: np.random.Generator, sharpen_max: float = SHARPEN_RANGE[1]) -> Acquisition:
    """A random :class:`Acquisition`, each part present with :data:`PART_CHANCE`; a sharp
    kernel's amount is drawn from ``SHARPEN_RANGE[0]`` to ``sharpen_max``."""
    zoom = float(np.exp(rng.uniform(*np.log(ZOOM_RANGE)))) if rng.random() < PART_CHANCE else 1.0
    kernel = 0.0
    if rng.random() < PART_CHANCE:
        if rng.random() < 0.5:
            kernel = -rng.uniform(*SMOOTH_RANGE)
        else:
            kernel = rng.uniform(SHARPEN_RANGE[0], sharpen_max)
    noise = rng.uniform(*NOISE_RANGE) if rng.random() < PART_CHANCE else 0.0
    circle = None
    if rng.random() < PART_CHANCE:
        circle = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(*RADIUS_RANGE))
    return Acquisition(zoom, float(kernel), float(noise), circle)


def resize_block(block: np.ndarray, size: int) -> np.ndarray:
    """``(n, h, w)`` slices resampled to ``(n, size, size)`` (area-averaged when shrinking)."""
    import cv2

    if block.shape[1] == size and block.shape[2] == size:
        return block
    shrink = block.shape[1] > size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return np.stack([cv2.resize(np.ascontiguousarray(s, dtype=np.float32), (size, size),
                                interpolation=interp) for s in block])


def apply_kernel(block: np.ndarray, kernel: float) -> np.ndarray:
    """In-plane smoothing (``kernel`` < 0) or unsharp-mask sharpening (> 0) of ``(n, y, x)``."""
    if kernel == 0:
        return block
    if kernel < 0:
        return gaussian_filter(block, sigma=(0, -kernel, -kernel))
    return block + kernel * (block - gaussian_filter(block, sigma=(0, 1.0, 1.0)))


def apply_noise(block: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Slightly correlated (CT-like) noise of ``sigma`` HU, independent per slice."""
    if sigma <= 0:
        return block
    n = rng.standard_normal(block.shape).astype(np.float32)
    n = gaussian_filter(n, sigma=(0, 0.7, 0.7))
    n *= sigma / max(float(n.std()), 1e-6)
    return block + n


def circle_mask(shape: tuple, circle: tuple) -> np.ndarray:
    """True outside the field-of-view circle (fractions of the slice size) of a ``(y, x)`` slice."""
    h, w = shape
    cy, cx, r = circle
    yy, xx = np.mgrid[:h, :w]
    return np.hypot(yy - cy * h, xx - cx * w) > r * min(h, w)


def reacquire(block: np.ndarray, acq: Acquisition, rng: np.random.Generator,
              circle: bool = True) -> np.ndarray:
    """``block`` (HU, ``(n, y, x)``) as :class:`Acquisition` ``acq`` would have made it (kernel,
    then noise, then the field-of-view circle as air); the zoom is the caller's (it picks the
    crop). ``circle=False`` leaves the circle out (whole slices measured for roughness)."""
    out = apply_noise(apply_kernel(block.astype(np.float32), acq.kernel), acq.noise, rng)
    if circle and acq.circle is not None:
        out[:, circle_mask(out.shape[1:], acq.circle)] = HU_MIN
    return out
