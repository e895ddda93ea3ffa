"""The ``--format`` option of the commands that write volumes, apart from the DICOM code it
selects: building the parser imports no pydicom (every command starts faster)."""

from __future__ import annotations


def add_format_argument(parser) -> None:
    """``--format file|dicom`` of ``hrinet interpolate`` and ``hrinet batch``."""
    parser.add_argument("--format", choices=("file", "dicom"), default="file",
                        help="file: the output's extension chooses the format (default); "
                        "dicom: the output is a folder for a derived DICOM series of the "
                        "input's study (DICOM input only)")
