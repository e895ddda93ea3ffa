"""The module's Logic class as Slicer expects it: the panel's way into the library.

Thin on purpose: each method hands over to :mod:`.mrml` or :mod:`.jobs`, where the real code
is tested without the Slicer application. Nothing here imports PyTorch: the panel builds before
it is installed. Interpolation has one way, the background job of :mod:`.jobs`: the panel polls
it on a timer, :meth:`HRINetSlicerLogic.interpolate` waits for it.
"""

import slicer
from hrinet.core.model_options import ModelOptions
from hrinet.core.models.shipped import find_weights, variant_weights_name
from hrinet.core.variants import menu_order
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from .adaptation import adapt_job
from .jobs import interpolate_node
from .training_job import TrainingJob
from .mrml import export_derived_dicom, export_nrrd, plan_for_node
from .parameters import HRINetSlicerParameterNode


class HRINetSlicerLogic(ScriptedLoadableModuleLogic):
    """Slicer-facing wrapper of :mod:`HRINetSlicerLib.mrml` and :mod:`HRINetSlicerLib.jobs`."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return HRINetSlicerParameterNode(super().getParameterNode())

    @staticmethod
    def variants():
        """The trainable variants: the default, our others, then the paper's (newest first)."""
        return list(menu_order())

    @staticmethod
    def shippedWeights(variant):
        return str(find_weights(variant_weights_name(variant)))

    @staticmethod
    def detectedDevice() -> str:
        try:
            import torch  # optional until the user installs it
        except ImportError:
            return _("PyTorch not installed yet")
        if torch.cuda.is_available():
            return _("detected: GPU ({name})").format(name=torch.cuda.get_device_name(0))
        return _("detected: CPU only")

    @staticmethod
    def plan(node, options: ModelOptions = ModelOptions()):
        return plan_for_node(node, options)

    def interpolate(self, node, options: ModelOptions = ModelOptions(), progress=None, **kwargs):
        """The panel's interpolation job (:func:`.jobs.interpolate_node`: ``options`` are the
        command's own, :class:`hrinet.core.model_options.ModelOptions`) started and waited for,
        Slicer still drawing meanwhile; ``(node, seconds)``. For the self-test and scripts; the
        panel polls the job instead."""
        app = getattr(slicer, "app", None)

        def waiting(done, total):
            if app is not None:
                app.processEvents()
            if progress is not None:
                progress(done, total)

        return interpolate_node(node, options, progress=waiting, **kwargs)

    def exportNrrd(self, node, path, overwrite=False):
        return export_nrrd(node, path, overwrite=overwrite)

    def exportDerivedDicom(self, node, folder, overwrite=False):
        return export_derived_dicom(node, folder, overwrite=overwrite)

    def trainingJob(self, out, nodes, variant, iterations, crop):
        return TrainingJob(out, nodes, variant=variant, iterations=iterations, crop=crop)

    def adaptJob(self, out, node, iterations, crop):
        return adapt_job(out, node, iterations=iterations, crop=crop)
