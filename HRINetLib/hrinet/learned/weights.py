"""Weights files: safetensors tensors plus a JSON sidecar, loaded without pickle.

``model.safetensors`` holds the generator's tensors; ``model.json`` beside it names the variant,
the full configuration, the intensity normalisation, the training data and split, the iterations,
the validation metrics, the code version and the sha256 of the tensor file. Loading refuses a
pickle (without unpickling it), a missing sidecar, a sha256 mismatch and tensors that do not fit
the architecture the sidecar describes.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Dict, Tuple

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from hrinet.core.io.atomic import (
    atomic_write,
    complete_safetensors,
    file_sha256,
    write_text,
)
from hrinet.core.constants import HU_MAX, HU_MIN
from hrinet.core.errors import HRINetError
from hrinet.core.models.shipped import (  # noqa: F401
    DEFAULT_NAME,
    default_weights_dirs,
    find_weights,
    sidecar_of,
)
from hrinet.learned.models import Generator, ModelConfig
from hrinet.learned.networks import build_generator

FORMAT = "hrinet-weights/1"


#: Key in the tensor file's own header holding :func:`architecture_digest` of its sidecar: the
#: sidecar's sha256 covers the tensors, and this covers what the sidecar says about them.
ARCHITECTURE_KEY = "architecture_sha256"


def architecture_digest(meta: Dict) -> str:
    """sha256 of what in a sidecar decides how the tensors are used: variant, configuration
    and intensity normalisation."""
    part = {k: meta.get(k) for k in ("variant", "config", "normalisation")}
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()


def tensor_header(path: Path) -> Tuple[Dict[str, tuple], Dict[str, str]]:
    """Shapes of the tensors and the header's metadata, without reading any tensor."""
    with safe_open(str(path), framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, (f.metadata() or {})


def _is_checkpoint(path: Path) -> bool:
    try:
        return "state" in tensor_header(path)[1]
    except Exception:  # not readable as safetensors: the caller's checks say why
        return False


def save_weights(generator: Generator, path, metadata: Dict) -> Path:
    """Write the generator's tensors and the sidecar (both atomically); returns the tensor path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise HRINetError(f"weights file {path} must end in .safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    meta = dict(metadata)
    meta.update(format=FORMAT, variant=generator.cfg.variant, config=generator.cfg.to_dict(),
                normalisation={"hu_min": HU_MIN, "hu_max": HU_MAX,
                               "formula": "(clip(HU, hu_min, hu_max) - hu_min) / (hu_max - hu_min)"},
                tensor_file=path.name)
    with atomic_write(path, verify=complete_safetensors) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT,
                                               ARCHITECTURE_KEY: architecture_digest(meta)})
        complete_safetensors(tmp)  # before the sidecar describes it
        meta["sha256"] = file_sha256(tmp)
        # The sidecar first, while the tensors are still a temporary file: if it cannot be
        # written (a full disk), the tensors are removed too, never left without their sidecar.
        write_text(sidecar_of(path), json.dumps(meta, indent=2, sort_keys=True))
    return path


def _check_not_pickle(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:2] == b"PK" or head[:1] == b"\x80" or path.suffix in (".pt", ".pth", ".ckpt",
                                                                   ".pkl", ".pickle", ".bin"):
        raise HRINetError(f"{path} is a pickle/PyTorch checkpoint, which can run code when "
                          "loaded; only .safetensors weights with a JSON sidecar are accepted "
                          "(convert with 'hrinet export')")
    if len(head) < 9:
        raise HRINetError(f"{path} is not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or n > os.path.getsize(path):
        raise HRINetError(f"{path} is not a safetensors file; give a .safetensors weights file")


def read_metadata(path) -> Dict:
    """The sidecar of ``path``, after checking the tensor file against its sha256."""
    path = Path(path)
    if path.is_dir():
        raise HRINetError(f"weights {path} is a folder; give the .safetensors file in it")
    if path.exists() and not path.is_file():
        raise HRINetError(f"weights {path} is not a regular file (a device or a pipe); give a "
                          ".safetensors weights file")
    if not path.is_file():
        raise HRINetError(f"weights file {path} does not exist; check the path")
    _check_not_pickle(path)
    side = sidecar_of(path)
    if not side.is_file() and _is_checkpoint(path):
        raise HRINetError(f"{path} is a training checkpoint, not weights; use the run's exported "
                          f"weights (the .safetensors beside it named after the variant) or "
                          f"export them: hrinet export {path.parent} OUT.safetensors")
    if not side.is_file():
        raise HRINetError(f"weights {path} have no sidecar {side.name}; the metadata file must "
                          "sit beside the weights (it names the variant and checksum)")
    try:
        meta = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HRINetError(f"sidecar {side} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise HRINetError(f"sidecar {side} is not an HRINet weights description (a JSON "
                          f"{type(meta).__name__}, not an object); restore the original sidecar")
    if meta.get("format") != FORMAT or "config" not in meta or "sha256" not in meta:
        raise HRINetError(f"sidecar {side} is not an HRINet weights description")
    digest = file_sha256(path)
    if digest != meta["sha256"]:
        raise HRINetError(f"weights {path} do not match the sha256 in {side.name} (file changed "
                          "or corrupt); re-download or re-export them")
    recorded = tensor_header(path)[1].get(ARCHITECTURE_KEY)
    if recorded is not None and recorded != architecture_digest(meta):
        raise HRINetError(f"sidecar {side.name} was changed: the variant, configuration or "
                          f"normalisation it describes is not the one {path.name} was saved "
                          "with; restore the original sidecar")
    norm = meta.get("normalisation", {})
    if (norm.get("hu_min"), norm.get("hu_max")) != (HU_MIN, HU_MAX):
        raise HRINetError(f"weights {path} use the intensity normalisation {norm}, which this "
                          f"version does not support (expects HU {HU_MIN}..{HU_MAX})")
    return meta


def load_weights(path, device: str = "cpu") -> Tuple[Generator, Dict]:
    """A generator (eval mode) and its metadata from a safetensors file and its sidecar."""
    meta = read_metadata(path)
    mismatch = f"weights {path} do not fit the {{}} architecture their sidecar describes " \
               "(another variant or size); use the matching sidecar"
    try:
        cfg = ModelConfig.from_dict(meta["config"])
        with torch.device("meta"):  # shapes only: an edited sidecar cannot make us allocate
            expected = {k: tuple(v.shape) for k, v in build_generator(cfg).state_dict().items()}
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as exc:
        raise HRINetError(f"sidecar of {path} describes an invalid model ({exc})") from None
    if meta.get("variant") != cfg.variant:
        raise HRINetError(f"sidecar of {path} names variant {meta.get('variant')} but its "
                          f"config says {cfg.variant}")
    if expected != tensor_header(path)[0]:
        raise HRINetError(mismatch.format(cfg.variant))
    model = build_generator(cfg)
    tensors = load_file(str(path), device="cpu")
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError:
        raise HRINetError(mismatch.format(cfg.variant)) from None
    return model.to(device).eval(), meta
