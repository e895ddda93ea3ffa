"""The arithmetic precision a learned model runs in: fp32, bfloat16 where the device has it, or
float16 on a CUDA GPU (whose tensor cores run it on GPUs without bf16).

bf16 halves the bytes each convolution moves and, on CPUs with AVX-512 BF16 or AMX, runs the
matrix products natively: about 1.5x faster at 512^2 on this project's 2-core CPU. ``auto``
picks it only on such CPUs and only for the variants whose measured cost (docs/benchmarks.md,
"Precision") is under :data:`AUTO_TOLERANCE_DB` on every validation cell
(:attr:`hrinet.core.variants.Variant.auto_bf16`); everywhere else, CUDA GPUs included, ``auto``
is fp32, which reproduces the reference outputs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import torch

from hrinet.core.constants import AUTO_PRECISION_TOLERANCE_DB, PRECISIONS
from hrinet.core.errors import HRINetError
from hrinet.core.variants import DEFAULT_VARIANT, variant

#: The largest PSNR_HU cost (dB) on any validation cell that ``auto`` accepts for bf16.
AUTO_TOLERANCE_DB = AUTO_PRECISION_TOLERANCE_DB
#: The device types where ``auto`` may choose bf16 (for the variants measured within tolerance,
#: :attr:`hrinet.core.variants.Variant.auto_bf16`).
AUTO_BF16_DEVICES = ("cpu",)


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is
    emulated and slower than fp32."""
    try:
        flags = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def emulation_warning(precision: str, device: torch.device,
                      cpuinfo: Path = Path("/proc/cpuinfo")) -> Optional[str]:
    """The one-line warning for bf16 asked for on a CPU that only emulates it (many times slower
    than fp32 there: a training step measured about 40x), else ``None``. ``auto`` never picks it."""
    if precision == "bf16" and device.type == "cpu" and not cpu_has_bf16(cpuinfo):
        return ("this CPU has no native bf16 (AVX-512 BF16 or AMX): bf16 runs emulated, many "
                "times slower than fp32 here; use --precision fp32")
    return None


def resolve_precision(precision: str, device: torch.device, name: str = DEFAULT_VARIANT) -> str:
    """``fp32``, ``bf16`` or ``fp16`` (CUDA only) for ``precision`` (one of
    :data:`PRECISIONS`) when variant ``name`` runs on ``device``."""
    if precision not in PRECISIONS:
        raise HRINetError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise HRINetError(f"precision fp16 runs on a CUDA GPU only, not on {device.type}; "
                          "choose bf16 or fp32 (or auto)")
    if precision != "auto":
        return precision
    if device.type in AUTO_BF16_DEVICES and variant(name).auto_bf16 and \
            (device.type != "cpu" or cpu_has_bf16()):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The context a model's forward pass runs in for a resolved ``precision``."""
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()
