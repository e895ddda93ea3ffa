"""What a training run is: its configuration (saved with it), each setting's option declared
once on its field. What each variant trains with is its record's (:mod:`hrinet.core.variants`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional, Tuple

from hrinet.core.errors import HRINetError
from hrinet.core.variants import DEFAULT_VARIANT, VARIANTS, Variant, group_gaps, variant
from hrinet.training.augment import SHARPEN_RANGE

#: Gaps (in thin slices) between the known slices of the default model's training groups: its
#: record's group sizes less one (:meth:`hrinet.training.motion_data.MotionSampler.motion_batch`).
GAPS = variant(DEFAULT_VARIANT).gaps
#: Chance that a context slice is missing (as at either end of a volume); the default of the
#: ``drop_context`` option.
DROP_CONTEXT = 0.1

#: Added to each sample's MSE before the log (normalised units; about 0.4 HU RMS): a sample
#: that is already almost exact (air against air) does not dominate the log-MSE loss.
LOG_MSE_FLOOR = 1e-8
#: The arithmetic ``hrinet train --precision`` offers (fp16 is left out: its loss scaling is not
#: implemented, and the CPU, where training runs here, has bf16).
TRAIN_PRECISIONS = ("fp32", "bf16")


def option(help: str, low=None, high=None, low_open: bool = False, high_open: bool = False,
           what: str = "", cli: str = "", parse=None, choices=None, nargs=None) -> dict:
    """A training setting's command-line option, declared once on its :class:`TrainConfig`
    field: its help, the range it must lie in (``low``/``high``, open or closed, ``what`` it
    is), another option name (``cli``), a parser for its text, its choices or ``nargs``. The
    parser (:mod:`hrinet.training.options`), the range check, the resume overrides and the
    Slicer job's arguments are all made from these. A help that begins ``hrinet-flow:`` marks a
    setting only the flow models train with (``flow_only``): other variants refuse it."""
    return {"help": help, "flow_only": help.startswith("hrinet-flow:"), "range": None if low is None else (low, high, low_open, high_open,
                                                             what),
            "cli": cli, "parse": parse, "choices": choices, "nargs": nargs}


def _ints(text: str) -> Tuple[int, ...]:
    return tuple(int(x) for x in str(text).split(","))


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in checkpoints and weights metadata).

    Fields with ``option`` metadata are ``hrinet train`` options of the same name (dashes for
    underscores); the others are set by recipes and tests."""

    variant: str = field(default=DEFAULT_VARIANT, metadata=option(
        "model variant (docs/training.md 'The model family'); hrinet-flow is the shipped default model",
        choices=VARIANTS))
    data: List[str] = field(default_factory=list, metadata=option(
        "training volumes (any readable format or DICOM folders); no default: required, except "
        "with --resume (the checkpoint's unless given)", nargs="+"))
    val: List[str] = field(default_factory=list, metadata=option(
        "held-out validation volumes (default: none, no validation)", nargs="*"))
    iterations: int = field(default=1000, metadata=option(
        "total iterations (with --resume: the checkpoint's, or this many in all)",
        low=1, what="training steps"))
    crop: int = field(default=128, metadata=option("training crop size (multiple of 64)"))
    batch: int = field(default=8, metadata=option("groups per step", low=1, what="samples a step"))
    lr: float = field(default=1e-4, metadata=option(
        "learning rate", low=0.0, low_open=True, what="the learning rate"))
    adam_betas: Tuple[float, float] = (0.5, 0.999)
    lam: Optional[float] = None  # None: the variant's (paper 0.5)
    gamma: float = 0.2
    beta: Optional[float] = None  # None: 5e-4 for design size < 512, else 5e-3 (paper)
    group_sizes: Optional[Tuple[int, ...]] = None  # None: the variant's (--gaps sets it)
    supervised_ratio: int = 1  # step II per step I in stage II
    design_size: int = field(default=256, metadata=option(
        "Table 1 layout the mixed maps follow", choices=(256, 512)))
    channels: Optional[Tuple[int, ...]] = None
    seed: int = field(default=0, metadata=option(
        "random seed", low=0, high=2 ** 32 - 1, what="a random seed"))
    val_every: int = field(default=500, metadata=option(
        "validate every N steps", low=0, what="steps (0: no validation)"))
    val_factors: Tuple[int, ...] = field(default=(4,), metadata=option(
        "factors scored at each validation, e.g. 2,4,6", parse=_ints))
    val_slices: int = 25
    val_crop: int = 256
    checkpoint_minutes: float = field(default=5.0, metadata=option(
        "minutes between checkpoints", low=0.0, what="minutes (0: every step)"))
    device: str = field(default="auto", metadata=option("auto, cpu, cuda or cuda:N"))
    #: Start the generator from these weights (fine-tuning); their variant must match.
    init_weights: Optional[str] = field(default=None, metadata=option(
        "start from these .safetensors weights (fine-tuning; acai weights, the paper's stage-I "
        "result, also start hrinet-patchgan, hrinet-mse and hrinet-perceptual, which then train "
        "stage II only; default: the shipped weights of the variant, see --from-scratch)",
        cli="--init"))
    #: Start from random weights; otherwise ``hrinet train`` starts a new run from the shipped
    #: weights of its variant (:func:`hrinet.cli.train.starting_weights`) unless --init is given.
    from_scratch: bool = field(default=False, metadata=option(
        "start from random weights (default: from the shipped weights of the variant, or --init; "
        "also when --design-size asks for another network)"))
    #: Exponential moving average of the generator's weights (0: off). Validation and the
    #: exported weights use the average, which smooths out the last steps' noise.
    ema: float = field(default=0.0, metadata=option(
        "weight averaging decay, e.g. 0.999 (0: off)", low=0.0, high=1.0, high_open=True,
        what="a decay (0 off, e.g. 0.999)"))
    #: Learning-rate schedule: constant until ``decay_start`` of the iterations, then cosine
    #: down to ``lr * lr_final`` at the end (1.0: constant, the paper's setting).
    lr_final: float = field(default=1.0, metadata=option(
        "cosine-decay the learning rate to this fraction of --lr after --decay-start of the "
        "iterations (1: constant)", low=0.0, high=1.0, what="a fraction of --lr"))
    decay_start: float = field(default=0.6, metadata=option(
        "fraction of the iterations where the decay starts", low=0.0, high=1.0,
        what="a fraction of the iterations"))
    #: Weight of an extra MSE in the soft-tissue window [-160, 240] HU (in units of that
    #: window's range). The HU-range MSE barely sees soft-tissue errors of tens of HU, which
    #: the radiologist's window (and SSIM_win) shows plainly. 0: off (the paper's losses).
    window_weight: float = field(default=0.0, metadata=option(
        "weight of the soft-tissue-window MSE added to the content loss (0: the paper's "
        "losses)", low=0.0, what="a loss weight"))
    #: Weight of ``1 - SSIM`` in the soft-tissue window (Gaussian 11x11, sigma 1.5, as the
    #: metric). MSE alone favours a smooth conditional mean that drops soft-tissue texture.
    #: With ``log_mse``, the weight of each sample's :func:`hrinet.training.losses.log_dissimilarity`
    #: (the same relative scale as the log-MSE, so it does not vanish beside it).
    ssim_weight: float = field(default=0.0, metadata=option(
        "weight of 1 - SSIM in the soft-tissue window added to the content loss; with "
        "--log-mse, the weight of log(1 - SSIM) beside the log-MSE", low=0.0,
        what="a loss weight"))
    #: hrinet-flow with ``log_mse``: more weight of ``log(1 - SSIM)`` on the samples whose known
    #: slices are two thin slices apart (x2; in a cross-view group two pixels), added to
    #: ``ssim_weight`` there. At x2 a sharp kernel's texture still carries between slices (the
    #: stress table's lost cells); a heavier SSIM term at every gap, with sharper kernels, cost
    #: the thick series' x4 PSNR_HU (docs/results.md, the clean lineage's second cycle).
    ssim_x2_weight: float = field(default=0.0, metadata=option(
        "hrinet-flow: weight of log(1 - SSIM) added to --ssim-weight on the x2 samples (known "
        "slices two thin slices apart) only; needs --log-mse", low=0.0, what="a loss weight"))
    #: hrinet-flow: weight of the gradient difference between the synthesised slice and the
    #: truth (:func:`hrinet.training.losses.gradient_difference`; with ``log_mse`` its log), a
    #: sharpness term against the blur a pixel MSE allows at wide gaps.
    grad_weight: float = field(default=0.0, metadata=option(
        "hrinet-flow: weight of the in-plane gradient difference to the truth (sharp edges at "
        "wide gaps); with --log-mse, of its log", low=0.0, what="a loss weight"))
    #: hrinet-flow: weight of each sample's squared log ratio of in-plane gradient energy to
    #: the truth's (:func:`hrinet.training.losses.log_energy_gap`), the blur ``grad_ratio``
    #: reports at wide gaps, which the gradient difference barely sees.
    energy_weight: float = field(default=0.0, metadata=option(
        "hrinet-flow: weight of the squared log ratio of in-plane gradient energy to the "
        "truth's (sharp slices at wide gaps)", low=0.0, what="a loss weight"))
    #: hrinet-flow: weight of the paper's PatchGAN term on the synthesised slices (D2 learns to
    #: tell them from acquired ones; the generator adds ``log(1 - D2(x))``), given as the ratio
    #: of its gradient to the content loss's at the network's output
    #: (:func:`hrinet.training.losses.balanced_weight`), so one weight means the same under
    #: MSE and log-MSE, whose gradients differ by orders of magnitude.
    adversarial_weight: float = field(default=0.0, metadata=option(
        "hrinet-flow: weight of the paper's PatchGAN term (a critic tells synthesised from "
        "acquired slices), as a fraction of the content loss's gradient at the output, e.g. 0.1",
        low=0.0, what="a fraction of the content gradient"))
    #: hrinet-flow: D2 sees the two nearest known slices (sampled along the flow at the
    #: target's place) beside the slice it judges, pix2pix's conditional form. Alone, a blurred
    #: synthesised slice looks like an acquired slice of a smooth kernel (which augmentation
    #: also draws); beside its own series' slices the blur is what tells it apart.
    adversarial_context: bool = field(default=False, metadata=option(
        "hrinet-flow: the PatchGAN critic judges each slice beside the two nearest known "
        "slices (conditional, so blur is judged against the series' own sharpness)"))
    #: hrinet-flow: minimise the mean of each sample's log pixel MSE (the mean PSNR over
    #: samples) instead of the mean MSE, which lets the large errors of wide gaps drown the
    #: small ones of narrow gaps (x2) that users also ask for.
    log_mse: bool = field(default=False, metadata=option(
        "hrinet-flow: minimise the mean log-MSE over samples (mean PSNR) instead of the mean "
        "MSE"))
    #: Set when ``init_weights`` went through stage I already (the stage-I result, or a stage-II
    #: variant's own weights; :attr:`hrinet.core.variants.Variant.stage2`): training is stage II
    #: only.
    from_stage1: bool = False
    #: hrinet-flow: target slices drawn from each group (the group's flows are estimated once,
    #: so more targets per group cost little more CPU).
    samples_per_group: int = field(default=2, metadata=option(
        "hrinet-flow: target slices drawn from each group of known slices", low=1,
        what="targets a group"))
    #: hrinet-flow: share of groups whose thin slices are first re-made as an overlapping
    #: reconstruction (:data:`hrinet.training.motion_data.OVERLAP_THICKNESS`).
    overlap: float = field(default=0.0, metadata=option(
        "hrinet-flow: share of training groups first re-made as overlapping thin slices "
        "(1.3-2 spacings thick)", low=0.0, high=1.0, what="a share of the groups"))
    #: hrinet-flow: chance that each context slice of a training group is missing, as at a
    #: volume's ends (:attr:`hrinet.training.motion_data.MotionSampler.drop_context`).
    drop_context: float = field(default=DROP_CONTEXT, metadata=option(
        "hrinet-flow: chance that each context slice of a training group is missing, as at a "
        "volume's ends", low=0.0, high=1.0, what="a chance"))
    #: hrinet-flow: chance that a training group is re-made as another scanner would have
    #: acquired it (pixel size, kernel, dose, field-of-view circle; :mod:`hrinet.training.augment`).
    augment: float = field(default=0.0, metadata=option(
        "hrinet-flow: chance that a training group is re-made as another scanner would have "
        "acquired it: pixel size, kernel, dose, field-of-view circle", low=0.0, high=1.0,
        what="a chance"))
    #: hrinet-flow: the strongest sharp kernel ``augment`` draws (unsharp-mask amount, 1-pixel
    #: blur; :data:`hrinet.training.augment.SHARPEN_RANGE` gives the weakest and the default).
    #: Bone kernels sharpen more than the default's draws: x2 on a 1 mm chest sharpened by 2
    #: is where the default loses SSIM_win to cubic (docs/results.md, stress table).
    sharpen_max: float = field(default=SHARPEN_RANGE[1], metadata=option(
        f"hrinet-flow: strongest sharp kernel --augment draws, as an unsharp-mask amount "
        f"(drawn uniformly from {SHARPEN_RANGE[0]} up to it; default {SHARPEN_RANGE[1]})",
        low=SHARPEN_RANGE[0], high=5.0, what="an unsharp-mask amount"))
    #: hrinet-flow: chance that a training group stacks along y or x instead of z, its slices
    #: z-by-in-plane planes resampled to square pixels (:mod:`hrinet.training.cross_view`).
    cross_view: float = field(default=0.0, metadata=option(
        "hrinet-flow: chance that a training group stacks along y or x instead of z (planes of "
        "z and the other in-plane axis, z resampled to the pixel size): thick series teach "
        "in-plane detail", low=0.0, high=1.0, what="a chance"))
    #: hrinet-flow: processes making batches ahead (0: in the training process). The samples
    #: are the same either way (:mod:`hrinet.training.prefetch`); only the speed changes.
    workers: int = field(default=0, metadata=option(
        "hrinet-flow: processes that make training batches ahead (0: in the training process; "
        "on a GPU machine, about the number of CPU cores); the samples are the same either way",
        low=0, what="processes"))

    #: hrinet-flow: arithmetic of the network's forward and backward passes. ``bf16`` runs the
    #: convolutions under bfloat16 autocast (with the channels-last layout the CPU already uses:
    #: a training step about 2x faster on CPUs with AVX-512 BF16); the inputs, the residual
    #: add, the loss, the optimiser and validation stay in fp32, as at inference under ``auto``.
    precision: str = field(default="fp32", metadata=option(
        "hrinet-flow: fp32, or bf16 autocast for the network's convolutions (about 2x faster "
        "on CPUs with AVX-512 BF16; loss, residual add and validation stay fp32)",
        choices=TRAIN_PRECISIONS))

    @property
    def spec(self) -> Variant:
        """The record of :attr:`variant`: what it is and how it trains."""
        return variant(self.variant)

    def check(self) -> None:
        """Refuse, in one line naming the setting, an unknown variant, a crop the encoder cannot
        take, or a value outside its range (:func:`setting_ranges`): a negative learning rate or
        an averaging decay of 1 or more would train nothing, or diverge, for hours before anyone
        noticed."""
        variant(self.variant)  # an unknown one: the line that names the choices
        if self.crop % 64 or self.crop < 64:
            raise HRINetError(f"crop {self.crop} must be a multiple of 64 (the encoder's stride), "
                              "e.g. 128 or 256")
        for name, (low, high, low_open, high_open, what) in setting_ranges().items():
            v = getattr(self, name)
            bad = not math.isfinite(v) or (v <= low if low_open else v < low) or \
                (high is not None and (v >= high if high_open else v > high))
            if bad:
                span = ("(" if low_open else "[") + f"{low}, " + \
                    ("inf)" if high is None else f"{high}" + (")" if high_open else "]"))
                option = "--" + name.replace("_", "-")
                raise HRINetError(f"{option} {v} is out of range: it is {what}, in {span}")
        if self.precision != "fp32" and not variant(self.variant).motion:
            raise HRINetError(f"--precision {self.precision} trains the flow models only; "
                              f"{self.variant} trains in fp32 (leave --precision out)")
        if not variant(self.variant).motion:
            for f in fields(self):
                if f.metadata.get("flow_only") and getattr(self, f.name) != f.default:
                    option = f.metadata.get("cli") or "--" + f.name.replace("_", "-")
                    raise HRINetError(f"{option} trains the flow models only; {self.variant} "
                                      f"has no use for it (leave {option} out)")
        if self.adversarial_context and not self.adversarial_weight > 0:
            raise HRINetError("--adversarial-context shapes the PatchGAN term, which is off; give "
                              "--adversarial-weight too, e.g. 0.1")
        if self.ssim_x2_weight > 0 and not self.log_mse:
            raise HRINetError("--ssim-x2-weight adds to the log-scale SSIM term, which --log-mse "
                              "turns on; give --log-mse too")
        gaps = sorted(set(self.resolved().gaps))
        if min(gaps) < 2:
            raise HRINetError(f"gaps {','.join(map(str, gaps))} include {min(gaps)}: a gap "
                              f"needs at least one slice to synthesise between its known "
                              f"ones; give --gaps of 2 or more")
        if self.ssim_x2_weight > 0 and 2 not in gaps:
            raise HRINetError(f"--ssim-x2-weight weighs the x2 samples, which --gaps "
                              f"{','.join(map(str, gaps))} never draws; add 2 to --gaps")
        if self.sharpen_max != SHARPEN_RANGE[1] and not self.augment > 0:
            raise HRINetError("--sharpen-max sets the kernels --augment draws, which is off; give "
                              "--augment too, e.g. 0.25")
        bad_factors = [k for k in self.val_factors if k < 2 or k > 64]
        if bad_factors:
            raise HRINetError(f"--val-factors {','.join(map(str, self.val_factors))} is out of "
                              f"range: {bad_factors[0]} is no factor from 2 to 64; give e.g. 2,4")

    def resolved(self) -> "ResolvedSettings":
        """The settings left to the variant (``None``) filled in, and the length of stage I."""
        s = self.spec
        return ResolvedSettings(
            lam=s.lam if self.lam is None else self.lam,
            beta=self.beta if self.beta is not None else
            (5e-3 if self.design_size >= 512 else 5e-4),
            group_sizes=tuple(self.group_sizes or s.group_sizes),
            stage1_iterations=0 if self.from_stage1 else
            int(round(self.iterations * s.stage1_fraction)))

    def to_dict(self) -> dict:
        """The configuration with its resolved settings (what checkpoints, ``config.json`` and
        sidecars record)."""
        d = asdict(self)
        d.update(asdict(self.resolved()))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The configuration a checkpoint or sidecar recorded (keys of other versions ignored)."""
        names = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in names}
        for k in ("adam_betas", "group_sizes", "channels", "val_factors"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass(frozen=True)
class ResolvedSettings:
    """What a run derives from its configuration and its variant's recipe
    (:meth:`TrainConfig.resolved`): always those of the current configuration, since a stage-I
    start or a changed iteration count moves them."""

    lam: float  # weight of the ACAI term on the generator
    beta: float  # weight of the PatchGAN term (paper: 5e-4 below design size 512, else 5e-3)
    group_sizes: Tuple[int, ...]  # gap + 1 (group_gaps), one drawn per step (per group: flow)
    stage1_iterations: int  # steps of stage I (0 when starting from the stage-I result)

    @property
    def gaps(self) -> Tuple[int, ...]:
        """The gaps this run draws, in thin slices (:func:`group_gaps`)."""
        return group_gaps(self.group_sizes)


def setting_ranges() -> dict:
    """``name: (low, high, low_open, high_open, what)`` of every range-checked setting, from the
    fields' option metadata (in field order)."""
    return {f.name: f.metadata["range"] for f in fields(TrainConfig)
            if f.metadata.get("range") is not None}
