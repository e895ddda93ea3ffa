"""The model variants: one record per name, the one place that says what a name means.

Code asks a variant what it is (``variant(name).motion``) and never compares its name
(``Testing/Python/core/test_variants.py`` checks every module of the library and of the Slicer
module). The network (:mod:`hrinet.learned.networks`), the training sampler and recipe
(:mod:`hrinet.training`), the weights a new run starts from (:mod:`hrinet.cli.train`), the
arithmetic ``auto`` picks (:mod:`hrinet.learned.precision`) and the heading a model is listed
under (:mod:`hrinet.core.models.shipped`) are all read from these fields, so adding a variant is
adding one record to :data:`REGISTRY`. Torch-free: the command line and the Slicer panel list
the variants before PyTorch is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from hrinet.core.errors import HRINetError

#: Headings the shipped models are listed under (``hrinet models``, the Slicer panel), in
#: their order: the default model, then ours, then the paper's.
GROUP_DEFAULT, GROUP_OURS, GROUP_PAPER = "default", "ours", "paper variants (research)"
GROUPS = (GROUP_DEFAULT, GROUP_OURS, GROUP_PAPER)
#: Content losses a variant may train with (:attr:`Variant.content`).
CONTENTS = ("mse", "perceptual")


def group_gaps(group_sizes: Tuple[int, ...]) -> Tuple[int, ...]:
    """The gaps of a training recipe's groups, in thin slices (what ``--gaps`` gives): the
    thin slices between the two known slices a target lies between, ``n - 1`` for a recipe's
    group size ``n`` (a group's ends for the paper's variants; neighbouring known slices for
    the flow models, whose groups hold four or six known slices that far apart)."""
    return tuple(n - 1 for n in group_sizes)


def gap_group_sizes(gaps: Tuple[int, ...]) -> Tuple[int, ...]:
    """The training groups that span ``gaps`` thin slices (the inverse of :func:`group_gaps`)."""
    return tuple(g + 1 for g in gaps)


@dataclass(frozen=True)
class Variant:
    """What one variant is, how it trains (paper Sec. 3) and how it is offered."""

    name: str
    #: Heading its own weights file is listed under: :data:`GROUP_OURS` or :data:`GROUP_PAPER`.
    group: str
    #: The model behind the method name ``hrinet``, shipped as ``hrinet-default``; exactly one.
    default: bool = False

    # -- the network
    #: Flow-guided refinement (:mod:`hrinet.learned.motion`): motion-feature samples in
    #: training, the motion interpolator at inference, gaps in thin slices (``--gaps``).
    motion: bool = False
    #: A generator whose output is a correction to the linear blend.
    residual: bool = False
    #: Encoder widths of its generator (empty: the paper's Table 1 layout).
    channels: Tuple[int, ...] = ()

    # -- the training recipe
    #: Share of the iterations spent in stage I (autoencoder with the ACAI critic D1).
    stage1_fraction: float = 0.0
    #: Weight of the ACAI term on the generator (0: no D1 at all).
    lam: float = 0.0
    #: The PatchGAN critic D2 in stage II step I.
    patchgan: bool = False
    #: Step II (supervised, inner slices of a group as targets) in stage II.
    supervised: bool = False
    #: Step I (unsupervised, the critics) in stage II.
    unsupervised: bool = True
    #: Content loss: ``mse`` (pixels) or ``perceptual`` (features of a frozen copy of the
    #: stage-I encoder, which lives in a run's checkpoint and not in exported weights).
    content: str = "mse"
    #: Slices in a training group (known ends included), one drawn per step; for the flow
    #: models gap + 1 (:func:`group_gaps`), not the group's length.
    group_sizes: Tuple[int, ...] = (7,)
    #: Its weights are the paper's stage-I result (autoencoder and critic D1); exactly one.
    stage1_result: bool = False
    #: A stage-II variant: it may start from the stage-I result (``--init``) and then trains
    #: stage II only; its own weights, having been through stage I, continue the same way.
    stage2: bool = False

    # -- inference
    #: ``auto`` precision runs it in bf16 where the device computes bf16 natively: set once
    #: its measured cost is within :data:`hrinet.core.constants.AUTO_PRECISION_TOLERANCE_DB`
    #: on every validation cell (docs/benchmarks.md, "Precision"); unmeasured variants run fp32.
    auto_bf16: bool = False

    @property
    def frozen_encoder(self) -> bool:
        """Whether training needs the frozen stage-I encoder (the perceptual loss): such a
        variant's weights cannot be continued with ``--init``, and a new run starts from the
        stage-I result."""
        return self.content == "perceptual"

    @property
    def gaps(self) -> Tuple[int, ...]:
        """The gaps its training draws, in thin slices (:func:`group_gaps`)."""
        return group_gaps(self.group_sizes)


#: Every variant by name, in the order they were introduced: the paper's five, then ours.
REGISTRY: Dict[str, Variant] = {v.name: v for v in (
    Variant("ae", GROUP_PAPER, stage1_fraction=1.0),
    Variant("acai", GROUP_PAPER, stage1_fraction=1.0, lam=0.5, stage1_result=True),
    Variant("hrinet-patchgan", GROUP_PAPER, stage1_fraction=0.5, lam=0.5, patchgan=True,
            stage2=True),
    Variant("hrinet-mse", GROUP_PAPER, stage1_fraction=0.5, lam=0.5, patchgan=True,
            supervised=True, stage2=True),
    Variant("hrinet-perceptual", GROUP_PAPER, stage1_fraction=0.5, lam=0.5, patchgan=True,
            supervised=True, content="perceptual", stage2=True),
    # The residual generator reproduces the known slices by design, so it needs no stage I; it
    # trains on step II alone, on gaps of 2 to 6 slices.
    Variant("hrinet-plus", GROUP_OURS, residual=True, channels=(16, 24, 32, 48, 64, 64, 64),
            supervised=True, unsupervised=False, group_sizes=(3, 4, 5, 7)),
    # Flow-guided refinement on thin and slab-averaged input, gaps of 2 to 8 thin slices
    # (hrinet.training.motion_data); supervised only, like hrinet-plus.
    Variant("hrinet-flow", GROUP_OURS, default=True, motion=True, channels=(16, 32, 48, 64),
            supervised=True, unsupervised=False, group_sizes=gap_group_sizes(tuple(range(2, 9))),
            auto_bf16=True),
)}


def _the_one(flag: str) -> str:
    """The name of the single record with ``flag`` set, after checking every record's group
    and content (a registry that breaks these is refused at import)."""
    for v in REGISTRY.values():
        if v.group not in GROUPS[1:] or v.content not in CONTENTS:
            raise HRINetError(f"variant {v.name}: group {v.group!r} or content {v.content!r} "
                              "is not one of the known ones")
    found = [v.name for v in REGISTRY.values() if getattr(v, flag)]
    if len(found) != 1:
        raise HRINetError(f"the variant registry needs exactly one {flag} variant, not {found}")
    return found[0]


#: Every variant name, the paper's five first.
VARIANTS: Tuple[str, ...] = tuple(REGISTRY)
#: The paper's variants (listed under research).
PAPER_VARIANTS: Tuple[str, ...] = tuple(v.name for v in REGISTRY.values()
                                        if v.group == GROUP_PAPER)
#: The variant behind the method name ``hrinet`` (the shipped default model).
DEFAULT_VARIANT: str = _the_one("default")
#: The variant whose weights are the paper's stage-I result.
STAGE1_RESULT: str = _the_one("stage1_result")


def variant(name: str) -> Variant:
    """The record of ``name``; one line naming the choices for an unknown one."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise HRINetError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}") \
            from None


def names_where(flag: str) -> Tuple[str, ...]:
    """The names of the variants whose record has ``flag`` set (``"stage2"``: the stage-II
    variants), for messages that list them."""
    return tuple(v.name for v in REGISTRY.values() if getattr(v, flag))


def menu_order() -> Tuple[str, ...]:
    """Every variant as a menu offers it: the default, then ours, then the paper's, the newest
    first under each heading."""
    def key(name: str) -> tuple:
        v = variant(name)
        return (not v.default, GROUPS.index(v.group), -VARIANTS.index(name))
    return tuple(sorted(VARIANTS, key=key))
