"""What a training run is: the variants' recipes and the run's configuration (saved with it)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from hrinet.core.errors import HRINetError
from hrinet.training.motion_data import DROP_CONTEXT, GAPS

#: Settings that must lie in a range: ``name: (low, high, low_open, high_open, what)``.
SETTING_RANGES = {
    "iterations": (1, None, False, False, "training steps"),
    "batch": (1, None, False, False, "samples a step"),
    "lr": (0.0, None, True, False, "the learning rate"),
    "ema": (0.0, 1.0, False, True, "a decay (0 off, e.g. 0.999)"),
    "lr_final": (0.0, 1.0, False, False, "a fraction of --lr"),
    "decay_start": (0.0, 1.0, False, False, "a fraction of the iterations"),
    "window_weight": (0.0, None, False, False, "a loss weight"),
    "ssim_weight": (0.0, None, False, False, "a loss weight"),
    "samples_per_group": (1, None, False, False, "targets a group"),
    "overlap": (0.0, 1.0, False, False, "a share of the groups"),
    "drop_context": (0.0, 1.0, False, False, "a chance"),
    "augment": (0.0, 1.0, False, False, "a chance"),
    "workers": (0, None, False, False, "processes"),
    "val_every": (0, None, False, False, "steps (0: no validation)"),
    "checkpoint_minutes": (0.0, None, False, False, "minutes (0: every step)"),
    "seed": (0, 2 ** 32 - 1, False, False, "a random seed"),
}


@dataclass(frozen=True)
class VariantSpec:
    """Which parts of the method a variant trains with."""

    stage1_fraction: float  # share of the iterations spent in stage I
    lam: float  # weight of the ACAI term on the generator (0: no D1 at all)
    patchgan: bool  # D2 in stage II step I
    supervised: bool  # step II in stage II
    content: str  # "mse" or "perceptual"
    group_sizes: Tuple[int, ...] = (7,)
    unsupervised: bool = True  # step I in stage II


VARIANT_SPECS: Dict[str, VariantSpec] = {
    "ae": VariantSpec(1.0, 0.0, False, False, "mse"),
    "acai": VariantSpec(1.0, 0.5, False, False, "mse"),
    "hrinet-patchgan": VariantSpec(0.5, 0.5, True, False, "mse"),
    "hrinet-mse": VariantSpec(0.5, 0.5, True, True, "mse"),
    "hrinet-perceptual": VariantSpec(0.5, 0.5, True, True, "perceptual"),
    # Ours: the residual generator needs no stage I (it reproduces known slices by design) and is
    # trained on step II alone, on gaps of 2 to 6 slices so x2 to x6 are all seen.
    "hrinet-plus": VariantSpec(0.0, 0.0, False, True, "mse", (3, 4, 5, 7), unsupervised=False),
    # Ours, the default: flow-guided refinement (hrinet.learned.motion) on thin and slab-averaged input,
    # gaps of 2 to 8 slices (hrinet.training.motion_data); supervised only, like hrinet-plus.
    "hrinet-flow": VariantSpec(0.0, 0.0, False, True, "mse", tuple(g + 1 for g in GAPS),
                               unsupervised=False),
}


#: The variant whose weights are the paper's stage-I result (autoencoder + critic D1), and the
#: stage-II variants that may start from it (``--init``), skipping their own stage I.
STAGE1_RESULT = "acai"
STAGE2_VARIANTS = ("hrinet-patchgan", "hrinet-mse", "hrinet-perceptual")

#: Added to each sample's MSE before the log (normalised units; about 0.4 HU RMS): a sample
#: that is already almost exact (air against air) does not dominate the log-MSE loss.
LOG_MSE_FLOOR = 1e-8


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in checkpoints and weights metadata)."""

    variant: str = "hrinet-mse"
    data: List[str] = field(default_factory=list)
    val: List[str] = field(default_factory=list)
    iterations: int = 1000
    crop: int = 128
    batch: int = 8
    lr: float = 1e-4
    adam_betas: Tuple[float, float] = (0.5, 0.999)
    lam: Optional[float] = None  # None: the variant's (paper 0.5)
    gamma: float = 0.2
    beta: Optional[float] = None  # None: 5e-4 for design size < 512, else 5e-3 (paper)
    group_sizes: Optional[Tuple[int, ...]] = None  # None: the variant's
    supervised_ratio: int = 1  # step II per step I in stage II
    design_size: int = 256
    channels: Optional[Tuple[int, ...]] = None
    seed: int = 0
    val_every: int = 500
    val_factors: Tuple[int, ...] = (4,)
    val_slices: int = 25
    val_crop: int = 256
    checkpoint_minutes: float = 5.0
    device: str = "auto"
    #: Start the generator from these weights (fine-tuning); their variant must match.
    init_weights: Optional[str] = None
    #: Exponential moving average of the generator's weights (0: off). Validation and the
    #: exported weights use the average, which smooths out the last steps' noise.
    ema: float = 0.0
    #: Learning-rate schedule: constant until ``decay_start`` of the iterations, then cosine
    #: down to ``lr * lr_final`` at the end (1.0: constant, the paper's setting).
    lr_final: float = 1.0
    decay_start: float = 0.6
    #: Weight of an extra MSE in the soft-tissue window [-160, 240] HU (in units of that
    #: window's range). The HU-range MSE barely sees soft-tissue errors of tens of HU, which
    #: the radiologist's window (and SSIM_win) shows plainly. 0: off (the paper's losses).
    window_weight: float = 0.0
    #: Weight of ``1 - SSIM`` in the soft-tissue window (Gaussian 11x11, sigma 1.5, as the
    #: metric). MSE alone favours a smooth conditional mean that drops soft-tissue texture.
    #: With ``log_mse``, the weight of each sample's :func:`hrinet.training.losses.log_dissimilarity` (the
    #: same relative scale as the log-MSE, so it does not vanish beside it).
    ssim_weight: float = 0.0
    #: hrinet-flow: minimise the mean of each sample's log pixel MSE (the mean PSNR over
    #: samples) instead of the mean MSE, which lets the large errors of wide gaps drown the
    #: small ones of narrow gaps (x2) that users also ask for.
    log_mse: bool = False
    #: Set when ``init_weights`` are a stage-I result (:data:`STAGE1_RESULT`) and the variant a
    #: stage-II one: stage I is done, training is stage II only.
    from_stage1: bool = False
    #: hrinet-flow: target slices drawn from each group (the group's flows are estimated once,
    #: so more targets per group cost little more CPU).
    samples_per_group: int = 2
    #: hrinet-flow: share of groups whose thin slices are first re-made as an overlapping
    #: reconstruction (:data:`hrinet.training.motion_data.OVERLAP_THICKNESS`).
    overlap: float = 0.0
    #: hrinet-flow: chance that each context slice of a training group is missing, as at a
    #: volume's ends (:attr:`hrinet.training.motion_data.MotionSampler.drop_context`).
    drop_context: float = DROP_CONTEXT
    #: hrinet-flow: chance that a training group is re-made as another scanner would have
    #: acquired it (pixel size, kernel, dose, field-of-view circle; :mod:`hrinet.training.augment`).
    augment: float = 0.0
    #: hrinet-flow: processes making batches ahead (0: in the training process). The samples
    #: are the same either way (:mod:`hrinet.training.prefetch`); only the speed changes.
    workers: int = 0

    @property
    def spec(self) -> VariantSpec:
        return VARIANT_SPECS[self.variant]

    def check(self) -> None:
        """Refuse, in one line naming the setting, a value outside its range
        (:data:`SETTING_RANGES`): a negative learning rate or an averaging decay of 1 or more
        would train nothing, or diverge, for hours before anyone noticed."""
        for name, (low, high, low_open, high_open, what) in SETTING_RANGES.items():
            v = getattr(self, name)
            bad = not math.isfinite(v) or (v <= low if low_open else v < low) or \
                (high is not None and (v >= high if high_open else v > high))
            if bad:
                span = ("(" if low_open else "[") + f"{low}, " + \
                    ("inf)" if high is None else f"{high}" + (")" if high_open else "]"))
                option = "--" + name.replace("_", "-")
                raise HRINetError(f"{option} {v} is out of range: it is {what}, in {span}")
        bad_factors = [k for k in self.val_factors if k < 2 or k > 64]
        if bad_factors:
            raise HRINetError(f"--val-factors {','.join(map(str, self.val_factors))} is out of "
                              f"range: {bad_factors[0]} is no factor from 2 to 64; give e.g. 2,4")

    def resolved(self) -> dict:
        s = self.spec
        return dict(lam=s.lam if self.lam is None else self.lam,
                    beta=self.beta if self.beta is not None else
                    (5e-3 if self.design_size >= 512 else 5e-4),
                    group_sizes=tuple(self.group_sizes or s.group_sizes),
                    stage1_iterations=0 if self.from_stage1 else
                    int(round(self.iterations * s.stage1_fraction)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(self.resolved())
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in names}
        for k in ("adam_betas", "group_sizes", "channels", "val_factors"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)
