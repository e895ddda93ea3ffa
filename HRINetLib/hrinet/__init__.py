"""HRINet: learned slice interpolation that makes thick-slice CT isotropic.

The public surface::

    from hrinet import read_volume, write_volume, upsample_z
    vol = read_volume("thick.nrrd")
    iso = upsample_z(vol)                     # isotropic, default method
    write_volume(iso, "iso.nrrd")
"""

#: Set before the imports below: the provenance they load names the software by it.
__version__ = "0.1.0"

from hrinet.core.errors import Cancelled, HRINetError  # noqa: E402
from hrinet.core.volume import Volume
from hrinet.methods import available_methods, create_interpolator, register_method
from hrinet.methods.engine import upsample_z
from hrinet.methods.planning import Plan, plan_upsampling


def __getattr__(name: str):
    # SimpleITK loads on first use of the readers, not with the package: training and
    # inference on prepared arrays (a GPU machine without it, a worker process) never need it.
    if name in ("read_volume", "write_volume"):
        from hrinet.core import io

        return getattr(io, name)
    raise AttributeError(f"module 'hrinet' has no attribute {name!r}")

__all__ = [
    "Cancelled", "HRINetError", "Plan", "Volume", "available_methods", "create_interpolator",
    "plan_upsampling", "read_volume", "register_method", "upsample_z", "write_volume",
]
