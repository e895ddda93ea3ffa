"""The method registry the engine draws from.

A method is an :class:`Interpolator`: given a window of known slices (float32 or float64,
``(w, y, x)``) it synthesises the slices at fractions ``t`` in (0, 1) between chosen
neighbouring pairs. The classical methods register themselves when :mod:`hrinet.methods` is
imported; learned ones are listed by name and imported only when created (they need torch), so
callers never change when one is added.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable, Dict, List, Protocol, Sequence

import numpy as np

from hrinet.core.constants import CLASSICAL_METHODS
from hrinet.core.errors import HRINetError
from hrinet.methods.ensemble import with_quality
from hrinet.core.models.shipped import find_weights
from hrinet.core.variants import VARIANTS


class Interpolator(Protocol):
    """What the engine needs from a method."""

    name: str
    #: Known slices needed on each side of a pair beyond the pair itself.
    halo: int

    def interpolate(self, window: np.ndarray, pairs: Sequence[int],
                    fractions: Sequence[float]) -> np.ndarray:
        """Slices between ``window[p]`` and ``window[p + 1]`` for each ``p`` in ``pairs``.

        ``fractions[j]`` = 0 would be ``window[p]`` and 1 would be ``window[p + 1]``. Returns a
        float32 array ``(len(pairs), len(fractions), y, x)``.
        """
        ...


_REGISTRY: Dict[str, Callable[..., Interpolator]] = {}


def register_method(name: str) -> Callable:
    """Decorator registering a factory ``f(**options) -> Interpolator`` under ``name``."""

    def wrap(factory: Callable[..., Interpolator]) -> Callable[..., Interpolator]:
        _REGISTRY[name] = factory
        return factory

    return wrap


#: Learned methods, registered by name -> "module:factory" and imported only when created, so
#: that the classical methods (and everything that lists methods) work without torch.
_LAZY: Dict[str, str] = {name: "hrinet.learned.inference:learned_method"
                         for name in ("hrinet",) + VARIANTS}


def available_methods() -> List[str]:
    """Names accepted by ``method=`` (no learned code is imported)."""
    return sorted(set(_REGISTRY) | set(_LAZY))


def create_interpolator(name: str, **options) -> Interpolator:
    """Instantiate a registered method; ``options`` (device, weights...) go to its factory,
    except ``quality`` (:data:`hrinet.core.constants.QUALITIES`), which wraps a learned method
    (:func:`hrinet.methods.ensemble.with_quality`); a classical method has no model to run on
    mirrored views and ignores it.

    Example:
        >>> create_interpolator("cubic").name
        'cubic'
    """
    quality = options.pop("quality", None) or "standard"
    if quality != "standard" and name not in CLASSICAL_METHODS:
        return with_quality(create_interpolator(name, **options), quality)
    if name in _REGISTRY:
        return _REGISTRY[name](**options)
    if name in _LAZY:
        module, factory = _LAZY[name].split(":")
        try:
            imported = importlib.import_module(module)
        except ImportError as exc:
            raise HRINetError(missing_learned_words(name, exc)) from None
        return getattr(imported, factory)(name, **options)
    raise HRINetError(f"unknown method {name!r}; choose one of "
                      f"{', '.join(available_methods())}")


#: The learned extra's packages by the module name they are imported as.
LEARNED_PACKAGES = {"torch": "PyTorch", "safetensors": "safetensors"}
#: The one line that installs everything the learned methods import.
LEARNED_INSTALL = 'pip install "hrinet[learned]"'


def missing_learned_words(method: str, exc: ImportError) -> str:
    """One line for a learned method whose code cannot be imported: the package that is
    missing (from the import error, so that an install with torch but without safetensors is
    not told PyTorch is missing) and the install line that brings it."""
    module = (getattr(exc, "name", None) or "").split(".")[0]
    if isinstance(exc, ModuleNotFoundError) and module:
        package = LEARNED_PACKAGES.get(module, module)
        problem = f"{package}, which is not installed"
    else:  # installed, but broken (a mismatched build): its own words
        package = LEARNED_PACKAGES.get(module, module or "PyTorch")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        problem = f"{package}, which cannot be imported ({reason})"
    return (f"method {method} needs {problem}; install the learned extra ({LEARNED_INSTALL}), "
            f"or use {', '.join(CLASSICAL_METHODS)}")


def learned_available() -> bool:
    """Whether learned methods can run here: PyTorch installed (checked without importing it)."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def default_method() -> str:
    """``hrinet`` where it can run (the shipped default weights and PyTorch are there), else
    ``cubic``: an install without the learned extra still has a working default."""
    return "hrinet" if find_weights() is not None and learned_available() else "cubic"


#: Suffixes of pickle/PyTorch checkpoints, which can run code when loaded.
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")


def check_model_options(weights, device: str, precision: str) -> None:
    """Refuse a learned method's impossible options at once, before the input is read and
    before any output is made: ``weights`` that is not a ``.safetensors`` file, and a
    ``device``/``precision`` this machine cannot run (fp16 without a CUDA GPU). The weights'
    contents are checked where they are loaded."""
    if weights:
        w = Path(weights)
        if w.suffix.lower() in _PICKLE_SUFFIXES:
            raise HRINetError(f"--weights {w} is a pickle/PyTorch checkpoint, which can run code "
                              "when loaded; only .safetensors weights with a JSON sidecar are "
                              "accepted (convert with 'hrinet export')")
        if w.is_dir():
            raise HRINetError(f"--weights {w} is a folder; give the .safetensors file in it")
        if not w.exists():
            raise HRINetError(f"--weights {w} does not exist; check the path")
        if w.suffix.lower() != ".safetensors":
            raise HRINetError(f"--weights {w} is not a .safetensors file; give a .safetensors "
                              "weights file with its JSON sidecar (hrinet models lists them)")
    if precision == "fp16" or device not in ("auto", "cpu"):
        try:  # imported here, as learned methods are: the classical ones need no torch
            inference = importlib.import_module("hrinet.learned.inference")
            precisions = importlib.import_module("hrinet.learned.precision")
        except ImportError:  # no PyTorch: said where the method is made
            return
        precisions.resolve_precision(precision, inference.resolve_device(device))
