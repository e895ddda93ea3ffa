"""Provenance in files: put into an image's metadata for its writer (NRRD and MetaImage keys,
the NRRD ``content`` field, the NIfTI ``descrip``), the whole record as JSON in a NIfTI comment
extension, and read back from any output (:func:`read_provenance`)."""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path
from typing import Optional, Tuple

import SimpleITK as sitk

from hrinet.core.io.temp_names import REWRITE_ENDING
from hrinet.core.io.provenance.record import FIELDS, Record, content_line, short_line
from hrinet.core.itk import quiet_native_output

#: Prefix of the provenance keys in NRRD and MetaImage headers.
FILE_PREFIX = "hrinet_"
#: NIfTI extension code for free text (NIFTI_ECODE_COMMENT); the record goes there as JSON.
NIFTI_COMMENT_CODE = 6
_NIFTI_JSON_KEY = "hrinet_provenance"


def _one_line(value: str) -> str:
    return " ".join(str(value).split())


def stamp_image(image, rec: Record, suffix: str) -> None:
    """Put ``rec`` into a SimpleITK image's metadata for its writer: ``hrinet_*`` keys (NRRD
    key/value fields, MetaImage header keys) and the NRRD ``content`` field; for NIfTI, whose
    header holds no free keys, the ``descrip`` line (the rest goes into an extension,
    :func:`add_nifti_extension`)."""
    if suffix in (".nii", ".nii.gz"):
        image.SetMetaData("ITK_FileNotes", short_line(rec))
        return
    for key in FIELDS:
        if rec.get(key, "") != "":
            image.SetMetaData(FILE_PREFIX + key, _one_line(rec[key]))
    if suffix in (".nrrd", ".nhdr"):
        image.SetMetaData("NRRD_content", content_line(rec))


# ---- NIfTI extension ----------------------------------------------------------------------
def _open(path: Path, mode: str, gz: Optional[bool] = None):
    if gz is None:
        gz = str(path).lower().endswith(".gz")
    return gzip.open(path, mode) if gz else open(path, mode)


def _nifti_layout(head: bytes) -> Tuple[str, int]:
    """(byte order, vox_offset) of a NIfTI-1 single file's header."""
    if len(head) < 352:
        raise EOFError("the header is cut off")
    for order in ("<", ">"):
        if struct.unpack(order + "i", head[:4])[0] == 348:
            return order, int(struct.unpack(order + "f", head[108:112])[0])
    raise ValueError("not a NIfTI-1 header")


def add_nifti_extension(path: Path, rec: Record) -> None:
    """Rewrite the NIfTI-1 single file ``path`` (``.nii`` or ``.nii.gz``; a temporary file of
    a writer, not yet in place) with ``rec`` as JSON in a comment extension, moving the voxels
    behind it; the file is streamed, never held whole in memory."""
    try:
        _rewrite_nifti(Path(path), rec)
    except (struct.error, EOFError) as exc:  # the writer stopped short (a full disk)
        raise ValueError(f"the written file is cut off ({exc})") from None


def _rewrite_nifti(path: Path, rec: Record) -> None:
    gz = path.name.lower().endswith(".gz")
    with _open(path, "rb") as f:
        head = f.read(352)
        order, offset = _nifti_layout(head)
        rest_of_header = f.read(max(0, offset - 352))
        payload = json.dumps({_NIFTI_JSON_KEY: rec}, sort_keys=False).encode("utf-8")
        size = 8 + len(payload)
        size += (-size) % 16  # extensions are padded to a multiple of 16 bytes
        ext = struct.pack(order + "ii", size, NIFTI_COMMENT_CODE) + \
            payload.ljust(size - 8, b"\0")
        if head[348] != 0 and rest_of_header:  # extensions already there: keep them, add ours
            old = rest_of_header
        else:
            old = b""
        new_offset = 352 + len(old) + len(ext)
        new_head = head[:108] + struct.pack(order + "f", float(new_offset)) + head[112:348] + \
            bytes([1, 0, 0, 0])
        out = path.with_name(path.name + REWRITE_ENDING)  # a leftover is known by it
        try:
            with _open(out, "wb", gz) as g:
                g.write(new_head + old + ext)
                for block in iter(lambda: f.read(1 << 22), b""):
                    g.write(block)
            os.replace(out, path)
        finally:
            if out.exists():
                out.unlink()


def nifti_record(path: Path) -> Optional[Record]:
    try:
        with _open(path, "rb") as f:
            head = f.read(352)
            order, offset = _nifti_layout(head)
            if len(head) < 352 or head[348] == 0 or offset > 352 + (1 << 20):
                return None
            data = f.read(max(0, offset - 352))
    except (OSError, ValueError, EOFError, struct.error):
        return None
    at = 0
    while at + 8 <= len(data):
        size, code = struct.unpack(order + "ii", data[at:at + 8])
        if size < 16 or at + size > len(data):
            break
        if code == NIFTI_COMMENT_CODE:
            try:
                found = json.loads(data[at + 8:at + size].rstrip(b"\0").decode("utf-8"))
            except ValueError:
                found = None
            if isinstance(found, dict) and isinstance(found.get(_NIFTI_JSON_KEY), dict):
                return {str(k): str(v) for k, v in found[_NIFTI_JSON_KEY].items()}
        at += size
    return None


def read_provenance(path, series_uid: Optional[str] = None) -> Optional[Record]:
    """The record an output file holds (NRRD, MetaImage, NIfTI: its header only), a derived
    DICOM series' in a folder (:func:`hrinet.core.io.dicom.derived.reader.read_derived`;
    ``series_uid``: which series, default any derived one), or None."""
    if not path:
        return None
    p = Path(str(path))
    if p.is_dir():
        from hrinet.core.io import read_derived  # pydicom only for DICOM

        return read_derived(p, series_uid)
    if not p.is_file():
        return None
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return nifti_record(p)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        with quiet_native_output():
            reader.ReadImageInformation()
    except RuntimeError:
        return None
    rec = {k[len(FILE_PREFIX):]: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()
           if k.startswith(FILE_PREFIX)}
    return rec or None
