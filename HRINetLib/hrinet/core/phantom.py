"""A torso-like CT phantom for tests and the demo (the project ships no real CT).

Defined in physical millimetres, so the same anatomy can be sampled thin (ground truth) or thick
(the input a scanner gives): body ellipse with fat and muscle, two lungs with vessels, a spine and
ribs, liver, heart with contrast, and Gaussian noise, all varying smoothly along z.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from hrinet.core.volume import Volume


def _ellipse(x, y, cx, cy, rx, ry):
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def make_phantom(size: Tuple[int, int, int] = (128, 128, 40),
                 spacing: Tuple[float, float, float] = (1.5, 1.5, 5.0),
                 noise: float = 12.0, seed: int = 0, dtype=np.int16,
                 origin: Sequence[float] = (0.0, 0.0, 0.0),
                 direction: Optional[np.ndarray] = None) -> Volume:
    """Sample the phantom on a grid of ``size`` (x, y, z) voxels of ``spacing`` mm.

    The anatomy spans about 190 x 190 x 200 mm centred in-plane and starting at z = 0, whatever
    the grid, so a thin and a thick sampling show the same body.
    """
    nx, ny, nz = size
    sx, sy, sz = spacing
    rng = np.random.default_rng(seed)
    xs = (np.arange(nx) - (nx - 1) / 2) * sx
    ys = (np.arange(ny) - (ny - 1) / 2) * sy
    y, x = np.meshgrid(ys, xs, indexing="ij")
    vol = np.empty((nz, ny, nx), dtype=np.float32)
    for k in range(nz):
        z = k * sz
        t = z / 200.0  # 0 at the top of the scan, 1 at the bottom
        img = np.full((ny, nx), -1000.0, dtype=np.float32)
        bw, bh = 95 + 8 * np.sin(np.pi * t), 70 + 5 * np.sin(np.pi * t)
        img[_ellipse(x, y, 0, 0, bw, bh)] = -100  # subcutaneous fat
        img[_ellipse(x, y, 0, 0, bw - 8, bh - 7)] = 40  # muscle wall
        img[_ellipse(x, y, 0, 0, bw - 14, bh - 13)] = 10
        lung_r = 45 * np.clip(np.sin(np.pi * (t * 1.2 + 0.1)), 0.15, 1)
        for side in (-1, 1):
            lung = _ellipse(x, y, side * 40, -5, 0.65 * lung_r, lung_r * 0.95)
            img[lung] = -850
            for v in range(4):  # vessels drifting across slices
                ang = 2 * np.pi * v / 4 + 3 * t * side
                vx = side * 40 + 0.4 * lung_r * np.cos(ang)
                vy = -5 + 0.5 * lung_r * np.sin(ang)
                img[lung & _ellipse(x, y, vx, vy, 2.5, 2.5)] = 30
        hr = 32 * np.clip(np.sin(np.pi * (t * 2.5 - 0.3)), 0, 1)
        if hr > 2:
            img[_ellipse(x, y, 8, 15, hr, hr * 0.85)] = 45
            img[_ellipse(x, y, 8, 15, hr * 0.55, hr * 0.45)] = 180  # contrast-filled chambers
        lr = 55 * np.clip((t - 0.45) * 3, 0, 1)
        if lr > 2:
            img[_ellipse(x, y, -25, 10, lr, lr * 0.7)] = 60  # liver
        img[_ellipse(x, y, 0, 48, 11, 10)] = 700  # vertebral body
        img[_ellipse(x, y, 0, 48, 6, 5)] = 250  # cancellous core
        img[_ellipse(x, y, 0, 62, 4, 6)] = 900  # spinous process
        rib_phase = (z % 25.0) / 25.0  # a rib every 25 mm, crossing obliquely
        if rib_phase < 0.35:
            ang = np.arctan2(y, x)
            r = np.sqrt((x / (bw - 10)) ** 2 + (y / (bh - 9)) ** 2)
            rib = (np.abs(r - 1) < 0.05) & (np.abs(np.sin(ang - rib_phase * 4)) > 0.3)
            img[rib] = 800
        vol[k] = img
    if noise:
        vol += rng.normal(0, noise, vol.shape).astype(np.float32)
    info = np.iinfo(dtype) if np.issubdtype(np.dtype(dtype), np.integer) else None
    if info is not None:
        vol = np.clip(np.rint(vol), info.min, info.max)
    return Volume(array=vol.astype(dtype), spacing=spacing, origin=tuple(origin),
                  direction=np.eye(3) if direction is None else direction,
                  metadata={"source": "phantom", "warnings": []})
