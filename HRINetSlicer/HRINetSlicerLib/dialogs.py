"""What the panel asks and tells in dialogs: installing what a feature needs (never without the
user's OK) and a failed action's one line (never a traceback in a dialog)."""

import logging

import qt
import slicer
from hrinet.core.errors import Cancelled, HRINetError
from slicer.i18n import tr as _

from .requirements import missing_requirements, need_of, requirements_for


def ensure_dependencies(need: str = "learned") -> bool:
    """Ask once for what a feature needs: nothing for linear and cubic, OpenCV for flow, PyTorch
    (through the PyTorch extension) and ``Resources/requirements.txt`` for learned models.

    Returns True when everything is there. Nothing is installed without the user's OK.
    """
    if need == "learned":
        try:
            import torch  # noqa: F401
        except ImportError:
            try:
                import PyTorchUtils
            except ImportError:
                slicer.util.errorDisplay(_(
                    "HRINet needs PyTorch. Install the 'PyTorch' extension from the Extensions "
                    "Manager, restart Slicer, and try again."))
                return False
            if not slicer.util.confirmOkCancelDisplay(_(
                    "HRINet needs PyTorch, which is not installed yet. Install it now through the "
                    "PyTorch extension? This downloads several hundred MB and can take minutes.")):
                return False
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=False, torchVersionRequirement=">=2.1")
            if torch is None:
                slicer.util.errorDisplay(_("PyTorch could not be installed; see the Python console."))
                return False
    missing = missing_requirements(requirements_for(need))
    if not missing:
        return True
    pip_ensure = getattr(getattr(slicer, "packaging", None), "pip_ensure", None) or \
        getattr(slicer.util, "pip_ensure", None)
    if pip_ensure is not None:  # current Slicer: its own dialog, progress and restart advice
        from packaging.requirements import Requirement

        pip_ensure([Requirement(r) for r in missing], requester="HRINetSlicer")
        return not missing_requirements(missing)
    if not slicer.util.confirmOkCancelDisplay(
            _("HRINet needs these Python packages: {names}. Install them now?").format(
                names=", ".join(missing))):
        return False
    with slicer.util.WaitCursor():
        slicer.util.pip_install(" ".join(missing))  # older Slicer
    return not missing_requirements(missing)


def ensure_dependencies_for(options) -> bool:
    """:func:`ensure_dependencies` for what the method of ``options`` (the panel's
    :class:`~hrinet.core.model_options.ModelOptions`) needs."""
    return ensure_dependencies(need_of(options.resolved_method))


class ShowFailureInDialog:
    """Context manager around one panel action (``with ShowFailureInDialog(_("Export
    failed.")):``): a wait cursor while it runs; if it fails, an error dialog saying ``what``
    failed and why. A library error shows its one line; anything else shows a short message
    with the details in the Python console, never a traceback in the dialog; a cancel shows
    nothing."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        return self

    def __exit__(self, exc_type, exc, tb):
        qt.QApplication.restoreOverrideCursor()
        if exc is None:
            return False
        if isinstance(exc, Cancelled):
            return True
        if isinstance(exc, HRINetError):
            slicer.util.errorDisplay(f"{self.what} {exc}")
        else:
            logging.exception(self.what)
            slicer.util.errorDisplay(_("{what} Unexpected error: {err} (details in the Python "
                                       "console)").format(what=self.what, err=exc))
        return True
