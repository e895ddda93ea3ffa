"""How the command line stops on signals, and the exit status it stops with.

Work that saves on the way out (``train``, ``adapt``) polls SIGTERM as a flag and stops at the
next step with a checkpoint; everything else unwinds on it like Ctrl-C, so half-written files
are removed. Either way the status is the shell's convention: 128 + the signal's number.
"""

from __future__ import annotations

import signal

#: Exit status after Ctrl-C (128 + SIGINT) or a stop asked for through the run folder.
EXIT_INTERRUPTED = 130
#: Exit status after SIGTERM (128 + SIGTERM), as `timeout`, a job scheduler or Slicer sends it.
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so half-written files are removed on the way."""


def _raise_terminated(signum, _frame):
    raise Terminated(signal.Signals(signum).name)


#: Signals that end the work as SIGTERM does: SIGTERM itself and SIGHUP (a closed terminal).
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


def stop_on_sigterm() -> dict:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` (``train`` and ``adapt`` install a
    :class:`SigtermFlag` instead); returns the handlers it replaced, for
    :func:`restore_handlers` (empty off the main thread, where none can be set)."""
    previous = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, _raise_terminated)
    except ValueError:  # not the main thread (cli.main called from a worker thread)
        pass
    return previous


def restore_handlers(previous: dict) -> None:
    """Put back the handlers :func:`stop_on_sigterm` replaced (a :class:`SigtermFlag` set
    since is replaced too): a caller of ``cli.main`` in-process keeps its own."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)


class SigtermFlag:
    """SIGTERM as a flag that long work polls between steps; calling it says whether it came.

    ``SigtermFlag.received`` is process-wide, so the exit status can tell a SIGTERM stop from
    Ctrl-C after the work has unwound (:func:`cancelled_status`).
    """

    received = False

    def __init__(self) -> None:
        SigtermFlag.received = False
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._set)

    @staticmethod
    def _set(*_) -> None:
        SigtermFlag.received = True

    def __call__(self) -> bool:
        return SigtermFlag.received


def cancelled_status() -> int:
    """The exit status of work that stopped early: 143 after SIGTERM, else 130."""
    return EXIT_TERMINATED if SigtermFlag.received else EXIT_INTERRUPTED
