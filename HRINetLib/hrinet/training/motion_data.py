"""Training samples for ``hrinet-flow``: thin CT made into thick input, with its motion features.

Each sample is a group of known slices around a gap of ``g`` thin slices (2 to 8) and one or more
thin target slices inside the gap. The known slices are either thin slices sampled ``g`` apart
(decimation, slab ratio ``s = 0``) or slab averages ``s * g`` thin slices wide (``s = 1``:
contiguous thick slices; ``s`` = 1.5 or 2: overlapping reconstructions), so one model learns both
inputs. For slab input the targets include the known position itself (fraction 0). The motion
features are computed exactly as at inference (:func:`hrinet.methods.flow.trajectory_samples`).
A share ``cross_view`` of the groups stacks along y or x instead of z
(:mod:`hrinet.training.cross_view`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from hrinet.core.slab import slab_average, slab_weights
from hrinet.learned.models import HU_MAX, HU_MIN, HU_SCALE
from hrinet.methods.flow import (
    ROUGHNESS_UNKNOWN,
    PairFlows,
    estimate_flow,
    plain_estimates,
    trajectory_samples,
    z_roughness,
)
from hrinet.training import augment, cross_view as xview
from hrinet.training.augment import SHARPEN_RANGE
from hrinet.training.config import DROP_CONTEXT, GAPS  # noqa: F401 (GAPS re-exported)
from hrinet.training.data import SliceSampler

#: Slab ratios (thickness / spacing) and how often each is drawn.
SLAB_RATIOS = (0.0, 1.0, 1.5, 2.0)
SLAB_PROBS = (0.5, 0.3, 0.1, 0.1)
#: Thickness of re-made thin slices, in thin-slice spacings (``overlap`` option): thin CT is
#: often reconstructed with overlap (2 mm slices every 1 mm), which makes neighbouring slices
#: alike and the motion between them small; a model that never saw it trusts noisy flow there.
OVERLAP_THICKNESS = (1.3, 2.0)


@dataclass
class MotionBatch:
    """Inputs and targets of one ``hrinet-flow`` training step (HU)."""

    samples: torch.Tensor  # (B, 4, S, S): w0..w3 along the trajectories
    plain: torch.Tensor  # (B, 2 or 3, S, S): motion-free linear, 4-slice cubic (, spline)
    t: torch.Tensor  # (B,) fraction from the lower known slice
    s: torch.Tensor  # (B,) slab ratio of the known slices
    rho: torch.Tensor  # (B,) z-roughness of the known slices, measured on whole slices
    targets: torch.Tensor  # (B, 1, S, S): the thin truth
    gap: torch.Tensor  # (B,) spacing of the known slices, in thin slices (2: an x2 sample)


def group_span(gap: int, slab: float, known: int = 4):
    """Thin slices a group needs (``known`` known slices ``gap`` apart plus the slab margins)
    and the slab margin ``m`` on each side."""
    m = len(slab_weights(slab * gap)) // 2 if slab > 0 else 0
    return (known - 1) * gap + 2 * m + 1, m


class MotionSampler(SliceSampler):
    """:class:`SliceSampler` that builds motion-feature samples."""

    #: Also the 6-slice spline estimate (two more known slices; models with ``spline``).
    spline = False
    #: Also the known slices' z-roughness (models with ``roughness``; else it is not measured).
    roughness = False
    #: In-plane step of the whole slices :func:`hrinet.methods.flow.z_roughness` is measured on here (it
    #: measures on every second pixel itself: at inference the two agree in expectation).
    ROUGHNESS_STEP = 2
    #: Chance that each near context slice is missing (and, independently again, each far one):
    #: a short volume is mostly ends (20 slices decimated x6: 3 pairs, 2 of them at an end).
    drop_context = DROP_CONTEXT
    #: Chance that a group is re-made as another scanner would have acquired it (pixel size,
    #: kernel, dose, field-of-view circle: :mod:`hrinet.training.augment`); 0 leaves the draws as before.
    augment = 0.0
    #: Strongest sharp kernel an augmented group may get (:func:`hrinet.training.augment.draw`).
    sharpen_max = SHARPEN_RANGE[1]
    #: Chance that a group stacks along an in-plane axis, its slices z-by-in-plane planes with
    #: square pixels (:mod:`hrinet.training.cross_view`); 0 leaves the draws as before.
    cross_view = 0.0

    def motion_batch(self, rng: np.random.Generator, groups: int, per_group: int = 2,
                     gaps: Sequence[int] = GAPS, overlap: float = 0.0) -> MotionBatch:
        """``groups`` groups with ``per_group`` targets each; a share ``overlap`` of the groups
        first re-made as overlapping thin slices (:data:`OVERLAP_THICKNESS`)."""
        samples, plain, ts, ss, rhos, targets, spans = [], [], [], [], [], [], []
        known_n = 6 if self.spline else 4
        lead = 2 if self.spline else 1  # known slices before the target's pair
        for _ in range(groups):
            g = int(gaps[int(rng.integers(len(gaps)))])
            s = float(rng.choice(SLAB_RATIOS, p=SLAB_PROBS))
            need, m = group_span(g, s, known_n)
            while not any(v.array.shape[0] >= need for v in self.volumes):
                if g > min(gaps):  # short volumes: narrower gaps, then thin input
                    g -= 1
                elif s > 0:
                    s = 0.0
                else:
                    break
                need, m = group_span(g, s, known_n)
            axis = 0  # the stacking axis: z, or y / x for a cross-view group
            if self.cross_view > 0 and rng.random() < self.cross_view:
                axis = xview.AXES[int(rng.integers(len(xview.AXES)))]
            ids = xview.eligible(self.volumes, axis, need, self.crop) if axis else None
            if not ids:  # (no volume holds a cross-view crop: a z group)
                axis, ids = 0, self._eligible(need)
            vid = ids[int(rng.integers(len(ids)))]
            if not axis:
                z0 = int(rng.integers(0, self.volumes[vid].array.shape[0] - need + 1))
            acq = augment.draw(rng, self.sharpen_max) \
                if self.augment > 0 and rng.random() < self.augment else None
            size = self.crop if acq is None else max(32, int(round(self.crop * acq.zoom)))
            if axis:
                block, where = xview.draw(rng, self.volumes[vid], axis, need, size)
                block = block * HU_SCALE + HU_MIN
            else:
                block = self._crop(rng, vid, z0, need, size) * HU_SCALE + HU_MIN  # back to HU
            if acq is not None:
                # (the field-of-view circle is axial: a cross-view plane is left without it)
                block = np.clip(augment.reacquire(augment.resize_block(block, self.crop), acq,
                                                  rng, circle=not axis), HU_MIN, HU_MAX)
            # the roughness is measured on whole slices, as at inference (a crop is too noisy)
            r = self.ROUGHNESS_STEP
            whole = None if not self.roughness else \
                xview.whole_planes(self.volumes[vid], where, need, r) if axis else \
                self.volumes[vid].array[z0:z0 + need, ::r, ::r].astype(np.float32)
            if whole is not None and acq is not None:
                whole = augment.reacquire(np.clip(whole, HU_MIN, HU_MAX), acq, rng, circle=False)
            if overlap > 0 and rng.random() < overlap:
                thick = rng.uniform(*OVERLAP_THICKNESS)
                block = slab_average(block, range(len(block)), thick)
                if whole is not None:
                    whole = slab_average(whole, range(len(whole)), thick)
            centres = [m + i * g for i in range(known_n)]
            known = list(slab_average(block, centres, s * g) if s > 0 else block[centres])
            if not self.spline:
                known = [None] + known + [None]
            # as at a volume's ends: the context slices missing, the far ones first
            p = self.drop_context
            drop = [False] * 6
            drop[1] = rng.random() < p
            drop[4] = rng.random() < p
            drop[0] = drop[1] or rng.random() < p
            drop[5] = drop[4] or rng.random() < p
            km1, k0, k1, k2, k3, k4 = (None if d else k for d, k in zip(drop, known))
            rho = ROUGHNESS_UNKNOWN
            if whole is not None:  # roughness models (which have the spline: six slices)
                known_whole = slab_average(whole, centres, s * g) if s > 0 else whole[centres]
                # (a crop may run in reverse z order, the whole slices do not: the same number
                # of slices dropped at the other end, which measures the same in expectation)
                rho = z_roughness([None if d else k for d, k in zip(drop, known_whole)], step=1)
            far = (km1, k4) if self.spline else None
            flows = PairFlows(estimate_flow(k1, k2), estimate_flow(k2, k1),
                              None if k0 is None else estimate_flow(k1, k0),
                              None if k3 is None else estimate_flow(k2, k3))
            first = 0 if s > 0 else 1
            choices = np.arange(first, g)
            for j in rng.choice(choices, size=min(per_group, len(choices)), replace=False):
                t = float(j) / g
                samples.append(trajectory_samples(k0, k1, k2, k3, flows, t))
                plain.append(plain_estimates(k0, k1, k2, k3, t, far))
                ts.append(t)
                ss.append(s)
                rhos.append(rho)
                targets.append(block[m + lead * g + int(j)][None])
                spans.append(g)
        f = lambda a: torch.from_numpy(np.ascontiguousarray(np.stack(a), dtype=np.float32))  # noqa: E731
        return MotionBatch(f(samples), f(plain), torch.tensor(ts, dtype=torch.float32),
                           torch.tensor(ss, dtype=torch.float32),
                           torch.tensor(rhos, dtype=torch.float32), f(targets),
                           torch.tensor(spans, dtype=torch.float32))
