"""What the command line says about the model it runs: one wording for every command."""

from __future__ import annotations


def model_words(interp) -> str:
    """``model hrinet-flow (hrinet-default.safetensors) on cpu, bf16`` for a learned method, ""
    for a classical one."""
    path = getattr(interp, "weights_path", None)
    if path is None:
        return ""
    variant = getattr(interp, "metadata", {}).get("variant", "?")
    return (f"model {variant} ({path.name}) on {getattr(interp, 'device', 'cpu')}, "
            f"{getattr(interp, 'precision', 'fp32')}")


#: The ``--precision`` option's help, for every command that has it.
PRECISION_HELP = ("arithmetic of learned methods: fp32, bf16 (faster where the CPU has it), fp16 "
                  "(CUDA GPUs only), or auto: bf16 only where its measured cost is within "
                  "0.02 dB (default auto)")
