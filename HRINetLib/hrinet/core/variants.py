"""The model variants: one record per name, the one place that says what a name means.

Code asks a variant what it is (``variant("hrinet-flow").motion``), never compares its name.
The networks, samplers and training recipes each variant uses are chosen from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from hrinet.core.constants import DEFAULT_VARIANT, PAPER_VARIANTS, VARIANTS
from hrinet.core.errors import HRINetError


@dataclass(frozen=True)
class Variant:
    """What one variant is."""

    name: str
    #: Heading it is listed under: "default", "ours" or "paper variants (research)".
    group: str
    #: Flow-guided refinement (:mod:`hrinet.learned.motion`): motion-feature samples in
    #: training, the motion interpolator at inference, gaps in thin slices (``--gaps``).
    motion: bool = False
    #: A generator whose output is a correction to the linear blend (``hrinet-plus``).
    residual: bool = False
    #: Layer widths of its generator (None: the paper's Table 1 layout).
    channels: tuple = ()


_OURS = {
    "hrinet-plus": Variant("hrinet-plus", "ours", residual=True,
                           channels=(16, 24, 32, 48, 64, 64, 64)),
    "hrinet-flow": Variant("hrinet-flow", "default", motion=True, channels=(16, 32, 48, 64)),
}
REGISTRY: Dict[str, Variant] = {
    **{name: Variant(name, "paper variants (research)") for name in PAPER_VARIANTS},
    **_OURS,
}
assert tuple(REGISTRY) == VARIANTS and REGISTRY[DEFAULT_VARIANT].group == "default"


def variant(name: str) -> Variant:
    """The record of ``name``; one line naming the choices for an unknown one."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise HRINetError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}") \
            from None
