"""Learned interpolation methods, created by name through :mod:`hrinet.methods` (which lists
their names and imports this module only when one is created: it needs torch).

``method="hrinet"`` uses the shipped default weights (``Resources/weights/hrinet-default``) or any
``weights=`` file. Each known slice is encoded once; the mixes for every fraction of its pair are
decoded in batches, in the arithmetic ``precision`` resolves to (:mod:`hrinet.learned.precision`:
``auto`` is bf16 only on CPUs that compute it natively, for the variants measured within
tolerance, and fp32 elsewhere, CUDA included). Running out of GPU memory halves the batch, and at
batch 1 moves to the CPU, saying so in ``runtime_warnings``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch

from hrinet.core.errors import HRINetError
from hrinet.core.models.shipped import DEFAULT_NAME, find_weights, variant_weights_name
from hrinet.core.variants import variant
from hrinet.learned.models import HU_MIN, HU_SCALE, Generator, normalise, pad_to_stride
from hrinet.learned.motion import MotionInterpolator
from hrinet.learned.precision import autocast, resolve_precision
from hrinet.learned.weights import load_weights


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    device = (device or "auto").lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device in ("gpu", "cuda") or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise HRINetError("device cuda was asked for but no CUDA GPU is available; use "
                              "the CPU (--device cpu) or auto")
        return torch.device("cuda" if device == "gpu" else device)
    if device == "cpu":
        return torch.device("cpu")
    raise HRINetError(f"unknown device {device!r}; use auto, cpu or cuda")


class LearnedInterpolator:
    """Drives a :class:`Generator` for the engine."""

    halo = 0
    #: Trained on CT in HU: the engine warns when an input does not look like it.
    expects_hu = True

    def __init__(self, model: Generator, device: torch.device, batch_size: int = 8,
                 name: str = "hrinet", metadata: Optional[dict] = None,
                 precision: str = "fp32"):
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.name = name
        self.metadata = metadata or {}
        self.runtime_warnings: List[str] = []
        self.precision = precision

    @torch.no_grad()
    def _run(self, window: np.ndarray, pairs: Sequence[int], fractions: Sequence[float]):
        m = self.model
        raw = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))
        needed = sorted(set(pairs) | {p + 1 for p in pairs})
        x = normalise(raw[needed].unsqueeze(1)).to(self.device)
        x, (h, w) = pad_to_stride(x)
        slot = {s: i for i, s in enumerate(needed)}
        with autocast(self.device, self.precision):
            codes = [m.encode(x[i:i + self.batch_size]) for i in range(0, len(needed),
                                                                        self.batch_size)]
        codes = [torch.cat(level) for level in zip(*codes)]
        jobs = [(i, j, p, t) for i, p in enumerate(pairs) for j, t in enumerate(fractions)]
        out = np.empty((len(pairs), len(fractions), h, w), dtype=np.float32)
        for s in range(0, len(jobs), self.batch_size):
            batch = jobs[s:s + self.batch_size]
            lo = torch.tensor([slot[p] for _, _, p, _ in batch], device=self.device)
            hi = torch.tensor([slot[p + 1] for _, _, p, _ in batch], device=self.device)
            # a is the weight of the lower slice: fraction t from it means a = 1 - t.
            a = torch.tensor([1 - t for *_, t in batch], device=self.device)
            with autocast(self.device, self.precision):
                z = m.mix([c[lo] for c in codes], [c[hi] for c in codes], a)
                y = m.decode(z).float()
            y = y[:, 0, :h, :w]
            if m.residual:
                # Add the correction to the linear blend of the raw HU, so voxels outside the
                # normalised range (e.g. -3024 outside the scan circle) blend exactly as linear.
                a4 = a.view(-1, 1, 1).float()
                lo_raw = raw[[p for _, _, p, _ in batch]].to(self.device)
                hi_raw = raw[[p + 1 for _, _, p, _ in batch]].to(self.device)
                hu = a4 * lo_raw + (1 - a4) * hi_raw + 4 * a4 * (1 - a4) * y * HU_SCALE
            else:
                hu = y.clamp(0, 1) * HU_SCALE + HU_MIN
            hu = hu.cpu().numpy()
            for k, (i, j, _, _) in enumerate(batch):
                out[i, j] = hu[k]
        return out

    def interpolate(self, window, pairs, fractions):
        while True:
            try:
                return self._run(window, pairs, fractions)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if self.batch_size > 1:
                    self.batch_size //= 2
                    msg = f"GPU out of memory: batch size lowered to {self.batch_size}"
                else:
                    self.model = self.model.cpu()
                    self.device = torch.device("cpu")
                    msg = "GPU out of memory even at batch 1: continuing on the CPU"
                if msg not in self.runtime_warnings:
                    self.runtime_warnings.append(msg)
                    warnings.warn(msg)


def make_interpolator(model, device: torch.device, batch_size: Optional[int] = None,
                      name: str = "hrinet", metadata: Optional[dict] = None,
                      precision: str = "fp32"):
    """The engine method driving ``model`` (a :class:`Generator` or a ``MotionNet``), in
    ``precision`` (one of :data:`hrinet.core.constants.PRECISIONS`; ``auto`` per device)."""
    if batch_size is None:  # big batches feed a GPU; on a CPU they only cost memory
        batch_size = 8 if device.type == "cuda" else 2
    precision = resolve_precision(precision, device, model.cfg.variant)
    cls = MotionInterpolator if variant(model.cfg.variant).motion else LearnedInterpolator
    return cls(model, device, batch_size=batch_size, name=name, metadata=metadata,
               precision=precision)


def load_interpolator(weights: Optional[str] = None, device: str = "auto",
                      batch_size: Optional[int] = None,
                      precision: str = "auto") -> LearnedInterpolator:
    """A learned interpolator from ``weights`` (default: the shipped default model)."""
    path = weights or find_weights(DEFAULT_NAME)
    if path is None:
        raise HRINetError("no shipped default weights found (Resources/weights/"
                          f"{DEFAULT_NAME}); give a weights file (--weights) or use the cubic method")
    dev = resolve_device(device)
    model, meta = load_weights(path, device=str(dev))
    interp = make_interpolator(model, dev, batch_size, metadata=meta, precision=precision)
    interp.weights_path = Path(path)
    return interp


def learned_method(name: str, device: str = "auto", weights: Optional[str] = None,
                   precision: str = "auto", **_options) -> LearnedInterpolator:
    """The engine method ``name``: ``hrinet`` (the shipped default unless ``weights``) or a
    variant's shipped weights (registered lazily by :mod:`hrinet.methods`)."""
    if name == "hrinet" or (weights is None and variant(name).default):
        return load_interpolator(weights, device, precision=precision)  # either of its names
    path = weights or find_weights(variant_weights_name(name))
    if path is None:
        raise HRINetError(f"the {name} model is not installed; get it with: hrinet models "
                          f"--get {name} (a verified download), or give a weights file")
    interp = load_interpolator(str(path), device, precision=precision)
    theirs = interp.metadata.get("variant") if hasattr(interp, "metadata") else None
    if weights and theirs not in (None, name):
        raise HRINetError(f"the weights {Path(weights).name} are variant {theirs}, not {name}; "
                          f"use --method {theirs} (or hrinet) with them")
    interp.name = name
    return interp

