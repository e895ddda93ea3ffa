"""The HRINet model family: a mixing autoencoder and its two critics.

Generator: a shared encoder maps each slice to feature maps at strides 1..64; the maps of two
slices are mixed with one coefficient ``a`` (``z_a = a * En(x1) + (1 - a) * En(x2)``, so ``a = 1``
gives ``x1``) and decoded.

- Paper layout (variants ``ae``, ``acai``, ``hrinet-*``): mixing at strides 16, 32 and 64 through
  1x1 projections whose channels follow Table 1 (:func:`table1_mix_channels`): 256^2 input mixes
  16x16x16, 8x8x8 and 4x4x8; 512^2 input mixes 32x32x16, 16x16x8 and 8x8x4. The decoder sees only
  those mixed maps.
- ``hrinet-plus`` (ours, not in the paper): mixing at every stride (1 to 64) with U-Net skips, and
  at each level the decoder also receives ``(2a - 1)(f1 - f2)`` and ``|f1 - f2|`` so it can tell
  how the two slices differ (both terms are unchanged when the inputs and ``a`` are swapped). It
  predicts a correction to the linear blend ``a x1 + (1 - a) x2`` scaled by ``4a(1 - a)``, so the
  known slices (``a`` = 0 or 1) are reproduced exactly and an untrained model equals linear.

Critic D1 (ACAI) regresses ``a`` from an image; critic D2 is a PatchGAN (pix2pix, Markovian)
returning a map of real/fake logits, one per overlapping 70x70-pixel patch at full width.
Intensities are normalised as ``(clip(HU, -1024, 3071) + 1024) / 4095``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from hrinet.core.constants import HU_MAX, HU_MIN, HU_SCALE
from hrinet.core.variants import variant

#: Total downsampling of the encoder; inputs are padded to a multiple of it.
STRIDE = 64

def table1_mix_channels(size: int) -> Tuple[int, int, int]:
    """Channels of the three mixed maps (strides 16, 32, 64) for a square input of ``size``.

    Paper Table 1: 256^2 -> 16, 8, 8; 512^2 -> 16, 8, 4. Sizes in between use the 256 layout;
    larger ones the 512 layout.
    """
    return (16, 8, 4) if size >= 512 else (16, 8, 8)


@dataclass
class ModelConfig:
    """Architecture of a generator and its critics."""

    variant: str = "hrinet-mse"
    #: Input size the Table 1 channel counts were chosen for (training crops may be smaller).
    design_size: int = 256
    #: Encoder channels at strides 1, 2, 4, 8, 16, 32, 64.
    channels: Tuple[int, ...] = (16, 32, 48, 64, 96, 96, 96)
    mix_channels: Tuple[int, int, int] = (16, 8, 8)
    critic_channels: int = 32
    patch_channels: int = 32
    #: ``hrinet-flow`` only: the head also predicts per-pixel weights of the candidate estimates
    #: (:mod:`hrinet.learned.motion`); False for weights saved before it existed.
    blend: bool = False
    #: ``hrinet-flow`` only: a seventh candidate, the 6-slice cubic spline (two more known
    #: slices of context); False for weights saved before it existed.
    spline: bool = False
    #: ``hrinet-flow`` only: the known slices' roughness along z (:func:`hrinet.methods.flow.z_roughness`)
    #: as an input; False for weights saved before it existed.
    roughness: bool = False

    @property
    def residual(self) -> bool:
        return variant(self.variant).residual

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["mix_channels"] = list(self.mix_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        d["mix_channels"] = tuple(d["mix_channels"])
        return cls(**d)

    @classmethod
    def for_variant(cls, name: str, design_size: int = 256, **overrides) -> "ModelConfig":
        spec = variant(name)
        cfg = cls(variant=name, design_size=design_size,
                  mix_channels=table1_mix_channels(design_size))
        if spec.channels:
            cfg.channels = spec.channels
        if spec.motion:  # today's inputs: the blend head, the spline candidate, the roughness
            cfg.blend = cfg.spline = cfg.roughness = True
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return cfg


def normalise(hu: torch.Tensor) -> torch.Tensor:
    """HU to the models' [0, 1] range (clipped)."""
    return (hu.clamp(HU_MIN, HU_MAX) - HU_MIN) / HU_SCALE


def denormalise(x: torch.Tensor) -> torch.Tensor:
    """The models' range back to HU."""
    return x * HU_SCALE + HU_MIN


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))


class Encoder(nn.Module):
    """Feature maps at strides 1, 2, 4, ..., 64 (seven levels)."""

    def __init__(self, channels: Sequence[int]):
        super().__init__()
        self.levels = nn.ModuleList([_block(1, channels[0])] + [
            _block(channels[i - 1], channels[i], stride=2) for i in range(1, len(channels))])

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        return feats


class Generator(nn.Module):
    """Encoder, mixing and decoder; see the module docstring for the two layouts."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        ch = list(cfg.channels)
        self.encoder = Encoder(ch)
        self.residual = cfg.residual
        if self.residual:
            self.mixed_levels = list(range(len(ch)))
            self.project = nn.ModuleList([nn.Identity() for _ in ch])
            width = [3 * c for c in ch]  # z_a, (2a-1)(f1-f2), |f1-f2|
        else:
            self.mixed_levels = [4, 5, 6]  # strides 16, 32, 64
            self.project = nn.ModuleList([nn.Conv2d(ch[lv], m, 1)
                                          for lv, m in zip(self.mixed_levels, cfg.mix_channels)])
            width = list(cfg.mix_channels)
        # Decoder from the deepest level up to stride 1.
        deepest = self.mixed_levels[-1]
        self.dec_in = _block(width[-1], ch[deepest])
        self.ups = nn.ModuleList()
        self.skip_of = {}
        for lv in range(deepest - 1, -1, -1):
            skip = self.mixed_levels.index(lv) if lv in self.mixed_levels else None
            extra = width[skip] if skip is not None else 0
            self.skip_of[lv] = skip
            self.ups.append(_block(ch[lv + 1] + extra, ch[lv]))
        self.head = nn.Conv2d(ch[0], 1, 3, 1, 1)
        if self.residual:  # start as exactly the linear blend; training learns the correction
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def encode(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The maps that get mixed (Table 1 shapes for the paper layout)."""
        feats = self.encoder(x)
        return [p(feats[lv]) for p, lv in zip(self.project, self.mixed_levels)]

    def mix(self, z1: List[torch.Tensor], z2: List[torch.Tensor],
            a: torch.Tensor) -> List[torch.Tensor]:
        """``a * z1 + (1 - a) * z2`` per level (plus the difference terms for ``hrinet-plus``)."""
        a = a.view(-1, 1, 1, 1)
        out = []
        for f1, f2 in zip(z1, z2):
            m = a * f1 + (1 - a) * f2
            if self.residual:
                d = f1 - f2
                m = torch.cat([m, (2 * a - 1) * d, d.abs()], 1)
            out.append(m)
        return out

    def decode(self, z: List[torch.Tensor]) -> torch.Tensor:
        """Image from (mixed) maps."""
        h = self.dec_in(z[-1])
        deepest = self.mixed_levels[-1]
        for up, lv in zip(self.ups, range(deepest - 1, -1, -1)):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            skip = self.skip_of[lv]
            if skip is not None:
                h = torch.cat([h, z[skip]], 1)
            h = up(h)
        return self.head(h)

    def finish(self, out: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor,
               a: torch.Tensor) -> torch.Tensor:
        """Turn the decoder output into the image (adds the linear blend for ``hrinet-plus``)."""
        if not self.residual:
            return out
        a = a.view(-1, 1, 1, 1)
        return a * x1 + (1 - a) * x2 + 4 * a * (1 - a) * out

    def interpolate(self, x1: torch.Tensor, x2: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The slice at mix coefficient ``a`` (weight of ``x1``) between ``x1`` and ``x2``."""
        b = x1.shape[0]
        zs = self.encode(torch.cat([x1, x2]))
        z = self.mix([z[:b] for z in zs], [z[b:] for z in zs], a)
        return self.finish(self.decode(z), x1, x2, a)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """AE(x): the slice decoded from its own code (``a`` = 1)."""
        one = torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
        return self.interpolate(x, x, one)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, a: torch.Tensor,
                reconstruct: bool = True, repeat: int = 1) -> Dict[str, torch.Tensor]:
        """One pass for training: the mix and (optionally) both reconstructions.

        Everything goes through one call so DistributedDataParallel sees one forward per
        backward. With ``repeat`` > 1 each pair is encoded once and mixed at ``repeat``
        consecutive entries of ``a`` (step II: one group, several targets).
        """
        if repeat > 1:
            b = x1.shape[0]
            zs = self.encode(torch.cat([x1, x2]))
            z1 = [z[:b].repeat_interleave(repeat, 0) for z in zs]
            z2 = [z[b:].repeat_interleave(repeat, 0) for z in zs]
            r1, r2 = x1.repeat_interleave(repeat, 0), x2.repeat_interleave(repeat, 0)
            return {"x_a": self.finish(self.decode(self.mix(z1, z2, a)), r1, r2, a)}
        b = x1.shape[0]
        if reconstruct:
            xs = torch.cat([x1, x2])
            zs = self.encode(xs)
            z1 = [z[:b] for z in zs]
            z2 = [z[b:] for z in zs]
            ones = torch.ones(2 * b, device=x1.device, dtype=x1.dtype)
            zmix = self.mix(z1, z2, a)
            zrec = self.mix(zs, zs, ones)
            out = self.decode([torch.cat([m, r]) for m, r in zip(zmix, zrec)])
            x_a = self.finish(out[:b], x1, x2, a)
            rec = self.finish(out[b:], xs, xs, ones)
            return {"x_a": x_a, "rec1": rec[:b], "rec2": rec[b:]}
        return {"x_a": self.interpolate(x1, x2, a)}


class ACAICritic(nn.Module):
    """D1: predicts the mixing coefficient ``a`` of an image (0 for a real-looking slice)."""

    def __init__(self, channels: int = 32, levels: int = 5):
        super().__init__()
        layers, cin = [], 1
        for i in range(levels):
            cout = channels * min(2 ** i, 4)
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.out = nn.Conv2d(cin, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).mean(dim=(1, 2, 3))


class PatchGAN(nn.Module):
    """D2: the pix2pix 70x70 Markovian discriminator (logits per patch). ``inputs`` > 1 is
    pix2pix's conditional form: the slice judged comes last, after the slices it is judged
    beside."""

    def __init__(self, channels: int = 64, inputs: int = 1):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(inputs, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.InstanceNorm2d(2 * c), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.InstanceNorm2d(4 * c), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * c, 8 * c, 4, 1, 1), nn.InstanceNorm2d(8 * c), nn.LeakyReLU(0.2, True),
            nn.Conv2d(8 * c, 1, 4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def memory_format_for(device: torch.device) -> torch.memory_format:
    """Channels-last on the CPU, where its convolutions run faster (inference about 1.7x at 512²;
    a training step 1.13-1.27x, benchmarks/bench_train.py); the default layout elsewhere."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def pad_to_stride(x: torch.Tensor, stride: int = STRIDE) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Pad ``(..., H, W)`` at the bottom/right to multiples of ``stride`` (edge values)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)
