"""Image quality metrics for synthesised CT slices.

Conventions (fixed so numbers compare across runs and papers):

- ``psnr_hu`` / ``rmse_hu``: HU clipped to [-1024, 3071], data range 4095;
- ``psnr_win`` / ``ssim_win``: soft-tissue window [-160, 240] (W 400, L 40), data range 400;
- PSNR pools the squared error over all scored voxels, then takes the log (volume PSNR);
- SSIM is the 2D Gaussian SSIM (sigma 1.5, K1 0.01, K2 0.03) averaged over scored slices;
- ``grad_ratio``: gradient energy of the synthesised slices divided by that of the ground truth
  (1 is as sharp as the truth; below 1 blurred, as MSE-trained models tend to be).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from .constants import HU_RANGE, WINDOW



def _clip(a: np.ndarray, rng) -> np.ndarray:
    return np.clip(np.asarray(a, dtype=np.float64), rng[0], rng[1])


def mse(pred: np.ndarray, truth: np.ndarray, rng=HU_RANGE) -> float:
    """Mean squared error after clipping both to ``rng``."""
    return float(np.mean((_clip(pred, rng) - _clip(truth, rng)) ** 2))


def psnr(pred: np.ndarray, truth: np.ndarray, rng=HU_RANGE) -> float:
    """PSNR in dB with data range ``rng[1] - rng[0]``; inf for identical images."""
    m = mse(pred, truth, rng)
    return float("inf") if m == 0 else float(10 * np.log10((rng[1] - rng[0]) ** 2 / m))


def rmse(pred: np.ndarray, truth: np.ndarray, rng=HU_RANGE) -> float:
    """Root mean squared error in HU after clipping."""
    return float(np.sqrt(mse(pred, truth, rng)))


def ssim_slice(pred: np.ndarray, truth: np.ndarray, data_range: float,
               sigma: float = 1.5) -> float:
    """Gaussian-window SSIM of two 2D images (Wang et al. 2004)."""
    x = pred.astype(np.float64)
    y = truth.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    f = lambda a: gaussian_filter(a, sigma, truncate=3.5)  # noqa: E731  (11x11 window)
    mx, my = f(x), f(y)
    sxx = f(x * x) - mx * mx
    syy = f(y * y) - my * my
    sxy = f(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def ssim(pred: np.ndarray, truth: np.ndarray, rng=WINDOW) -> float:
    """Mean 2D SSIM over the slices of ``(z, y, x)`` stacks, after clipping to ``rng``."""
    p, t = _clip(pred, rng), _clip(truth, rng)
    if p.ndim == 2:
        p, t = p[None], t[None]
    return float(np.mean([ssim_slice(a, b, rng[1] - rng[0]) for a, b in zip(p, t)]))


def gradient_energy(stack: np.ndarray, rng=HU_RANGE) -> float:
    """Mean squared in-plane gradient magnitude of a ``(z, y, x)`` stack (HU clipped)."""
    a = _clip(stack, rng)
    gy = np.diff(a, axis=-2)
    gx = np.diff(a, axis=-1)
    return float(np.mean(gy ** 2) + np.mean(gx ** 2))


@dataclass
class Scores:
    """All metrics of one comparison."""

    psnr_hu: float
    psnr_win: float
    ssim_win: float
    rmse_hu: float
    grad_ratio: float


def score(pred: np.ndarray, truth: np.ndarray) -> Scores:
    """Every metric of the evaluation protocol for synthesised slices ``pred`` vs ``truth``."""
    return Scores(
        psnr_hu=psnr(pred, truth, HU_RANGE),
        psnr_win=psnr(pred, truth, WINDOW),
        ssim_win=ssim(pred, truth, WINDOW),
        rmse_hu=rmse(pred, truth, HU_RANGE),
        grad_ratio=gradient_energy(pred) / max(gradient_energy(truth), 1e-12),
    )
