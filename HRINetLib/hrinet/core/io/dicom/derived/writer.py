"""Writing a derived series: every output slice a CT Image with the input's attributes and
references to the acquired slices it was made from, written into a hidden folder beside the
output, read back and compared, and moved into place in one step."""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from hrinet.core.errors import HRINetError, first_line
from hrinet.core.io.atomic import current_umask
from hrinet.core.io.dicom.derived.attributes import (
    COPIED,
    CT_IMAGE_STORAGE,
    PROCESSING_EQUIPMENT,
    SOURCE_FOR_PROCESSING,
    SPATIAL_RESAMPLING,
    TYPE2_EMPTY,
    check_study,
    code_item,
    to_ds,
    derivation_description,
    output_thickness,
    series_description,
    sop_uids,
    stored_pixels,
)
from hrinet.core.io.dicom.derived.sources import source_instances
from hrinet.core.io.paths import PathLike
from hrinet.core.io.temp_names import temp_prefix
from hrinet.core.io.provenance.record import acquired_words, content_line, provenance_of
from hrinet.core.io.provenance.slices import parse_indices
from hrinet.core.volume import Volume


def write_derived_series(result: Volume, source: Union[PathLike, Sequence[PathLike]],
                         out: PathLike, overwrite: bool = False,
                         before_move: Optional[Callable[[Path], None]] = None) -> Path:
    """Write ``result`` (an :func:`hrinet.upsample_z` output of a DICOM series) as a derived
    CT series in the folder ``out``: written beside it, read back and compared, then moved into
    place (an earlier folder there replaced only with ``overwrite``).

    Args:
        result: the interpolated volume; its provenance
            (:func:`hrinet.core.io.provenance.record.record`) names the method, model and factor.
        source: the DICOM folder the input was read from, or its files (Slicer's database).
        out: the output folder (see
            :func:`hrinet.core.io.dicom.derived.checks.check_dicom_output`).
        overwrite: replace an earlier derived series at ``out``.
        before_move: called with the finished temporary folder just before it is moved into
            place (a batch records the folder's digest there).

    Raises:
        HRINetError: the input's files do not match the volume, values too large for 16 bits,
            or the write failed (nothing is left at ``out``).
    """
    out = Path(out)
    if isinstance(source, (str, os.PathLike)):  # a study's series read from its own subfolder
        source = Path(source) / result.metadata.get("series_folder", "")
    rec = provenance_of(result) or {}
    factor = int(rec.get("factor") or result.metadata.get("factor") or 1)
    sx, sy, sz = result.spacing
    sources = source_instances(source, result, sz * factor)
    template = sources[0]
    check_study(template, sop_uids(template)[1])
    modality = str(getattr(template, "Modality", "CT") or "CT")
    if modality != "CT":
        raise HRINetError(f"the input series' modality is {modality}; --format dicom writes CT "
                          "images: write a volume file (.nrrd) instead")
    n_out = result.array.shape[0]
    if (len(sources) - 1) * factor + 1 != n_out:
        raise HRINetError(f"the input series has {len(sources)} slices but the volume was made "
                          f"from {(n_out - 1) // factor + 1}; rerun on the unchanged folder")
    acquired = set(parse_indices(rec.get("acquired_slices", ""))) if rec else set()
    stored, representation, slope, intercept = stored_pixels(result.array, template)
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    series_uid = generate_uid()
    thickness = output_thickness(template, rec, sz)
    description = derivation_description(rec)
    d = result.direction
    orientation = [to_ds(v) for v in list(d[:, 0]) + list(d[:, 1])]
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
    common.SeriesDescription = series_description(template, rec)
    common.SeriesDate, common.SeriesTime = date, time
    image_type = list(getattr(template, "ImageType", []) or [])
    common.ImageType = ["DERIVED", "SECONDARY"] + (image_type[2:3] or ["AXIAL"])
    common.DerivationDescription = description
    common.DerivationCodeSequence = DicomSequence([code_item(Dataset, SPATIAL_RESAMPLING)])
    equipment = Dataset()
    equipment.Manufacturer = "hrinet"
    equipment.SoftwareVersions = rec.get("software", "hrinet")
    equipment.ContributionDateTime = now.strftime("%Y%m%d%H%M%S")
    equipment.ContributionDescription = content_line(rec)[:64] if rec else "interpolated"
    equipment.PurposeOfReferenceCodeSequence = DicomSequence([code_item(Dataset,
                                                                    PROCESSING_EQUIPMENT)])
    common.ContributingEquipmentSequence = DicomSequence([equipment])
    common.ContentDate, common.ContentTime = date, time
    common.InstanceCreationDate, common.InstanceCreationTime = date, time
    common.ImageOrientationPatient = orientation
    common.PixelSpacing = [to_ds(sy), to_ds(sx)]  # row spacing (y), then column spacing (x)
    common.SliceThickness = to_ds(thickness)
    common.SpacingBetweenSlices = to_ds(sz)
    common.SamplesPerPixel = 1
    common.PhotometricInterpretation = "MONOCHROME2"
    common.Rows, common.Columns = int(stored.shape[1]), int(stored.shape[2])
    common.BitsAllocated, common.BitsStored, common.HighBit = 16, 16, 15
    common.PixelRepresentation = representation
    common.RescaleIntercept, common.RescaleSlope = to_ds(intercept), to_ds(slope)
    common.BurnedInAnnotation = "NO"

    normal = d[:, 2]
    folder = out.parent if str(out.parent) else Path(".")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out.name), suffix=".partial", dir=folder))
    except OSError as exc:
        raise HRINetError(f"cannot write {out} ({first_line(exc)}); check that the folder "
                          "exists and is writable") from None
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        names = []
        for k in range(n_out):
            ds = Dataset()
            ds.update(common)
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = k + 1
            position = np.asarray(result.origin) + normal * sz * k
            ds.ImagePositionPatient = [to_ds(v) for v in position]
            ds.SliceLocation = to_ds(float(np.dot(position, normal)))
            before, frac = divmod(k, factor)
            refs = [before] if frac == 0 else [before, before + 1]
            items = []
            for i in refs:
                item = Dataset()
                item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_uids(sources[i])
                item.PurposeOfReferenceCodeSequence = DicomSequence(
                    [code_item(Dataset, SOURCE_FOR_PROCESSING)])
                items.append(item)
            ds.SourceImageSequence = DicomSequence(items)
            if k in acquired:  # a gantry tilt undone moved its pixels: then not "unchanged"
                ds.ImageComments = (f"acquired slice (input instance "
                                    f"{sop_uids(sources[before])[1]}, "
                                    f"{acquired_words(rec)})")
            elif frac == 0:
                ds.ImageComments = ("synthesised by hrinet (not acquired): restored from the "
                                    f"slab of input instance {sop_uids(sources[before])[1]}")
            else:
                ds.ImageComments = ("synthesised by hrinet (not acquired): interpolated "
                                    f"between input instances {sop_uids(sources[before])[1]} "
                                    f"and {sop_uids(sources[before + 1])[1]}")
            ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            name = f"IMG{k + 1:05d}.dcm"
            ds.save_as(tmp / name, enforce_file_format=True)
            names.append(name)
        _verify(tmp, names, stored)
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


def _verify(tmp: Path, names: List[str], stored: np.ndarray) -> None:
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
        old = Path(tempfile.mkdtemp(prefix=temp_prefix(out.name), suffix=".old", dir=tmp.parent))
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
