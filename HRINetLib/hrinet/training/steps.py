"""The training steps of :class:`hrinet.training.trainer.Trainer`: the content loss and one update of each
kind (stage I / step I unsupervised with the critics, step II supervised, and ``hrinet-flow``'s
motion step). A mixin: each step reads the trainer's models, optimisers, sampler and settings."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hrinet.core.constants import HU_MIN, HU_SCALE
from hrinet.core.variants import variant
from hrinet.learned.precision import autocast
from hrinet.training.config import LOG_MSE_FLOOR
from hrinet.training.losses import (
    acai_critic_loss,
    balanced_weight,
    critic_context,
    generator_adversarial,
    gradient_difference,
    log_dissimilarity,
    log_energy_gap,
    log_gradient_difference,
    patchgan_critic_loss,
    ssim_torch,
    ssim_weights,
    windowed,
    with_context,
)
from hrinet.training.prefetch import motion_batches


class StepsMixin:
    """Losses and steps; :class:`~hrinet.training.trainer.Trainer` supplies ``cfg``, ``G``, ``D1``, ``D2``,
    ``opt``, ``sampler``, ``frozen``, ``device``, ``step``, ``resolved`` and ``_batch``."""

    def content(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.cfg.spec.frozen_encoder and self.frozen is not None:
            fp = self.frozen.encode(pred)
            with torch.no_grad():
                ft = self.frozen.encode(target)
            return sum(F.mse_loss(a, b) for a, b in zip(fp, ft)) / len(fp)
        loss = F.mse_loss(pred, target)
        if self.cfg.window_weight > 0 or self.cfg.ssim_weight > 0:
            pw, tw = windowed(pred), windowed(target)
            if self.cfg.window_weight > 0:
                loss = loss + self.cfg.window_weight * F.mse_loss(pw, tw)
            if self.cfg.ssim_weight > 0:
                loss = loss + self.cfg.ssim_weight * (1 - ssim_torch(pw, tw))
        return loss

    def unsupervised_step(self, rng: np.random.Generator, use_d2: bool) -> dict:
        b = self.cfg.batch
        x1, x2 = self.sampler.pairs(rng, max(self.resolved.gaps), b)
        x1, x2 = self._batch(x1), self._batch(x2)
        a = torch.from_numpy(rng.random(b).astype(np.float32)).to(self.device)
        lam, beta = self.resolved.lam, self.resolved.beta
        out = self.G(x1, x2, a)
        x_a, rec1, rec2 = out["x_a"], out["rec1"], out["rec2"]
        content = self.content(rec1, x1) + self.content(rec2, x2)
        d1 = self.D1(x_a) if lam > 0 else None
        d2 = self.D2(x_a) if use_d2 else None
        loss_g = content + generator_adversarial(d1, d2, lam, beta).to(content.device)
        self.opt["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt["G"].step()
        logs = {"loss_g": loss_g.item(), "content": content.item()}
        if lam > 0:
            g = self.cfg.gamma
            blend = g * x1 + (1 - g) * rec1.detach()
            d = self.D1(torch.cat([x_a.detach(), blend]))
            loss_d1 = acai_critic_loss(d[:b], a, d[b:])
            self.opt["D1"].zero_grad(set_to_none=True)
            loss_d1.backward()
            self.opt["D1"].step()
            logs["loss_d1"] = loss_d1.item()
        if use_d2:
            logs["loss_d2"] = self.patchgan_update(x1, x_a.detach())
        return logs

    def patchgan_update(self, real: torch.Tensor, fake: torch.Tensor, precision: str = "fp32") -> float:
        """One step of D2 on acquired (``real``) and synthesised (``fake``, detached) slices;
        its loss. The network runs under ``precision``'s autocast, the loss in fp32."""
        b = real.shape[0]
        with autocast(self.device, precision):
            logits = self.D2(torch.cat([real, fake])).float()
        loss_d2 = patchgan_critic_loss(logits[:b], logits[b:])
        self.opt["D2"].zero_grad(set_to_none=True)
        loss_d2.backward()
        self.opt["D2"].step()
        return loss_d2.item()

    def motion_step(self, rng: np.random.Generator) -> dict:
        """``hrinet-flow``: ``cfg.batch`` groups, ``cfg.samples_per_group`` targets each, thin or
        slab input, gaps of ``resolved.gaps`` thin slices (made ahead by ``cfg.workers`` processes
        when set)."""
        gaps = list(self.resolved.gaps)
        per_group = self.cfg.samples_per_group
        if self.cfg.workers > 0:
            if self._batches is None:
                self._batches = motion_batches(self.sampler, self.cfg.seed, self.rank,
                                               self.step, self.cfg.batch, per_group, gaps,
                                               self.cfg.workers, self.cfg.overlap)
            step, mb = next(self._batches)
            assert step == self.step, (step, self.step)
        else:
            mb = self.sampler.motion_batch(rng, self.cfg.batch, per_group, gaps, self.cfg.overlap)
        dev = self.device
        # bf16 (when asked) covers the network only, as at inference; the loss is fp32
        with autocast(dev, self.cfg.precision):
            pred = self.G(self._batch(mb.samples), self._batch(mb.plain), mb.t.to(dev),
                          mb.s.to(dev), mb.rho.to(dev))
        pred = pred.float()
        target = (mb.targets.to(dev).clamp(HU_MIN, HU_MIN + HU_SCALE) - HU_MIN) / HU_SCALE
        pred = (pred - HU_MIN) / HU_SCALE
        if self.cfg.log_mse:
            # the window MSE is left out (beside log-MSE gradients it vanishes); SSIM, a
            # different measure, enters on the same log scale
            per_sample = ((pred - target) ** 2).mean(dim=(1, 2, 3))
            loss = torch.log(per_sample + LOG_MSE_FLOOR).mean()
            if self.cfg.ssim_x2_weight > 0:  # per sample: more on the x2 samples
                weight = ssim_weights(mb.gap.to(dev), self.cfg.ssim_weight, self.cfg.ssim_x2_weight)
                loss = loss + (weight * log_dissimilarity(pred, target)).mean()
            elif self.cfg.ssim_weight > 0:
                loss = loss + self.cfg.ssim_weight * log_dissimilarity(pred, target).mean()
            if self.cfg.grad_weight > 0:
                loss = loss + self.cfg.grad_weight * log_gradient_difference(pred, target).mean()
        else:
            loss = self.content(pred, target)
            if self.cfg.grad_weight > 0:
                loss = loss + self.cfg.grad_weight * gradient_difference(pred, target).mean()
        if self.cfg.energy_weight > 0:
            loss = loss + self.cfg.energy_weight * log_energy_gap(pred, target).mean()
        logs = {"content": loss.item()}
        if self.cfg.adversarial_weight > 0:
            # the paper's beta log(1 - D2(x)), its weight set against the content gradient; D2
            # is not updated by the generator's loss (its parameters are frozen for this pass);
            # with adversarial_context it judges each slice beside the nearest known ones
            context = critic_context(mb.samples.to(dev)) if self.cfg.adversarial_context else None
            self.D2.requires_grad_(False)
            with autocast(dev, self.cfg.precision):
                fooled = generator_adversarial(None, self.D2(with_context(context, pred)).float(),
                                               0.0, 1.0)
            self.D2.requires_grad_(True)
            loss = loss + balanced_weight(loss, fooled, pred, self.cfg.adversarial_weight) * fooled
        self.opt["G"].zero_grad(set_to_none=True)
        loss.backward()
        self.opt["G"].step()
        logs["loss_g"] = loss.item()
        if self.cfg.adversarial_weight > 0:
            logs["loss_d2"] = self.patchgan_update(with_context(context, target),
                                                   with_context(context, pred.detach()),
                                                   self.cfg.precision)
        return logs

    def supervised_step(self, rng: np.random.Generator) -> dict:
        if variant(self.cfg.variant).motion:
            return self.motion_step(rng)
        sizes = self.resolved.group_sizes
        n = sizes[int(rng.integers(len(sizes)))]
        # Keep the number of synthesised targets per step near batch * 5 whatever n is.
        groups = max(1, round(self.cfg.batch * 5 / (n - 2))) if len(sizes) > 1 else self.cfg.batch
        gb = self.sampler.supervised(rng, n, groups)
        dev = self.device
        x_a = self.G(self._batch(gb.x1), self._batch(gb.x2), gb.a.to(dev), reconstruct=False,
                     repeat=n - 2)["x_a"]
        loss = self.content(x_a, gb.targets.to(dev))
        self.opt["G"].zero_grad(set_to_none=True)
        loss.backward()
        self.opt["G"].step()
        return {"loss_g": loss.item(), "content": loss.item()}
