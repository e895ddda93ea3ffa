"""The network each variant is built as (from its record's fields, :mod:`hrinet.core.variants`):
the one place that turns a model configuration into modules."""

from __future__ import annotations

from typing import Dict

import torch.nn as nn

from hrinet.core.variants import variant
from hrinet.learned.models import ACAICritic, Generator, ModelConfig, PatchGAN
from hrinet.learned.motion import MotionNet


def build_generator(cfg: ModelConfig) -> nn.Module:
    """The generator of ``cfg.variant``: the motion-aware
    :class:`hrinet.learned.motion.MotionNet` for a variant with flow-guided refinement
    (:attr:`~hrinet.core.variants.Variant.motion`), else :class:`Generator`."""
    if variant(cfg.variant).motion:
        return MotionNet(cfg)
    return Generator(cfg)


def build_models(cfg: ModelConfig, patch_context: int = 0) -> Dict[str, nn.Module]:
    """The generator and both critics for ``cfg``; D2 judges each slice beside
    ``patch_context`` others (0: alone, as in the paper)."""
    return {"generator": build_generator(cfg), "critic": ACAICritic(cfg.critic_channels),
            "patchgan": PatchGAN(cfg.patch_channels, inputs=1 + patch_context)}
