"""*Adapt to this case* from the panel: ``hrinet adapt`` as a background job.

Conservative fine-tuning on the input volume's own slices, kept only if it beats the starting
model on held-out slices of the same case (:mod:`hrinet.training.adapt`); a training job
(:class:`.training_job.TrainingJob`: polled, stopped, its weights named only when it ended well) with
the adapt command's line and verdict. The starting model's variant is read from its JSON
sidecar: Slicer's own process never imports PyTorch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

from hrinet.core.errors import HRINetError
from hrinet.core.models.shipped import DEFAULT_NAME, find_weights, sidecar_of

from .training_job import TrainingJob


class AdaptJob(TrainingJob):
    """``hrinet adapt`` in a background process: fine-tuning on the input case, kept only if
    it wins on held-out slices of that case (:mod:`hrinet.training.adapt`)."""

    def command(self, resume: bool = False) -> List[str]:
        if not self.paths:
            self.paths = self._export_inputs()
        cmd = self.hrinet("adapt", self.paths[0], "--out", self.out, "--iterations",
                          self.iterations, "--crop", self.crop, "--device", self.device)
        if self.init_weights:
            cmd += ["--weights", str(self.init_weights)]
        return cmd

    def result(self) -> Optional[dict]:
        """``adapt.json`` once the job is done: the held-out comparison and what was kept."""
        try:
            return json.loads((self.out / "adapt.json").read_text())
        except (OSError, ValueError):
            return None

    def clear_previous_result(self) -> None:
        """An earlier verdict must not pass for this job's (a failed job would show it)."""
        (self.out / "adapt.json").unlink(missing_ok=True)

    def poll(self) -> dict:
        info = super().poll()
        result = self.result()
        if result is not None and info["returncode"] == 0:
            info["adaptation"] = result
            info["weights"] = result["weights"]
        return info

    def weights_path(self) -> Path:
        result = self.result()
        return Path(result["weights"]) if result else self.out / "hrinet-adapted.safetensors"


def adapt_job(out_dir, node, iterations: int = 200, crop: int = 128,
              weights: Optional[str] = None, device: str = "auto") -> AdaptJob:
    """"Adapt to this case": conservative fine-tuning on the input volume's own slices,
    guarded by held-out slices of the same case (:mod:`hrinet.training.adapt`); the panel then
    selects the adapted weights, or the starting model when adaptation did not help.

    The starting model's variant comes from its JSON sidecar, read here without PyTorch (the
    command checks the weights against it before it trains)."""
    init = weights or find_weights(DEFAULT_NAME)
    if init is None:
        raise HRINetError("no default weights to adapt; choose a weights file")
    return AdaptJob(out_dir, [node], variant=sidecar_variant(init), iterations=iterations,
                    crop=crop, init_weights=str(init), device=device)


def sidecar_variant(weights) -> str:
    """The variant a weights file's JSON sidecar names
    (:func:`hrinet.core.models.shipped.sidecar_of`), read without importing PyTorch into Slicer's
    process; a one-line error otherwise."""
    if not Path(weights).is_file():
        raise HRINetError(f"weights file {weights} does not exist; check the path")
    side = sidecar_of(weights)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HRINetError(f"weights {weights} have no sidecar {side.name}; the metadata file "
                          "must sit beside the weights (it names the variant)") from None
    except (OSError, ValueError) as exc:
        raise HRINetError(f"sidecar {side} cannot be read ({exc})") from None
    variant = meta.get("variant") if isinstance(meta, dict) else None
    if not isinstance(variant, str):
        raise HRINetError(f"sidecar {side} is not an HRINet weights description (it names no "
                          "variant)")
    return variant
