"""What a run's generator starts as: the architecture (the checkpoint's, or the variant's) and,
for a new run given ``--init`` weights, those weights, with the paper's shared pre-training:
a stage-II variant started from the stage-I result, or from its own weights, trains stage II
only."""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch.nn as nn

from hrinet.core.errors import HRINetError
from hrinet.core.variants import STAGE1_RESULT, names_where, variant
from hrinet.learned.models import ModelConfig
from hrinet.learned.motion import grown
from hrinet.learned.weights import load_weights
from hrinet.training.config import TrainConfig


def model_config(cfg: TrainConfig, state: Optional[dict] = None) -> ModelConfig:
    """The architecture of a run: the one a resumed checkpoint's ``state`` holds (which may
    predate today's defaults), else the variant's at ``cfg.design_size`` (``cfg.channels``
    when given)."""
    if state is not None and "model" in state:
        return ModelConfig.from_dict(state["model"])
    overrides = {"channels": tuple(cfg.channels)} if cfg.channels else {}
    return ModelConfig.for_variant(cfg.variant, cfg.design_size, **overrides)


def starting_generator(cfg: TrainConfig, mcfg: ModelConfig) -> nn.Module:
    """The generator of ``cfg.init_weights`` in training mode, for a run of ``cfg.variant``
    whose architecture would otherwise be ``mcfg``. Sets ``cfg.from_stage1`` when the weights
    went through stage I already.

    Raises:
        HRINetError: weights of another variant (other than the stage-I result for a stage-II
            variant), or of a variant whose frozen encoder they do not hold.
    """
    pretrained, meta = load_weights(cfg.init_weights)
    theirs, ours = variant(meta["variant"]), cfg.spec
    if theirs.stage1_result and ours.stage2:
        # the paper's shared pre-training: stage II starts from the stage-I result, whose
        # encoder is also the frozen E_I of the perceptual loss
        cfg.from_stage1 = True
        pretrained.cfg = dataclasses.replace(pretrained.cfg, variant=cfg.variant)
    elif meta["variant"] == cfg.variant and ours.stage2:
        if ours.frozen_encoder:
            raise HRINetError(
                f"{cfg.variant} weights cannot be continued with --init: its frozen encoder E_I "
                "(the stage-I encoder) is in the run's checkpoint, not in the weights; continue "
                "the run with --resume, or train it again from the stage-I result (--init "
                f"<{STAGE1_RESULT} weights>)")
        cfg.from_stage1 = True  # stage-II weights went through stage I: stage II only
    elif meta["variant"] != cfg.variant:
        also = (f", or --variant {' / '.join(names_where('stage2'))} (stage II from this "
                "stage-I result)" if theirs.stage1_result else "")
        raise HRINetError(f"--init weights are variant {meta['variant']}, not {cfg.variant}; "
                          f"pass --variant {meta['variant']}{also}")
    if ours.motion:
        # older weights get today's inputs and candidates, each new one starting unused
        old = pretrained.cfg
        pretrained = grown(pretrained, dataclasses.replace(
            old, blend=old.blend or mcfg.blend, spline=old.spline or mcfg.spline,
            roughness=old.roughness or mcfg.roughness))
    return pretrained.train()
