"""Which network each variant is: the one place that maps a variant to its generator."""

from __future__ import annotations

from typing import Dict

import torch.nn as nn

from hrinet.core.variants import variant
from hrinet.learned.models import ACAICritic, Generator, ModelConfig, PatchGAN
from hrinet.learned.motion import MotionNet


def build_generator(cfg: ModelConfig) -> nn.Module:
    """The generator of ``cfg.variant``: :class:`Generator`, or the motion-aware
    :class:`hrinet.learned.motion.MotionNet` for ``hrinet-flow``."""
    if variant(cfg.variant).motion:
        return MotionNet(cfg)
    return Generator(cfg)


def build_models(cfg: ModelConfig) -> Dict[str, nn.Module]:
    """The generator and both critics for ``cfg``."""
    return {"generator": build_generator(cfg), "critic": ACAICritic(cfg.critic_channels),
            "patchgan": PatchGAN(cfg.patch_channels)}
