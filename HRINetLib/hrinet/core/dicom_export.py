"""A derived DICOM series for an interpolated volume: what a PACS shows as a new series of the
same study, marked as derived and never as an acquisition.

Each output slice is a CT Image (PS3.3 A.3) with the input series' patient, study, frame of
reference, equipment and acquisition attributes copied as they are (never invented; an absent
type 2 attribute stays empty), and new SeriesInstanceUID and SOPInstanceUIDs. ImageType is
DERIVED\\SECONDARY, DerivationDescription names the software, method, model, factor and which
slices are acquired (:mod:`hrinet.core.provenance`), DerivationCodeSequence is DCM 113085
"Spatial resampling", and SourceImageSequence references the acquired slices each output slice
was made from. ContributingEquipmentSequence names hrinet as the processing equipment.

The input's SOP instances are read here with pydicom (header only) from the folder or files the
volume was read from, matched to the volume's slices by position. The series is written into a
hidden folder beside the output, read back and compared, and moved into place in one step.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

from hrinet.core.atomic import file_sha256
from hrinet.core.errors import HRINetError, first_line
from hrinet.core.provenance import (
    FIELDS,
    Record,
    content_line,
    format_indices,
    parse_indices,
    provenance_of,
)
from hrinet.core.volume import Volume

PathLike = Union[str, os.PathLike]

#: SOP Class of every output slice.
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: DerivationCodeSequence of the output (DICOM CID 7203).
SPATIAL_RESAMPLING = ("113085", "DCM", "Spatial resampling")
#: Purpose of reference of each SourceImageSequence item (CID 7202).
SOURCE_FOR_PROCESSING = ("121322", "DCM", "Source image for image processing operation")
#: Purpose of the ContributingEquipmentSequence item naming hrinet (CID 7005).
PROCESSING_EQUIPMENT = ("109102", "DCM", "Processing Equipment")

#: Attributes copied from the input series as they are: patient, study, frame of reference,
#: equipment, the acquisition and the display.
COPIED = (
    # Patient, Clinical Trial Subject
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientBirthTime",
    "PatientSex", "OtherPatientIDsSequence", "PatientComments", "PatientIdentityRemoved",
    "DeidentificationMethod", "DeidentificationMethodCodeSequence", "EthnicGroup",
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialSubjectID",
    # General Study, Patient Study
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber", "IssuerOfAccessionNumberSequence", "StudyDescription", "PatientAge",
    "PatientSize", "PatientWeight",
    # General Series (those that describe the patient and the body part)
    "PatientPosition", "BodyPartExamined", "Laterality",
    # Frame of Reference
    "FrameOfReferenceUID", "PositionReferenceIndicator",
    # General Equipment (the scanner that acquired the slices; hrinet is a contributor)
    "Manufacturer", "InstitutionName", "InstitutionAddress", "StationName",
    "InstitutionalDepartmentName", "ManufacturerModelName", "DeviceSerialNumber",
    "SoftwareVersions",
    # CT Image, General Acquisition, Contrast/Bolus
    "KVP", "AcquisitionNumber", "ConvolutionKernel", "ContrastBolusAgent",
    "ContrastBolusAgentSequence", "ContrastBolusRoute", "RescaleType",
    # Image Pixel compression history, VOI LUT
    "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod",
    "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation",
)
#: Type 2 attributes of the CT Image IOD written empty when the input has none.
TYPE2_EMPTY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
               "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
               "PositionReferenceIndicator", "Manufacturer", "KVP", "AcquisitionNumber",
               "SeriesNumber", "Laterality", "PatientOrientation")

#: What a derived series' DerivationDescription starts with (read back by :func:`read_derived`).
DESCRIPTION_START = "interpolated along z by hrinet"


def add_format_argument(parser) -> None:
    """``--format file|dicom`` of ``hrinet interpolate`` and ``hrinet batch``."""
    parser.add_argument("--format", choices=("file", "dicom"), default="file",
                        help="file: the output's extension chooses the format (default); "
                        "dicom: the output is a folder for a derived DICOM series of the "
                        "input's study (DICOM input only)")


def _pydicom():
    """pydicom, a dependency of the package (the derived series is written with it)."""
    return pydicom


# ---- checks before any work ---------------------------------------------------------------
def check_dicom_output(out: PathLike, source: Union[PathLike, Sequence[PathLike]],
                       overwrite: bool = False) -> Path:
    """Validate ``--format dicom`` before any work: the input is a DICOM folder (or its files),
    the output a folder outside it that is new, empty, or (with ``overwrite``) an earlier
    derived series of hrinet's, in an existing folder it may write to.

    Raises:
        HRINetError: one line naming the problem and what to do.
    """
    out = Path(out)
    if not isinstance(source, (str, os.PathLike)):  # the series' files (Slicer's database)
        files = [Path(f) for f in source]
        source = files[0].parent if files else Path(".")
    source = Path(source)
    if not source.is_dir():
        raise HRINetError(f"--format dicom needs a DICOM series folder as input (the new series "
                          f"copies its patient and study); {source} is a file: write a volume "
                          "file (.nrrd) instead")
    if out.name.lower().endswith((".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")):
        raise HRINetError(f"with --format dicom the output is a folder; give a folder name "
                          f"without the extension of {out.name}")
    here, there = source.resolve(), out.resolve()
    if there == here or here in there.parents or there in here.parents:
        raise HRINetError(f"output folder {out} is the input folder, inside it or holds it; "
                          "choose a folder outside the input (inputs are never modified)")
    if out.is_symlink() and not out.exists():
        raise HRINetError(f"output {out} is a symbolic link to nothing; remove the link or "
                          "choose another name")
    if out.exists() and not out.is_dir():
        raise HRINetError(f"output {out} is a file; with --format dicom give a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise HRINetError(f"output folder {out} exists and is not empty; allow replacing "
                              "it (--overwrite) or choose another name")
        if not is_derived_folder(out):
            raise HRINetError(f"output folder {out} holds files that are not a derived series "
                              "written by hrinet; it is left as it is: choose another name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise HRINetError(f"cannot write {out}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise HRINetError(f"cannot write {out}: no write permission in {parent}")
    _check_first_slice(source)
    return out


def _check_first_slice(folder: Path) -> None:
    """Before any work: the folder's first DICOM slice has the study's UIDs (the series read
    is checked again when written)."""
    pydicom = _pydicom()
    for path in _source_files(folder):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "ImagePositionPatient" in ds:
            check_study(ds, path.name)
            return


def is_derived_folder(folder: Path) -> bool:
    """Whether every file in ``folder`` is a slice of a derived series hrinet wrote (what
    ``--overwrite`` may replace)."""
    pydicom = _pydicom()
    files = [p for p in Path(folder).iterdir()]
    if not files:
        return True
    for p in files:
        if not p.is_file() or p.is_symlink():
            return False
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:  # not DICOM at all
            return False
        if not _is_ours(ds):
            return False
    return True


def _is_ours(ds) -> bool:
    return str(getattr(ds, "DerivationDescription", "")).startswith(DESCRIPTION_START)


# ---- the input's instances ----------------------------------------------------------------
def _source_files(source: Union[PathLike, Sequence[PathLike]]) -> List[Path]:
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        return sorted(p for p in folder.iterdir()
                      if p.is_file() and not p.name.startswith(".")
                      and p.name.upper() != "DICOMDIR")
    return [Path(p) for p in source]


def source_instances(source: Union[PathLike, Sequence[PathLike]], volume: Volume,
                     input_spacing: float, series_uid: Optional[str] = None) -> list:
    """The input series' slices (pydicom datasets, header only) in the order of the volume's
    input slices: matched by their position along the volume's slice axis.

    Args:
        source: the DICOM folder the volume was read from, or its files.
        volume: the output (or input) volume, whose origin is the first input slice.
        input_spacing: the input's slice spacing in mm.
        series_uid: the series read (default: the volume's ``series_uid``, else the only one).

    Raises:
        HRINetError: no slices of the series, or slices that do not match the volume's.
    """
    pydicom = _pydicom()
    uid = series_uid or volume.metadata.get("series_uid")
    found = []
    for path in _source_files(source):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue  # not a slice (the reader named any DICOM file it could not read)
        if not _sop(ds)[1] or "ImagePositionPatient" not in ds:
            continue
        if uid and str(getattr(ds, "SeriesInstanceUID", "")) != uid:
            continue
        found.append(ds)
    if not found:
        raise HRINetError(f"no slices of series {uid or '?'} found in {source}; the derived "
                          "series needs the input's DICOM files")
    if not uid and len({str(getattr(d, "SeriesInstanceUID", "")) for d in found}) > 1:
        raise HRINetError(f"{source} holds several series; choose one with --series")
    origin = np.asarray(volume.origin)
    axis = volume.direction[:, 2]
    n_in = None
    slices: Dict[int, object] = {}
    for ds in found:
        t = float(np.dot(np.asarray([float(v) for v in ds.ImagePositionPatient]) - origin,
                         axis)) / input_spacing
        i = int(round(t))
        if abs(t - i) > 0.05 or i < 0 or i in slices:
            raise HRINetError(f"slice {_sop(ds)[1]} of the input series lies off the "
                              "volume's slices; the series changed since it was read: rerun")
        slices[i] = ds
    n_in = max(slices) + 1
    if sorted(slices) != list(range(n_in)):
        raise HRINetError("the input series' slices do not match the volume read (a slice is "
                          "missing); rerun on the unchanged folder")
    return [slices[i] for i in range(n_in)]


def _sop(ds) -> tuple:
    """``(SOP Class UID, SOP Instance UID)`` of a slice: its own, else its file meta's (some
    de-identification tools blank the former and keep the latter)."""
    meta = getattr(ds, "file_meta", None)
    cls = str(getattr(ds, "SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", "")
              or "")
    uid = str(getattr(ds, "SOPInstanceUID", "") or
              getattr(meta, "MediaStorageSOPInstanceUID", "") or "")
    return cls, uid


def check_study(ds, where) -> None:
    """Refuse a source without the UIDs the derived series must share (never invented)."""
    missing = [k for k in ("StudyInstanceUID", "FrameOfReferenceUID")
               if not str(getattr(ds, k, "") or "").strip()]
    if missing:
        raise HRINetError(f"the input series has no {' or '.join(missing)} ({where}; blanked by "
                          "de-identification?); a derived series must belong to the input's "
                          "study and frame of reference: write a volume file (.nrrd) instead")


# ---- pixels -------------------------------------------------------------------------------
def _stored_pixels(array: np.ndarray, template) -> tuple:
    """``(stored array, pixel representation, slope, intercept)`` for 16-bit CT pixels: integer
    volumes as they are; other values in the input's own rescale step (an acquired slice's
    values come back exactly).

    Raises:
        HRINetError: values that 16 bits cannot hold."""
    lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if np.issubdtype(array.dtype, np.integer) or np.array_equal(array, np.rint(array)):
        if -32768 <= lo and hi <= 32767:
            return array.astype(np.int16, copy=False), 1, 1.0, 0.0
        if 0 <= lo and hi <= 65535:
            return array.astype(np.uint16, copy=False), 0, 1.0, 0.0
    slope = float(getattr(template, "RescaleSlope", 1) or 1)
    intercept = float(getattr(template, "RescaleIntercept", 0) or 0)
    if (hi - intercept) / slope <= 32767 and (lo - intercept) / slope >= -32768:
        stored = np.rint((array - intercept) / slope).astype(np.int16)
        return stored, 1, slope, intercept
    raise HRINetError(f"the volume's values ({lo:g} .. {hi:g}) do not fit 16-bit DICOM pixels; "
                      "write a volume file (.nrrd) instead")


def _ds(value: float):

    return DSfloat(float(value), auto_format=True)


def _code(dataset_cls, code):
    item = dataset_cls()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


# ---- writing ------------------------------------------------------------------------------
def derivation_description(rec: Record) -> str:
    """DerivationDescription (at most 1024 characters): what made the series, in words a
    reader understands and :func:`read_derived` parses back."""
    parts = [f"{k}={rec[k]}" for k in FIELDS if rec.get(k, "") != ""
             and k not in ("synthesised_slices",)]
    text = f"{content_line(rec)}: " + "; ".join(parts)
    return text[:1024]


def _series_description(template, rec: Record) -> str:
    base = str(getattr(template, "SeriesDescription", "") or "").strip()
    tail = f"interpolated x{rec.get('factor', '?')} {rec.get('method', '')}".strip()
    text = f"{base} {tail}" if base else tail
    return text if len(text) <= 64 else f"{base[:64 - len(tail) - 1]} {tail}"[:64]


def write_derived_series(result: Volume, source: Union[PathLike, Sequence[PathLike]],
                         out: PathLike, overwrite: bool = False,
                         before_move: Optional[Callable[[Path], None]] = None) -> Path:
    """Write ``result`` (an :func:`hrinet.upsample_z` output of a DICOM series) as a derived
    CT series in the folder ``out``: written beside it, read back and compared, then moved into
    place (an earlier folder there replaced only with ``overwrite``).

    Args:
        result: the interpolated volume; its provenance (:func:`provenance.record`) names the
            method, model and factor.
        source: the DICOM folder the input was read from, or its files (Slicer's database).
        out: the output folder (see :func:`check_dicom_output`).
        overwrite: replace an earlier derived series at ``out``.
        before_move: called with the finished temporary folder just before it is moved into
            place (a batch records the folder's digest there).

    Raises:
        HRINetError: the input's files do not match the volume, values too large for 16 bits,
            or the write failed (nothing is left at ``out``).
    """
    pydicom = _pydicom()

    out = Path(out)
    rec = provenance_of(result) or {}
    factor = int(rec.get("factor") or result.metadata.get("factor") or 1)
    sx, sy, sz = result.spacing
    sources = source_instances(source, result, sz * factor)
    template = sources[0]
    check_study(template, _sop(template)[1])
    modality = str(getattr(template, "Modality", "CT") or "CT")
    if modality != "CT":
        raise HRINetError(f"the input series' modality is {modality}; --format dicom writes CT "
                          "images: write a volume file (.nrrd) instead")
    n_out = result.array.shape[0]
    if (len(sources) - 1) * factor + 1 != n_out:
        raise HRINetError(f"the input series has {len(sources)} slices but the volume was made "
                          f"from {(n_out - 1) // factor + 1}; rerun on the unchanged folder")
    acquired = set(parse_indices(rec.get("acquired_slices", ""))) if rec else set()
    stored, representation, slope, intercept = _stored_pixels(result.array, template)
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    series_uid = generate_uid()
    thickness = _output_thickness(template, rec, sz)
    description = derivation_description(rec)
    d = result.direction
    orientation = [_ds(v) for v in list(d[:, 0]) + list(d[:, 1])]
    series_number = getattr(template, "SeriesNumber", None)

    common = Dataset()
    for keyword in COPIED:
        if keyword in template:
            setattr(common, keyword, template.data_element(keyword).value)
    for keyword in TYPE2_EMPTY:
        if keyword not in common:
            setattr(common, keyword, None)
    if "SpecificCharacterSet" in template:
        common.SpecificCharacterSet = template.SpecificCharacterSet
    common.SOPClassUID = CT_IMAGE_STORAGE
    common.Modality = "CT"
    common.SeriesInstanceUID = series_uid
    common.SeriesNumber = (int(series_number) + 1000) if series_number not in (None, "") \
        else None
    common.SeriesDescription = _series_description(template, rec)
    common.SeriesDate, common.SeriesTime = date, time
    image_type = list(getattr(template, "ImageType", []) or [])
    common.ImageType = ["DERIVED", "SECONDARY"] + (image_type[2:3] or ["AXIAL"])
    common.DerivationDescription = description
    common.DerivationCodeSequence = DicomSequence([_code(Dataset, SPATIAL_RESAMPLING)])
    equipment = Dataset()
    equipment.Manufacturer = "hrinet"
    equipment.SoftwareVersions = rec.get("software", "hrinet")
    equipment.ContributionDateTime = now.strftime("%Y%m%d%H%M%S")
    equipment.ContributionDescription = content_line(rec)[:64] if rec else "interpolated"
    equipment.PurposeOfReferenceCodeSequence = DicomSequence([_code(Dataset,
                                                                    PROCESSING_EQUIPMENT)])
    common.ContributingEquipmentSequence = DicomSequence([equipment])
    common.ContentDate, common.ContentTime = date, time
    common.InstanceCreationDate, common.InstanceCreationTime = date, time
    common.ImageOrientationPatient = orientation
    common.PixelSpacing = [_ds(sy), _ds(sx)]  # row spacing (y), then column spacing (x)
    common.SliceThickness = _ds(thickness)
    common.SpacingBetweenSlices = _ds(sz)
    common.SamplesPerPixel = 1
    common.PhotometricInterpretation = "MONOCHROME2"
    common.Rows, common.Columns = int(stored.shape[1]), int(stored.shape[2])
    common.BitsAllocated, common.BitsStored, common.HighBit = 16, 16, 15
    common.PixelRepresentation = representation
    common.RescaleIntercept, common.RescaleSlope = _ds(intercept), _ds(slope)
    common.BurnedInAnnotation = "NO"

    normal = d[:, 2]
    folder = out.parent if str(out.parent) else Path(".")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=folder))
    except OSError as exc:
        raise HRINetError(f"cannot write {out} ({first_line(exc)}); check that the folder "
                          "exists and is writable") from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        names = []
        for k in range(n_out):
            ds = Dataset()
            ds.update(common)
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = k + 1
            position = np.asarray(result.origin) + normal * sz * k
            ds.ImagePositionPatient = [_ds(v) for v in position]
            ds.SliceLocation = _ds(float(np.dot(position, normal)))
            before, frac = divmod(k, factor)
            refs = [before] if frac == 0 else [before, before + 1]
            items = []
            for i in refs:
                item = Dataset()
                item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = _sop(sources[i])
                item.PurposeOfReferenceCodeSequence = DicomSequence(
                    [_code(Dataset, SOURCE_FOR_PROCESSING)])
                items.append(item)
            ds.SourceImageSequence = DicomSequence(items)
            if k in acquired:
                ds.ImageComments = (f"acquired slice (input instance "
                                    f"{_sop(sources[before])[1]}, unchanged)")
            elif frac == 0:
                ds.ImageComments = ("synthesised by hrinet (not acquired): restored from the "
                                    f"slab of input slice {before + 1}")
            else:
                ds.ImageComments = ("synthesised by hrinet (not acquired): interpolated "
                                    f"between input slices {before + 1} and {before + 2}")
            ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            name = f"IMG{k + 1:05d}.dcm"
            ds.save_as(tmp / name, enforce_file_format=True)
            names.append(name)
        _verify(tmp, names, stored, pydicom)
        if before_move is not None:
            before_move(tmp)
        _move_into_place(tmp, out, overwrite)
    except HRINetError:
        raise
    except (OSError, ValueError) as exc:
        raise HRINetError(f"cannot write {out} ({first_line(exc)}); check free disk space and "
                          "write permission; nothing was written") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _output_thickness(template, rec: Record, spacing: float) -> float:
    """The thickness an output slice represents: the output spacing where the slices are thin
    (thin input, or slabs restored by the model), else the input's slab thickness, which the
    acquired slices keep and the synthesised ones cannot be finer than."""
    if rec.get("acquired_restored") == "yes":
        return spacing
    try:
        source = float(getattr(template, "SliceThickness", 0) or 0)
    except (TypeError, ValueError):
        source = 0.0
    return max(spacing, source)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _verify(tmp: Path, names: List[str], stored: np.ndarray, pydicom) -> None:
    for k, name in enumerate(names):
        try:
            back = pydicom.dcmread(tmp / name).pixel_array
        except Exception:
            back = None
        if back is None or not np.array_equal(back, stored[k]):
            raise HRINetError("the written series differs from the volume when read back (disk "
                              "full?); free disk space and retry")


def _move_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished folder to ``out`` in one rename; an earlier folder there (empty, or
    with ``overwrite`` an earlier derived series) is moved aside first and removed after."""
    old = None
    if out.exists():
        if any(out.iterdir()) and not overwrite:
            raise HRINetError(f"{out} appeared while this was being written (another run?); it "
                              "was left as it is and nothing was written")
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=tmp.parent))
        os.replace(out, old / "previous")
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old / "previous", out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ---- reading back -------------------------------------------------------------------------
def read_derived(folder: PathLike, series_uid: Optional[str] = None) -> Optional[Record]:
    """The provenance record of a derived series hrinet wrote in ``folder`` (of the series
    ``series_uid``, default the first found), parsed from its DerivationDescription; None for
    any other folder."""
    try:
        pydicom = _pydicom()
    except HRINetError:
        return None
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if series_uid and str(getattr(ds, "SeriesInstanceUID", "")) != series_uid:
            continue
        if not _is_ours(ds):
            return None
        text = str(ds.DerivationDescription)
        rec = {}
        for part in text.split(": ", 1)[-1].split("; "):
            key, _, value = part.partition("=")
            if key in FIELDS:
                rec[key] = value
        if "acquired_slices" in rec and "output_slices" in rec:
            known = set(parse_indices(rec["acquired_slices"]))
            rec["synthesised_slices"] = format_indices(
                i for i in range(int(rec["output_slices"])) if i not in known)
        return rec or None
    return None


def folder_sha256(folder: PathLike) -> str:
    """One digest for a folder's files: sha256 over their names and contents' sha256, in name
    order (what a batch records as its output's fingerprint)."""

    h = hashlib.sha256()
    root = Path(folder)
    for path in sorted(root.rglob("*")):  # any entry added (a subfolder, a link) changes it
        name = os.fsencode(str(path.relative_to(root))).decode("utf-8", "backslashreplace")
        if path.is_symlink() or not path.is_file():
            h.update(f"{name}\0{'link' if path.is_symlink() else 'folder'}\n".encode("utf-8"))
        else:
            h.update(f"{name}\0{file_sha256(path)}\n".encode("utf-8"))
    return h.hexdigest()
