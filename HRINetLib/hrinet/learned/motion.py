"""``hrinet-flow``: the motion-aware learned interpolator (ours; the default model).

The paper's generator blends encoder features in place, so it cannot follow anatomy that moves
between slices; the classical ``flow`` method follows the motion but errs where the flow is wrong
and cannot use the curvature cubic B-splines use. This model starts from the flow estimate and
learns what is left: from the known slices sampled along the motion trajectories, the motion-free
linear, cubic and spline candidates, ``t``, the slab ratio and the slices' roughness along z, a
small U-Net predicts a correction and per-candidate blend maps; a gate in ``t`` keeps thin known
slices exact and restores slab-averaged ones. The zero-initialised head makes the untrained model
the classical ``flow`` method. Inputs, gate and history: docs/hrinet-flow.md.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hrinet.learned.models import (
    HU_MAX,
    HU_MIN,
    HU_SCALE,
    ModelConfig,
    memory_format_for,
    pad_to_stride,
)
from hrinet.learned.precision import autocast
from hrinet.methods.flow import ROUGHNESS_UNKNOWN, WindowFlows, motion_features

#: Total downsampling of the U-Net; inputs are padded to a multiple of it.
MOTION_STRIDE = 8
#: Scale of the difference channels (HU differences of tens are ~0.01 after normalisation).
DIFF_GAIN = 4.0
FEATURES = 7  # fb, w1-fb, w2-fb, lin-fb, cubic-fb, w0-fb, w3-fb
#: Candidates the blend head weighs, as indices into ``cat([samples, plain])``: w1, w2, lin,
#: cubic, w0, w3 (the order of the difference channels).
BLEND_CANDIDATES = (1, 2, 4, 5, 0, 3)
#: Index of the 6-slice spline in ``cat([samples, plain])`` (``spline`` models); its difference
#: channel and blend weight come after all others, so older weights grow into it at zero.
SPLINE_CANDIDATE = 6
#: ``rho`` enters the network as ``rho / ROUGHNESS_SCALE`` (about 1 for thin slices far apart).
ROUGHNESS_SCALE = 2.0


def gate(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Where the correction may act: 0 at known thin slices, 1 everywhere for slab input."""
    g = 4 * t * (1 - t)
    return g + s.clamp(0, 1) * (1 - g)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class MotionNet(nn.Module):
    """Flow-guided refinement U-Net (see the module docstring)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = list(cfg.channels)
        if len(c) != 4:
            raise ValueError(f"hrinet-flow needs 4 channel counts (strides 1-8), got {c}")
        self.enc = nn.ModuleList([
            _conv(FEATURES + 2 + int(cfg.spline) + int(cfg.roughness), c[0]),
            nn.Sequential(_conv(c[0], c[1], 2), _conv(c[1], c[1])),
            nn.Sequential(_conv(c[1], c[2], 2), _conv(c[2], c[2])),
            nn.Sequential(_conv(c[2], c[3], 2), _conv(c[3], c[3]))])
        self.dec = nn.ModuleList([_conv(c[3] + c[2], c[2]), _conv(c[2] + c[1], c[1]),
                                  _conv(c[1] + c[0], c[0])])
        # Each input is grown after the one before it (see grown): the channels stay in order.
        if cfg.spline and not cfg.blend:
            raise ValueError("the spline candidate needs the blend head (blend=True)")
        if cfg.roughness and not cfg.spline:
            raise ValueError("the roughness input needs the spline candidate (spline=True)")
        self.candidates = (list(BLEND_CANDIDATES) + [SPLINE_CANDIDATE] * cfg.spline
                           if cfg.blend else [])
        self.head = nn.Conv2d(c[0], 1 + len(self.candidates), 3, 1, 1)
        nn.init.zeros_(self.head.weight)  # untrained = the classical flow method
        nn.init.zeros_(self.head.bias)

    def inputs(self, samples: torch.Tensor, plain: torch.Tensor, t: torch.Tensor,
               s: torch.Tensor, rho: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Network input from trajectory samples ``(B, 4, H, W)`` and the motion-free linear and
        cubic estimates ``(B, 2, H, W)`` (and the spline, ``(B, 3, H, W)``) in HU, ``t`` and
        ``s`` (B,), and ``rho`` (B,) for ``roughness`` models (None: unmeasured)."""
        tv, sv = t.view(-1, 1, 1, 1), s.view(-1, 1, 1, 1)
        x = (torch.cat([samples, plain], 1).clamp(HU_MIN, HU_MAX) - HU_MIN) / HU_SCALE
        w0, w1, w2, w3, lin, cub = (x[:, i:i + 1] for i in range(6))
        fb = (1 - tv) * w1 + tv * w2
        b, _, h, w = x.shape
        diffs = [DIFF_GAIN * (e - fb) for e in (w1, w2, lin, cub, w0, w3)]
        maps = [tv.expand(b, 1, h, w), sv.clamp(0, 2).expand(b, 1, h, w)]
        extra = [DIFF_GAIN * (x[:, 6:7] - fb)] if x.shape[1] > 6 else []
        if self.cfg.roughness:
            if rho is None:
                rho = torch.full_like(t, ROUGHNESS_UNKNOWN)
            rv = (rho.to(x.dtype) / ROUGHNESS_SCALE).clamp(0, 2).view(-1, 1, 1, 1)
            extra.append(rv.expand(b, 1, h, w))
        return torch.cat([fb] + diffs + maps + extra, 1)

    def correction(self, net_in: torch.Tensor) -> torch.Tensor:
        """The U-Net's correction ``r`` (normalised units) for a prepared input."""
        skips = []
        h = net_in
        for i, level in enumerate(self.enc):
            h = level(h)
            if i < 3:
                skips.append(h)
        for up, skip in zip(self.dec, reversed(skips)):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = up(torch.cat([h, skip], 1))
        return self.head(h)

    def forward(self, samples: torch.Tensor, plain: torch.Tensor, t: torch.Tensor,
                s: torch.Tensor, rho: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Synthesised slices in HU, ``(B, 1, H, W)``; inputs in HU (H, W multiples of 8)."""
        tv = t.view(-1, 1, 1, 1)
        net_in = self.inputs(samples, plain, t, s, rho)
        fb_hu = (1 - tv) * samples[:, 1:2] + tv * samples[:, 2:3]
        head = self.correction(net_in)
        corr = head[:, :1] * HU_SCALE
        if self.candidates:
            cands = torch.cat([samples, plain], 1)[:, self.candidates] - fb_hu
            corr = corr + (head[:, 1:] * cands).sum(1, keepdim=True)
        return fb_hu + gate(tv, s.view(-1, 1, 1, 1)) * corr


def grown(model: MotionNet, cfg: Optional[ModelConfig] = None) -> MotionNet:
    """``model`` with today's (or ``cfg``'s) inputs and head, computing exactly what it did: the
    blend head's weight maps, the spline's input channel and weight map and the roughness input
    start at zero. Lets training continue older weights with the newer architecture."""
    cfg = cfg or dataclasses.replace(model.cfg, blend=True, spline=True, roughness=True)
    flags = lambda c: (c.blend, c.spline, c.roughness)  # noqa: E731
    if flags(cfg) == flags(model.cfg):
        return model
    new = MotionNet(cfg)
    state = dict(model.state_dict())
    for name, param in new.state_dict().items():
        old = state[name]
        if old.shape != param.shape:  # the new channels come last (input and head)
            g = torch.zeros_like(param)
            g[tuple(slice(0, n) for n in old.shape)] = old
            state[name] = g
    new.load_state_dict(state)
    return new.train(model.training)


def with_blend_head(model: MotionNet) -> MotionNet:
    """``model`` (without the blend head) as a blend-head model that computes exactly the same."""
    return grown(model, dataclasses.replace(model.cfg, blend=True))


class MotionInterpolator:
    """Drives a :class:`MotionNet` for the engine (one or two known slices of context each
    side)."""

    expects_hu = True
    #: The engine may ask for fraction 0 (restore the known position) on slab input.
    restores_known = True

    def __init__(self, model: MotionNet, device: torch.device, batch_size: int = 4,
                 name: str = "hrinet", metadata: Optional[dict] = None,
                 precision: str = "fp32"):
        #: Context known slices each side: one, or two for the spline candidate.
        self.halo = 2 if model.cfg.spline else 1
        self.memory_format = memory_format_for(device)
        self.model = model.to(device, memory_format=self.memory_format).eval()
        self.device = device
        self.batch_size = batch_size
        self.name = name
        self.metadata = metadata or {}
        self.runtime_warnings: List[str] = []
        #: Slice thickness / slice spacing of the input (set by the engine).
        self.slab_ratio = 0.0
        #: "fp32", "bf16" or "fp16" (resolved: hrinet.learned.precision).
        self.precision = precision

    @torch.inference_mode()
    def interpolate(self, window: np.ndarray, pairs: Sequence[int],
                    fractions: Sequence[float]) -> np.ndarray:
        flows = WindowFlows(window)  # each neighbouring pair's flow is estimated once
        out = np.empty((len(pairs), len(fractions)) + window.shape[1:], dtype=np.float32)
        jobs = [(i, j) for i in range(len(pairs)) for j in range(len(fractions))]
        batches = [jobs[s0:s0 + self.batch_size] for s0 in range(0, len(jobs), self.batch_size)]

        def features(batch):  # per batch, not per window: a window at x12 holds 6 x 44 slices
            x = np.stack([motion_features(flows, pairs[i], fractions[j], self.halo > 1)
                          for i, j in batch])
            rho = [flows.roughness(pairs[i]) for i, _ in batch] if self.model.cfg.roughness \
                else None
            return x, rho

        # The next batch's features (OpenCV and NumPy, which release the GIL) are built on a
        # second thread while the network runs on this one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(features, batches[0]) if batches else None
            for b, batch in enumerate(batches):
                x, rho = pending.result()
                x = torch.from_numpy(x)
                if b + 1 < len(batches):
                    pending = pool.submit(features, batches[b + 1])
                t = torch.tensor([fractions[j] for _, j in batch], dtype=torch.float32)
                s = torch.full_like(t, float(self.slab_ratio))
                x, (h, w) = pad_to_stride(x.to(self.device), MOTION_STRIDE)
                x = x.contiguous(memory_format=self.memory_format)
                r = None if rho is None else torch.tensor(rho, device=self.device)
                with autocast(self.device, self.precision):
                    y = self.model(x[:, :4], x[:, 4:], t.to(self.device), s.to(self.device), r)
                y = y[:, 0, :h, :w].float().cpu().numpy()
                for k, (i, j) in enumerate(batch):
                    out[i, j] = y[k]
        # The correction may overshoot; the input's range (the CT air floor, the densest bone)
        # bounds what a slice between its slices can hold.
        return np.clip(out, window.min(), window.max(), out=out)
