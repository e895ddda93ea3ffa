"""The training losses of the HRINet family that are more than a PyTorch one-liner."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from hrinet.core.constants import HU_MIN, HU_SCALE, WINDOW
from hrinet.learned.models import normalise

#: Added to each sample's ``1 - SSIM`` before the log (:func:`log_dissimilarity`): a crop that
#: the window shows as flat (lung or air only, SSIM 1) adds no gradient, and one already near 1
#: does not outweigh the rest (x2 samples score about 0.97).
LOG_SSIM_FLOOR = 0.01

#: Added to each sample's gradient difference before the log (:func:`log_gradient_difference`),
#: in normalised units per pixel (about 0.4 HU): a flat crop adds no gradient.
LOG_GRADIENT_FLOOR = 1e-4

#: Added to each sample's gradient energy before the log (:func:`log_energy_gap`), in squared
#: normalised units (a 1 HU step between neighbours is about 6e-8): a flat crop adds no gradient.
LOG_ENERGY_FLOOR = 1e-7

#: Known slices the conditional PatchGAN judges a slice beside (``adversarial_context``): the
#: two nearest, w1 and w2 of a motion batch's samples (sampled along the flow at the target).
CRITIC_CONTEXT = 2


def acai_critic_loss(d_mix: torch.Tensor, a: torch.Tensor, d_real_blend: torch.Tensor) -> torch.Tensor:
    """Paper eq. (2): ``||D1(x_a) - a||^2 + ||D1(g x + (1 - g) AE(x))||^2``."""
    return F.mse_loss(d_mix, a) + d_real_blend.pow(2).mean()


def generator_adversarial(d1_mix: Optional[torch.Tensor], d2_logits: Optional[torch.Tensor],
                          lam: float, beta: float) -> torch.Tensor:
    """``lambda * ||D1(x_a)||^2 + beta * log(1 - D2(x_a))`` (D2 as logits: log(1-sigmoid)=-softplus)."""
    total = torch.zeros(())
    if d1_mix is not None:
        total = total + lam * d1_mix.pow(2).mean()
    if d2_logits is not None:
        total = total + beta * (-F.softplus(d2_logits)).mean()
    return total


def balanced_weight(content: torch.Tensor, extra: torch.Tensor, output: torch.Tensor,
                    weight: float) -> torch.Tensor:
    """The factor (detached) that makes ``extra``'s gradient at ``output`` ``weight`` times as
    large (in norm) as ``content``'s: ``weight * |d content / d output| / |d extra / d output|``.

    An adversarial term's raw gradient has no fixed scale beside a content loss (it moves as the
    critic learns, and a log-MSE's gradient is that of the MSE divided by the MSE, thousands of
    times larger near the truth); measured at the output each step, the weight keeps one
    meaning (the adaptive weight of Esser et al.'s VQGAN, taken at the output instead of the
    last layer, which costs no pass through the network). Both graphs are kept."""
    (gc,) = torch.autograd.grad(content, output, retain_graph=True)
    (ge,) = torch.autograd.grad(extra, output, retain_graph=True)
    return (weight * gc.norm() / (ge.norm() + 1e-12)).detach()


def critic_context(samples: torch.Tensor) -> torch.Tensor:
    """The known slices the conditional PatchGAN sees beside each judged slice: the nearest two
    of a motion batch's ``(B, 4, S, S)`` samples (HU), in the models' [0, 1] range."""
    lo = 2 - CRITIC_CONTEXT // 2
    return normalise(samples[:, lo:lo + CRITIC_CONTEXT].float())


def with_context(context: Optional[torch.Tensor], judged: torch.Tensor) -> torch.Tensor:
    """The PatchGAN's input: ``judged`` alone, or after ``context``'s channels."""
    return judged if context is None else torch.cat([context, judged], 1)


def patchgan_critic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D2's real/fake cross-entropy (pix2pix): acquired slices 1, synthesised slices 0."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) +
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def ssim_torch(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5, size: int = 11,
               per_sample: bool = False) -> torch.Tensor:
    """Differentiable mean SSIM of ``(B, 1, H, W)`` images in [0, 1] (valid windows only); with
    ``per_sample`` one mean per image, ``(B,)``."""
    r = torch.arange(size, dtype=x.dtype, device=x.device) - size // 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    # the five local moments as channels of one separable (row, then column) Gaussian filter
    moments = torch.cat([x, y, x * x, y * y, x * y], 1)
    m = F.conv2d(moments, g.view(1, 1, size, 1).expand(5, 1, size, 1), groups=5)
    m = F.conv2d(m, g.view(1, 1, 1, size).expand(5, 1, 1, size), groups=5)
    mx, my = m[:, 0:1], m[:, 1:2]
    sxx, syy, sxy = m[:, 2:3] - mx * mx, m[:, 3:4] - my * my, m[:, 4:5] - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3)) if per_sample else s.mean()


def windowed(x: torch.Tensor) -> torch.Tensor:
    """Normalised-unit slices as the soft-tissue window shows them, in [0, 1]."""
    lo, hi = ((w - HU_MIN) / HU_SCALE for w in WINDOW)
    return (x.clamp(lo, hi) - lo) / (hi - lo)


def log_dissimilarity(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each sample's ``log(1 - SSIM + LOG_SSIM_FLOOR)`` in the soft-tissue window, ``(B,)``
    (inputs in normalised units)."""
    s = ssim_torch(windowed(pred), windowed(target), per_sample=True)
    return torch.log(1 - s + LOG_SSIM_FLOOR)


def ssim_weights(gap: torch.Tensor, weight: float, x2_weight: float) -> torch.Tensor:
    """Each sample's weight of the log-scale SSIM term, ``(B,)``: ``weight``, and ``x2_weight``
    more where the known slices are two thin slices apart (``gap`` 2: an x2 sample)."""
    return weight + x2_weight * (gap == 2).to(torch.float32)


def gradient_difference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each sample's mean ``| |d pred| - |d target| |`` over in-plane neighbour differences along y
    and x (Mathieu et al.'s gradient difference loss, exponent 1), ``(B,)``.

    Blurred slices have smaller gradients than the truth; this term grows with the loss of edge
    strength that a pixel MSE forgives at wide gaps (``grad_ratio`` of :mod:`hrinet.evaluation`).
    """
    def diff(x: torch.Tensor, dim: int) -> torch.Tensor:
        return (x.diff(dim=dim)).abs()

    gy = (diff(pred, -2) - diff(target, -2)).abs().mean(dim=(1, 2, 3))
    gx = (diff(pred, -1) - diff(target, -1)).abs().mean(dim=(1, 2, 3))
    return gy + gx


def log_gradient_difference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``log(gradient_difference + LOG_GRADIENT_FLOOR)`` per sample, on the log-MSE's scale."""
    return torch.log(gradient_difference(pred, target) + LOG_GRADIENT_FLOOR)


def gradient_energy(x: torch.Tensor) -> torch.Tensor:
    """Each sample's mean squared in-plane neighbour difference (along y plus along x), ``(B,)``:
    the quantity whose ratio to the truth's :mod:`hrinet.evaluation`'s ``grad_ratio`` reports."""
    return (x.diff(dim=-2) ** 2).mean(dim=(1, 2, 3)) + (x.diff(dim=-1) ** 2).mean(dim=(1, 2, 3))


def log_energy_gap(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each sample's ``(log E_pred - log E_truth)^2`` (``E``: :func:`gradient_energy`), ``(B,)``.

    Unlike the gradient difference, which a symmetric blur of a monotone edge barely changes,
    the energy of a step falls with every pixel the blur spreads it over, so this term sees the
    blur that ``grad_ratio`` shows; it is symmetric, so drawing more edge energy than the truth
    has (invented texture) costs as much as losing it.
    """
    gap = torch.log(gradient_energy(pred) + LOG_ENERGY_FLOOR) - \
        torch.log(gradient_energy(target) + LOG_ENERGY_FLOOR)
    return gap ** 2
