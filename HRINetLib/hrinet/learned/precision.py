"""The arithmetic precision a learned model runs in: fp32, bfloat16 where the device has it, or
float16 on a CUDA GPU (whose tensor cores run it on GPUs without bf16).

bf16 halves the bytes each convolution moves and, on CPUs with AVX-512 BF16 or AMX, runs the
matrix products natively: about 1.5x faster at 512^2 on this project's 2-core CPU. ``auto``
picks it only where its measured cost (README, "Precision") is under
:data:`AUTO_TOLERANCE_DB` on every validation cell; ``fp32`` reproduces the reference outputs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from hrinet.core.constants import AUTO_PRECISION_TOLERANCE_DB, DEFAULT_VARIANT, PRECISIONS
from hrinet.core.errors import HRINetError

#: The largest PSNR_HU cost (dB) on any validation cell that ``auto`` accepts for bf16.
AUTO_TOLERANCE_DB = AUTO_PRECISION_TOLERANCE_DB
#: Where ``auto`` chooses bf16: the device types and the variants whose bf16 cost was measured
#: within tolerance (README "Precision": the default on both validation volumes, both
#: protocols, every factor: at most 0.0014 dB for the tenth stage). Other variants stay fp32
#: until measured.
AUTO_BF16_DEVICES = ("cpu",)
AUTO_BF16_VARIANTS = (DEFAULT_VARIANT,)


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is
    emulated and slower than fp32."""
    try:
        flags = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device,
                      variant: str = DEFAULT_VARIANT) -> str:
    """``fp32``, ``bf16`` or ``fp16`` (CUDA only) for ``precision`` (one of
    :data:`PRECISIONS`) when ``variant`` runs on ``device``."""
    if precision not in PRECISIONS:
        raise HRINetError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise HRINetError(f"precision fp16 runs on a CUDA GPU only, not on {device.type}; "
                          "choose bf16 or fp32 (or auto)")
    if precision != "auto":
        return precision
    if device.type in AUTO_BF16_DEVICES and variant in AUTO_BF16_VARIANTS and \
            (device.type != "cpu" or cpu_has_bf16()):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The context a model's forward pass runs in for a resolved ``precision``."""
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()
