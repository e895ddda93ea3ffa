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
