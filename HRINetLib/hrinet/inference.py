"""Learned interpolation methods (registered into :mod:`hrinet.methods`)."""


def default_method() -> str:
    return "cubic"
