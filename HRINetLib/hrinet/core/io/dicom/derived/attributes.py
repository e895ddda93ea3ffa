"""What each slice of a derived series says: the attributes copied from the input series as
they are, the codes that mark it derived, its DerivationDescription, SeriesDescription and
SliceThickness, and its pixels stored as 16-bit CT values."""

from __future__ import annotations

import numpy as np
from pydicom.valuerep import DSfloat

from hrinet.core.errors import HRINetError
from hrinet.core.io.provenance.record import FIELDS, Record, content_line

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

#: What a derived series' DerivationDescription starts with (read back by
#: :func:`hrinet.core.io.dicom.derived.reader.read_derived`).
DESCRIPTION_START = "interpolated along z by hrinet"


def is_ours(ds) -> bool:
    return str(getattr(ds, "DerivationDescription", "")).startswith(DESCRIPTION_START)


def sop_uids(ds) -> tuple:
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


def stored_pixels(array: np.ndarray, template) -> tuple:
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


def to_ds(value: float):
    return DSfloat(float(value), auto_format=True)


def code_item(dataset_cls, code):
    item = dataset_cls()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def derivation_description(rec: Record) -> str:
    """DerivationDescription (at most 1024 characters): what made the series, in words a
    reader understands and :func:`read_derived` parses back."""
    parts = [f"{k}={rec[k]}" for k in FIELDS if rec.get(k, "") != ""
             and k not in ("synthesised_slices",)]
    text = f"{content_line(rec)}: " + "; ".join(parts)
    return text[:1024]


def series_description(template, rec: Record) -> str:
    base = str(getattr(template, "SeriesDescription", "") or "").strip()
    tail = f"interpolated x{rec.get('factor', '?')} {rec.get('method', '')}".strip()
    text = f"{base} {tail}" if base else tail
    return text if len(text) <= 64 else f"{base[:64 - len(tail) - 1]} {tail}"[:64]


def output_thickness(template, rec: Record, spacing: float) -> float:
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
