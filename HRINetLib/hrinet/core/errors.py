"""User-facing errors.

Every problem a user can cause (bad file, bad parameter, bad weights) raises :class:`HRINetError`
with a one-line message that names the problem and what to do. The command line and the Slicer
module show that line; they never show a traceback for it.
"""

from __future__ import annotations


class HRINetError(Exception):
    """A problem with the user's input or parameters, explained in one line."""


class Cancelled(HRINetError):
    """The user cancelled a long operation; nothing was written."""

    def __init__(self, message: str = "cancelled by the user; nothing was written") -> None:
        super().__init__(message)


def first_line(exc: BaseException) -> str:
    """An exception's message on one line, for a one-line error (ITK's file/line prefix cut)."""
    text = " ".join(str(exc).split())
    # ITK messages start with a file/line prefix; keep the human part, shortened.
    for marker in ("Description:", "ERROR:"):
        if marker in text:
            text = text.split(marker, 1)[1].strip()
    return text[:200] or type(exc).__name__
