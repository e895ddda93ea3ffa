"""Interpolation along z: the method registry, the classical methods and the streaming engine.

Importing this package registers the classical methods (linear, cubic, flow); learned methods are
registered by name and imported only when created.
"""

from hrinet.methods import classical, flow  # noqa: F401 (registers the classical methods)
from hrinet.methods.registry import (
                                     Interpolator,
                                     available_methods,
                                     create_interpolator,
                                     default_method,
                                     register_method,
)

__all__ = ["Interpolator", "available_methods", "create_interpolator", "default_method",
           "register_method"]
