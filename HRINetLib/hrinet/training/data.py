"""Training samples: random crops of slice pairs and slice groups from a list of volumes.

Groups are defined in slices (``n`` consecutive slices of one volume) and never cross volume
boundaries; each volume's z spacing is recorded with the weights. Randomness comes from a
generator seeded by ``(seed, rank, step)``, so a resumed or distributed run draws exactly the
samples an uninterrupted one would, without saving any sampler state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import torch

from hrinet.core.errors import HRINetError
from hrinet.core.volume import Volume
from hrinet.learned.models import HU_MAX, HU_MIN, HU_SCALE

AIR = HU_MIN


def step_rng(seed: int, rank: int, step: int, stream: int = 0) -> np.random.Generator:
    """The generator for one training step (pure function of its arguments)."""
    return np.random.default_rng([seed, rank, step, stream])


@dataclass
class GroupBatch:
    """Step II input: ends of each group, the mix coefficients and the inner targets."""

    x1: torch.Tensor  # (B, 1, S, S), the first slice of each group
    x2: torch.Tensor  # (B, 1, S, S), the last slice
    a: torch.Tensor  # (B*(n-2),) weight of x1 for each target: 1 - k/(n-1)
    targets: torch.Tensor  # inner slices
    n: int


class SliceSampler:
    """Draws crops from in-memory volumes (kept in their own pixel type)."""

    def __init__(self, volumes: Sequence[Volume], crop: int = 128, names: Sequence[str] = ()):
        if not volumes:
            raise HRINetError("no training volumes given; pass --data with at least one volume")
        self.volumes = list(volumes)
        self.names = list(names) or [v.metadata.get("source", f"volume{i}")
                                     for i, v in enumerate(volumes)]
        #: What the caller should tell the user (crops padded beyond some volumes' slices).
        self.warnings: List[str] = []
        small = [(name, v.array.shape) for name, v in zip(self.names, self.volumes)
                 if min(v.array.shape[1:]) < crop]
        if small:
            fits = 64 * (min(min(shape[1:]) for _, shape in small) // 64)
            sizes = ", ".join(f"{name} ({shape[2]} x {shape[1]})" for name, shape in small)
            hint = (f"a crop of {fits} or less avoids it" if fits >= 64 else "the smallest crop "
                    "is 64 (crops are multiples of 64): give volumes with slices of at least "
                    "64 x 64")
            text = (f"crop {crop} is larger than the slices of {sizes}: crops there are padded "
                    f"with air; {hint}")
            if len(small) == len(self.volumes):  # nothing but padded crops: refuse
                raise HRINetError(text.replace("crops there are padded with air", "training "
                                               "would see padding, not anatomy"))
            self.warnings.append(text)
        self.crop = crop

    def _eligible(self, n: int) -> List[int]:
        ids = [i for i, v in enumerate(self.volumes) if v.array.shape[0] >= n]
        if not ids:
            raise HRINetError(f"no training volume has the {n} consecutive slices one training "
                              f"group needs; give volumes with at least {n} slices (for "
                              "hrinet-flow, smaller --gaps also need fewer)")
        return ids

    def _crop(self, rng: np.random.Generator, vid: int, z0: int, n: int,
              size: int = 0) -> np.ndarray:
        arr = self.volumes[vid].array
        _, ny, nx = arr.shape
        s = size or self.crop
        best = None
        for _ in range(6):  # prefer crops showing the body rather than air
            y0 = int(rng.integers(0, max(ny - s, 0) + 1))
            x0 = int(rng.integers(0, max(nx - s, 0) + 1))
            mid = arr[z0 + n // 2, y0:y0 + s, x0:x0 + s]
            if best is None or float(mid.mean()) > -800:
                best = (y0, x0)
                if float(mid.mean()) > -800:
                    break
        y0, x0 = best
        block = arr[z0:z0 + n, y0:y0 + s, x0:x0 + s].astype(np.float32)
        if block.shape[1] < s or block.shape[2] < s:
            block = np.pad(block, ((0, 0), (0, s - block.shape[1]), (0, s - block.shape[2])),
                           constant_values=AIR)
        if rng.random() < 0.5:
            block = block[:, :, ::-1]
        if rng.random() < 0.5:
            block = block[:, ::-1, :]
        if rng.random() < 0.5:  # slices in reverse order are just as valid a sample
            block = block[::-1]
        return (np.clip(block, HU_MIN, HU_MAX) - HU_MIN) / HU_SCALE

    def groups(self, rng: np.random.Generator, n: int, batch: int) -> np.ndarray:
        """``batch`` groups of ``n`` consecutive slices, each from one volume: (B, n, S, S)."""
        ids = self._eligible(n)
        out = []
        for _ in range(batch):
            vid = ids[int(rng.integers(len(ids)))]
            z0 = int(rng.integers(0, self.volumes[vid].array.shape[0] - n + 1))
            out.append(self._crop(rng, vid, z0, n))
        return np.stack(out).astype(np.float32)

    def pairs(self, rng: np.random.Generator, max_gap: int, batch: int):
        """Two slices of one volume at a random gap of 1..max_gap, same crop: (B,1,S,S) each."""
        gap = int(rng.integers(1, max_gap + 1))
        g = self.groups(rng, gap + 1, batch)
        return torch.from_numpy(g[:, :1].copy()), torch.from_numpy(g[:, -1:].copy())

    def supervised(self, rng: np.random.Generator, n: int, batch: int) -> GroupBatch:
        """Step II batch: group ends in, the ``n - 2`` inner slices at a = 1 - k/(n-1) out."""
        g = self.groups(rng, n, batch)
        t = torch.from_numpy(g)
        x1 = t[:, :1].contiguous()
        x2 = t[:, -1:].contiguous()
        targets = t[:, 1:-1].reshape(-1, 1, *t.shape[-2:])
        a = torch.tensor([1 - k / (n - 1) for _ in range(batch) for k in range(1, n - 1)],
                         dtype=torch.float32)
        return GroupBatch(x1, x2, a, targets, n)
