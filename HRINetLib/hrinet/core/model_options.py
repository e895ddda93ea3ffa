"""The options that choose a method and run its model, declared once.

``interpolate``, ``batch``, ``evaluate`` and ``adapt`` build their parsers from these fields
(:func:`add_model_arguments`), and programs that start those commands (the Slicer panel) build
the command line from the same fields (:meth:`ModelOptions.argv`): an option is one field here,
its name, type, choices, default and help in one place. No torch: the panel imports it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import List, Optional, Sequence

from hrinet.core.constants import (AUTO_PRECISION_TOLERANCE_DB, CLASSICAL_METHODS, PRECISIONS,
                                   QUALITIES)
from hrinet.core.variants import VARIANTS


def whole_factor(text: str) -> int:
    """An upsampling factor as given on a command line: a whole number (``4`` or ``4.0``)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give an integer >= 2")
    return int(value)


def _option(flag: str, help: str, **argparse_kwargs) -> dict:
    return {"flag": flag, "help": help, "argparse": argparse_kwargs}


#: Options only learned methods use: left out of a classical method's command line (the
#: commands would warn that they are unused).
LEARNED_ONLY = ("weights", "device", "precision", "quality")


@dataclass(frozen=True)
class ModelOptions:
    """What to run and how: every field is a command-line option of the commands that run a
    model; ``None`` means the command's default."""

    factor: Optional[int] = field(default=None, metadata=_option(
        "--factor", "integer upsampling factor >= 2 (default: from --spacing, else isotropic)",
        type=whole_factor))
    spacing: Optional[float] = field(default=None, metadata=_option(
        "--spacing", "target slice spacing in mm (default: isotropic, the in-plane spacing)",
        type=float, metavar="MM"))
    method: Optional[str] = field(default=None, metadata=_option(
        "--method", f"one of {', '.join(sorted(CLASSICAL_METHODS + ('hrinet',) + VARIANTS))} "
        "(default: hrinet, the shipped default model, or cubic without PyTorch; hrinet models "
        "lists the models)"))
    weights: Optional[str] = field(default=None, metadata=_option(
        "--weights", "a .safetensors weights file (implies --method hrinet; default: the "
        "shipped weights)"))
    device: str = field(default="auto", metadata=_option(
        "--device", "auto (default), cpu or cuda; under torchrun, LOCAL_RANK picks the GPU"))
    precision: str = field(default="auto", metadata=_option(
        "--precision", "arithmetic of learned methods: fp32, bf16 (faster where the CPU has "
        "it), fp16 (CUDA GPUs only), or auto: bf16 only where its measured cost is within "
        f"{AUTO_PRECISION_TOLERANCE_DB:g} dB (default auto)", choices=PRECISIONS))
    quality: str = field(default="standard", metadata=_option(
        "--quality", "standard (default), or high: the learned model run on four mirrored "
        "views of the input (reversed along z, flipped left to right) and averaged: about 0.1 dB "
        "better, about 3x the time (3.2x on an 8 mm chest; docs/results.md, 'The quality "
        "setting')", choices=QUALITIES))
    thickness: Optional[float] = field(default=None, metadata=_option(
        "--thickness", "slice thickness of the input in mm (default: a DICOM series' Slice "
        "Thickness is reported, not applied, its known slices kept bit-exact, a gantry-tilted "
        "series' moved in-plane onto the de-tilted grid; a volume file "
        "that records none has it estimated from its voxels and applied, slab or thin, as the "
        "plan line says; 0: thin, kept bit-exact); with a slab thickness the learned model "
        "also restores the known positions, rewriting the acquired slices",
        type=float, metavar="MM"))

    @property
    def resolved_method(self) -> str:
        """The method named, else ``hrinet`` (``--weights`` alone means the default model): what
        a program that names the method runs (the commands, given neither ``--method`` nor
        ``--weights``, fall back to cubic where PyTorch is missing)."""
        return self.method or "hrinet"

    @property
    def learned(self) -> bool:
        """Whether the method runs a model."""
        return self.resolved_method not in CLASSICAL_METHODS

    def argv(self) -> List[str]:
        """The options as a command line: those set, the learned-only ones only for a learned
        method (the command warns when they would be unused)."""
        out: List[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name in LEARNED_ONLY and not self.learned):
                continue
            out += [f.metadata["flag"], f"{value:g}" if isinstance(value, float) else str(value)]
        return out


def check_options(options) -> "ModelOptions":
    """``options`` if it is a :class:`ModelOptions`, else a TypeError naming what was given
    (a caller of the older signatures passing a factor or a callback in its place)."""
    if not isinstance(options, ModelOptions):
        raise TypeError(f"expected ModelOptions (hrinet.core.model_options), got "
                        f"{type(options).__name__} {options!r}; e.g. ModelOptions(factor=4)")
    return options


def option_field(name: str):
    """The declaration of one model option."""
    return {f.name: f for f in fields(ModelOptions)}[name]


def add_model_arguments(parser: argparse.ArgumentParser, names: Sequence[str],
                        exclusive_target: bool = True) -> None:
    """Add the named model options to a command's parser, as declared in :class:`ModelOptions`
    (``factor`` and ``spacing`` exclusive of each other)."""
    target_given = exclusive_target and {"factor", "spacing"} <= set(names)
    group = parser.add_mutually_exclusive_group() if target_given else parser
    for name in names:
        f = option_field(name)
        kwargs = dict(f.metadata["argparse"], help=f.metadata["help"], dest=f.name,
                      default=f.default)
        target = group if name in ("factor", "spacing") else parser
        target.add_argument(f.metadata["flag"], **kwargs)


def from_args(args: argparse.Namespace) -> ModelOptions:
    """The model options a parsed command line holds (absent ones at their defaults)."""
    return ModelOptions(**{f.name: getattr(args, f.name, f.default) for f in fields(ModelOptions)})
