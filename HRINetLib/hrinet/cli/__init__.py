"""The ``hrinet`` command: one entry point, its subcommands in modules of their own."""

from hrinet.cli.app import main

__all__ = ["main"]
