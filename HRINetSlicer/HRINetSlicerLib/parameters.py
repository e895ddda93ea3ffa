"""The panel's settings: one parameter node (saved with the scene) and the keys of its combos."""

from pathlib import Path

from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import parameterNodeWrapper


@parameterNodeWrapper
class HRINetSlicerParameterNode:
    """Every setting of the panel, saved with the scene and restored with it.

    Widgets with a ``SlicerParameterName`` in the .ui are bound by ``connectGui``; the combo
    boxes in :data:`KEYED_COMBOS` hold a key (their items' data), never their translated text.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    targetMode: str = "isotropic"
    targetSpacing: float = 1.0
    factor: int = 4
    restoreSlabs: bool = False
    showConfidence: bool = False
    thickness: float = 0.0
    model: str = "hrinet"
    weightsPath: Path = Path()
    device: str = "auto"
    precision: str = "auto"
    quality: str = "standard"
    exportPath: Path = Path()
    trainVariant: str = "hrinet-flow"
    trainIterations: int = 500
    trainCrop: int = 128
    trainOutputPath: Path = Path()
    batchInputPath: Path = Path()
    batchOutputPath: Path = Path()


#: Combo boxes bound to a parameter through their items' data (key), not their text.
KEYED_COMBOS = {"targetModeComboBox": "targetMode", "modelComboBox": "model",
                "deviceComboBox": "device", "variantComboBox": "trainVariant",
                "precisionComboBox": "precision", "qualityComboBox": "quality"}
#: Keys of the items the .ui defines, in its order.
TARGET_MODES = ("isotropic", "spacing", "factor")
DEVICES = ("auto", "cuda", "cpu")
#: How the precision combo shows its keys (the keys themselves come from the --precision option).
PRECISION_LABELS = {"auto": "auto precision", "fp16": "fp16 (CUDA)"}
#: How the quality combo shows its keys (the keys come from the --quality option).
QUALITY_LABELS = {"standard": "standard quality", "high": "high quality (slower)"}


def is_unset(path) -> bool:
    """True for an empty path setting (the wrapper stores an unset Path as ".")."""
    return path is None or str(path) in ("", ".")
