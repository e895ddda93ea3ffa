"""HRINetSlicer: make thick-slice CT isotropic with a learned slice interpolator (3D Slicer).

The module file Slicer loads: the module's description, and the names Slicer looks up here
(``HRINetSlicerWidget``, ``HRINetSlicerLogic``, ``HRINetSlicerTest``) taken from
``HRINetSlicerLib``, whose Qt-free parts (MRML conversion, background jobs) hand the work to the
``hrinet`` library.
"""

import sys
from pathlib import Path

from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

MODULE_DIR = Path(__file__).resolve().parent


def _add_library_path() -> None:
    """Find the bundled ``hrinet`` package (extension build) or the source tree's copy."""
    for candidate in (MODULE_DIR / "HRINetLib", MODULE_DIR.parent / "HRINetLib"):
        if (candidate / "hrinet" / "__init__.py").is_file() and str(candidate) not in sys.path:
            sys.path.insert(0, str(candidate))
            return


_add_library_path()  # before the imports below, which import hrinet

from HRINetSlicerLib.panel_logic import HRINetSlicerLogic  # noqa: E402,F401
from HRINetSlicerLib.parameters import HRINetSlicerParameterNode  # noqa: E402,F401
from HRINetSlicerLib.selftest import HRINetSlicerTest  # noqa: E402,F401
from HRINetSlicerLib.widget import HRINetSlicerWidget  # noqa: E402,F401


class HRINetSlicer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("HRINet Slice Interpolation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["HRINetSlicer developers"]
        self.parent.helpText = _(
            "Turns thick-slice CT into an isotropic volume by synthesising the missing slices "
            "with HRINet (Li, Koh, Lee). Choose the input, the target spacing and click "
            "'Interpolate volume'; a new volume is created and the input is left untouched.")
        self.parent.acknowledgementText = _(
            "Method: Li, Koh, Lee, 'HRINet: alternative supervision network for high-resolution "
            "CT image interpolation'.")
