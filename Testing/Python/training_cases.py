"""Small training set-ups shared by the training tests: phantoms and a tiny configuration."""

from __future__ import annotations

from hrinet.core.phantom import make_phantom
from hrinet.training.config import TrainConfig


def volumes():
    """Two thin phantoms of different sizes, like two patients."""
    return [make_phantom(size=(80, 72, 20), spacing=(2.5, 2.5, 2.0), seed=5),
            make_phantom(size=(64, 64, 16), spacing=(3.0, 3.0, 3.0), seed=6)]


def tiny(variant: str, iterations: int, **kw) -> TrainConfig:
    base = dict(variant=variant, iterations=iterations, crop=64, batch=4, lr=1e-3, val_every=0,
                device="cpu", seed=3, checkpoint_minutes=60)
    base.update(kw)
    return TrainConfig(**base)
