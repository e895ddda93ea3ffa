"""The sampler a run draws its training batches from: the variant's kind
(:class:`~hrinet.training.motion_data.MotionSampler` for the flow models, else
:class:`~hrinet.training.data.SliceSampler`) with the run's settings."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from hrinet.core.variants import variant
from hrinet.core.volume import Volume
from hrinet.learned.models import ModelConfig
from hrinet.training.config import TrainConfig
from hrinet.training.data import SliceSampler
from hrinet.training.motion_data import MotionSampler


def make_sampler(cfg: TrainConfig, mcfg: ModelConfig, volumes: Sequence[Volume]) -> SliceSampler:
    """The sampler of ``cfg.variant`` over ``volumes`` (named after ``cfg.data``), making the
    inputs the generator of architecture ``mcfg`` takes."""
    kind = MotionSampler if variant(cfg.variant).motion else SliceSampler
    sampler = kind(volumes, cfg.crop, names=[Path(p).name for p in cfg.data])
    sampler.spline = mcfg.spline
    sampler.roughness = mcfg.roughness
    sampler.drop_context = cfg.drop_context
    sampler.augment = cfg.augment
    sampler.sharpen_max = cfg.sharpen_max
    sampler.cross_view = cfg.cross_view
    return sampler


def reading_warnings(volumes: Sequence[Volume], sampler: SliceSampler) -> List[str]:
    """What the user should be told about the training data: each volume's reading warnings
    (e.g. which series of a DICOM folder was read) and the sampler's (crops padded)."""
    return [w for v in volumes for w in v.metadata.get("warnings", [])] + sampler.warnings
