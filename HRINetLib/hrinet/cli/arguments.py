"""Checks on the parsed command line that no single command owns: an empty value (an unset
shell variable) is refused rather than taken for the current folder or a default."""

from __future__ import annotations

#: Arguments whose empty value means "nothing given" rather than a path (text filters), or
#: that their command refuses itself with a better line (``models --get`` lists the names).
_MAY_BE_EMPTY = ("series_filter", "get")
#: How the positional arguments are named in the empty-path error (``out`` is positional in
#: interpolate and export, an option elsewhere: both are the output).
_POSITIONAL_SAID = {"input": "the input", "volumes": "a volume", "checkpoint": "the checkpoint",
                    "out": "the output"}


def empty_paths(args) -> str:
    """The first argument given as an empty string (``--out ""``, an unset shell variable), as
    the user would write it; "" when there is none. An empty path would silently mean the
    current folder, which the user never named."""
    for dest, value in vars(args).items():
        if dest in _MAY_BE_EMPTY or dest.startswith("_"):
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            return _POSITIONAL_SAID.get(dest, "--" + dest.replace("_", "-"))
    return ""
