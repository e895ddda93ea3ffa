"""Image quality metrics for synthesised CT slices.

Conventions (fixed so numbers compare across runs and papers):

- ``psnr_hu`` / ``rmse_hu``: HU clipped to [-1024, 3071], data range 4095;
- ``psnr_win`` / ``ssim_win``: soft-tissue window [-160, 240] (W 400, L 40), data range 400;
- PSNR pools the squared error over all scored voxels, then takes the log (volume PSNR);
- SSIM is the 2D Gaussian SSIM (sigma 1.5, K1 0.01, K2 0.03) averaged over scored slices;
- ``grad_ratio``: gradient energy of the synthesised slices divided by that of the ground truth
  (1 is as sharp as the truth; below 1 blurred, as MSE-trained models tend to be);
- ``blur``: the no-reference blur effect of Crete-Roffet et al. (2007) of the synthesised slices
  in the soft-tissue window, 0 (sharp) to 1 (flat), and ``blur_truth`` the same of the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.ndimage import gaussian_filter, uniform_filter1d

from hrinet.core.constants import HU_RANGE, WINDOW


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


#: Length of the averaging filter of :func:`blur_effect` (the published method's 11 pixels).
BLUR_FILTER = 11


def blur_effect(image: np.ndarray, rng=WINDOW) -> float:
    """No-reference blur of one 2D image (Crete-Roffet, Dolmiere, Ladret, Nicolas 2007).

    The image is blurred further along each axis; a sharp image loses much of its neighbour-to-
    neighbour variation that way, a blurred one little. The score is the share of variation that
    survives, ``1 - sum(max(0, |d image| - |d blurred|)) / sum(|d image|)``, the larger (blurrier)
    of the two axes (an axis along which nothing varies says nothing and is left out): 0 sharp,
    1 flat. Needs no reference, so it also rates the truth.

    Example:
        >>> import numpy as np
        >>> edge = np.zeros((32, 32)); edge[:, 16:] = 200
        >>> blur_effect(edge) < blur_effect(np.cumsum(np.ones((32, 32)), axis=1))
        True
    """
    a = _clip(image, rng)
    if a.ndim != 2 or min(a.shape) < 4:
        raise ValueError(f"blur_effect needs a 2D image of at least 4 x 4 pixels, not {a.shape}")
    inner = (slice(2, -1), slice(2, -1))  # the filter's border effects are left out
    scores = []
    for axis in (0, 1):
        sharp = np.abs(np.diff(a, axis=axis))
        blurred = np.abs(np.diff(uniform_filter1d(a, BLUR_FILTER, axis=axis), axis=axis))
        total = sharp[inner].sum()
        lost = np.maximum(0.0, sharp - blurred)[inner].sum()
        if total > 0:
            scores.append(float(abs(total - lost) / total))
    return max(scores, default=1.0)


def blur(stack: np.ndarray, rng=WINDOW) -> float:
    """Mean :func:`blur_effect` over the slices of a ``(z, y, x)`` stack (or one 2D image)."""
    a = np.asarray(stack)
    if a.ndim == 2:
        a = a[None]
    return float(np.mean([blur_effect(s, rng) for s in a]))


#: HU above which a voxel counts as bone for :func:`bone_dice` (above contrast-filled vessels'
#: usual 150-250 HU, below cortical bone's 700+).
BONE_HU = 300.0


def bone_dice(pred: np.ndarray, truth: np.ndarray, threshold: float = BONE_HU) -> float:
    """Dice overlap of the bone (``>= threshold`` HU) in ``pred`` and ``truth``: how well a
    synthesised slice follows bone shapes (1: the same bone; 1 also when neither has any).

    Example:
        >>> import numpy as np
        >>> t = np.zeros((8, 8)); t[2:6, 2:6] = 1000
        >>> bone_dice(t, t), bone_dice(np.roll(t, 2, axis=1), t)
        (1.0, 0.5)
    """
    p, t = np.asarray(pred) >= threshold, np.asarray(truth) >= threshold
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else float(2 * np.logical_and(p, t).sum() / total)


@dataclass
class Scores:
    """All metrics of one comparison."""

    psnr_hu: float
    psnr_win: float
    ssim_win: float
    rmse_hu: float
    grad_ratio: float
    blur: float = float("nan")
    blur_truth: float = float("nan")


@dataclass(frozen=True)
class TruthStats:
    """The reference-only parts of :func:`score`: computed once per truth, reused per method."""

    gradient_energy: float
    blur: float


def truth_stats(truth: np.ndarray) -> TruthStats:
    """:class:`TruthStats` of a ``(z, y, x)`` ground-truth stack."""
    return TruthStats(gradient_energy(truth), blur(truth))


def score(pred: np.ndarray, truth: np.ndarray, stats: Optional[TruthStats] = None) -> Scores:
    """Every metric of the evaluation protocol for synthesised slices ``pred`` vs ``truth``
    (``stats``: :func:`truth_stats` of ``truth``, when several methods are scored on it)."""
    stats = stats if stats is not None else truth_stats(truth)
    return Scores(
        psnr_hu=psnr(pred, truth, HU_RANGE),
        psnr_win=psnr(pred, truth, WINDOW),
        ssim_win=ssim(pred, truth, WINDOW),
        rmse_hu=rmse(pred, truth, HU_RANGE),
        grad_ratio=gradient_energy(pred) / max(stats.gradient_energy, 1e-12),
        blur=blur(pred),
        blur_truth=stats.blur,
    )
