"""Reading and writing CT volumes (NRRD, NHDR, NIfTI, MHA/MHD, DICOM series) and what they
record about how they were made.

- :mod:`.readers`, :mod:`.writers`: volume files and DICOM folders in, volume files out;
- :mod:`.paths`: extensions, names, and the checks an output path passes before any work;
- :mod:`.atomic`: every file the project writes, written beside its place, verified, moved in;
- :mod:`.headers`: what a file's header promises, checked before the image reader reads it
  (one module a format);
- :mod:`.dicom`: series folders and studies read (:mod:`.dicom.study`,
  :mod:`.dicom.slice_geometry`, :mod:`.dicom.series`), a derived series written
  (:mod:`.dicom.derived`);
- :mod:`.provenance`: the record of an interpolation (:mod:`.provenance.record`,
  :mod:`.provenance.slices`) and how files carry it (:mod:`.provenance.files`).

The names below are what callers use; each is loaded from its module on first use, so that a
light module of the package (:mod:`.atomic`, for training and inference on arrays) is imported
without SimpleITK or pydicom.
"""

from __future__ import annotations

import importlib

#: Each public name and the module of this package that defines it.
_WHERE = {
    "read_volume": "readers", "describe": "readers", "dicom_folder_of": "readers",
    "write_volume": "writers",
    "READ_EXTENSIONS": "paths", "WRITE_EXTENSIONS": "paths", "volume_name": "paths",
    "check_output_path": "paths", "check_new_file": "paths", "check_file_name": "paths",
    "check_not_broken_link": "paths", "same_file": "paths", "make_folder": "paths",
    "atomic_write": "atomic", "write_text": "atomic", "complete_png": "atomic",
    "complete_safetensors": "atomic", "file_sha256": "atomic", "folder_sha256": "atomic",
    "remove_stale_partials": "atomic",
    "read_dicom_folder": "dicom.series", "read_multiframe_file": "dicom.multiframe",
    "list_dicom_series": "dicom.study", "study_series": "dicom.study",
    "series_kind": "dicom.study",
    "add_format_argument": "dicom.derived.format_option", "check_dicom_output": "dicom.derived.checks",
    "check_derivable": "dicom.derived.checks",
    "write_derived_series": "dicom.derived.writer", "read_derived": "dicom.derived.reader",
    "read_provenance": "provenance.files",
}

__all__ = [
    "READ_EXTENSIONS", "WRITE_EXTENSIONS", "add_format_argument", "atomic_write",
    "check_derivable", "check_dicom_output", "check_file_name", "check_new_file", "check_not_broken_link", "check_output_path",
    "complete_png", "complete_safetensors", "describe", "dicom_folder_of", "file_sha256", "folder_sha256",
    "list_dicom_series", "make_folder", "read_derived", "read_dicom_folder", "read_multiframe_file", "read_provenance", "read_volume",
    "remove_stale_partials", "same_file", "series_kind", "study_series", "volume_name",
    "write_derived_series", "write_text", "write_volume",
]


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found once: later uses are plain attribute reads
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
