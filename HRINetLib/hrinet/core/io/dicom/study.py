"""The series of a DICOM folder or study: listing a folder's series (GDCM's scan), a study's
series in its subfolders (a folder per series, or a DICOMDIR's nested tree), what kind each
series is (image, scout, dose report, secondary capture), choosing one, and the files that
should be slices but could not be read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional

import pydicom
import SimpleITK as sitk

from hrinet.core.errors import HRINetError
from hrinet.core.io.dicom.multiframe import frame_summary
from hrinet.core.itk import quiet_native_output

#: Tags read once per series for its listing: (key, DICOM tag).
_LISTING_TAGS = (("description", "0008|103e"), ("modality", "0008|0060"),
                 ("pixel_spacing", "0028|0030"), ("thickness", "0018|0050"),
                 ("image_type", "0008|0008"), ("sop_class", "0008|0016"))

#: SOP classes that hold no cross-sectional image: secondary capture (1.2.840.10008.5.1.4.1.1.7
#: and its multi-frame kinds) and structured reports such as the dose report (...1.1.88).
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_STRUCTURED_REPORT = "1.2.840.10008.5.1.4.1.1.88"


def _dicom_tags(path: str) -> Dict[str, str]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        with quiet_native_output():
            reader.ReadImageInformation()
    except RuntimeError:
        return {key: "" for key, _ in _LISTING_TAGS}
    return {key: (reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else "")
            for key, tag in _LISTING_TAGS}


def series_kind(modality: str, image_type: str, sop_class: str) -> str:
    r"""What a series holds: ``"image"`` (a CT or other cross-sectional series, the only kind
    read by default), ``"scout"`` (ImageType LOCALIZER), ``"dose report"`` (a structured
    report, Modality SR) or ``"secondary capture"`` (screenshots, documents: Modality OT/DOC).

    Example:
        >>> series_kind("CT", "ORIGINAL\\PRIMARY\\LOCALIZER", ""), series_kind("SR", "", "")
        ('scout', 'dose report')
    """
    modality = modality.upper().strip()
    if modality in ("SR", "KO", "PR") or sop_class.startswith(_STRUCTURED_REPORT):
        return "dose report" if modality in ("SR", "") else "report"
    if modality in ("OT", "DOC", "SC") or sop_class.startswith(_SECONDARY_CAPTURE):
        return "secondary capture"
    if "LOCALIZER" in image_type.upper():
        return "scout"
    return "image"


def _series_tags(files: List[str]):
    """``(kind, tags)`` of a series from its first, middle and last files: the kind most of
    them have (a scout filed under the series' UID and sorted first does not make the series a
    scout), and the tags of a file of that kind."""
    picks = sorted({0, len(files) // 2, len(files) - 1})
    tagged = [_dicom_tags(files[i]) for i in picks]
    kinds = [series_kind(t["modality"], t["image_type"], t["sop_class"]) for t in tagged]
    kind = max(kinds, key=lambda k: (kinds.count(k), k == "image"))
    return kind, tagged[kinds.index(kind)]


def list_dicom_series(folder) -> List[dict]:
    """The DICOM series in ``folder`` (not its subfolders), CT and other image series first,
    then scouts, reports and secondary captures, each group largest first: ``uid``,
    ``description``, ``modality``, ``kind`` (:func:`series_kind`), ``slices``,
    ``pixel_spacing`` (text as stored), ``thickness`` (text as stored), ``folder`` ("" here)
    and ``files`` (GDCM's scan of a large folder is slow: the reader uses these instead of
    scanning again)."""
    with quiet_native_output():
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or []
    series = []
    for uid in ids:
        with quiet_native_output():
            files = [f for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
                     if not Path(f).name.upper().startswith("DICOMDIR")]
        if not files:
            continue
        kind, tags = _series_tags(files)
        series.append({"uid": uid, "slices": len(files), "files": list(files), "folder": "",
                       "description": tags["description"] or "(no description)",
                       "modality": tags["modality"] or "?", "kind": kind,
                       "pixel_spacing": tags["pixel_spacing"].replace("\\", " x ") or "?",
                       "thickness": tags["thickness"] or "?"})
        if len(files) == 1:  # one multi-frame file: its frames are the slices
            series[-1].update(frame_summary(Path(files[0])) or {})
    return sorted(series, key=lambda s: (s["kind"] != "image", -s["slices"], s["uid"]))


#: How deep :func:`study_series` looks into subfolders (a DICOMDIR export nests patient,
#: study and series folders).
MAX_STUDY_DEPTH = 6


def study_series(folder: Path) -> List[dict]:
    """The series of ``folder``; where it holds none itself (a study as a hospital exports it:
    a folder per series, or a DICOMDIR with its files in nested folders), those of its
    subfolders, each with its ``folder`` relative to ``folder``, ordered as
    :func:`list_dicom_series` orders them."""
    series = list_dicom_series(folder)
    if series:
        return series
    found = []
    root = Path(folder)
    for here, dirs, files in os.walk(root):
        rel = Path(here).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) \
            if len(rel.parts) < MAX_STUDY_DEPTH else []
        if rel.parts and any(not f.startswith(".") for f in files):
            for s in list_dicom_series(here):
                s["folder"] = rel.as_posix()
                found.append(s)
    return sorted(found, key=lambda s: (s["kind"] != "image", -s["slices"], s["folder"],
                                        s["uid"]))


def _series_name(s: dict) -> str:
    where = f" in {s['folder']}" if s.get("folder") else ""
    return f"{s['description']}{where} ({s['slices']} slices)"


def choose_series(folder: Path, series: List[dict], wanted: Optional[str]):
    """``(entry, warnings)``: the wanted series (a UID, its number in :func:`study_series`'
    order from 1, or its subfolder), else the largest image series (never a scout, report or
    secondary capture), with a warning when there are several."""
    images = [s for s in series if s.get("kind", "image") == "image"]
    if wanted is None:
        if not images:
            kinds = sorted({s["kind"] for s in series})
            raise HRINetError(f"{folder} holds no CT or other image series, only "
                              f"{' and '.join(kinds)} ({len(series)} series); choose one with "
                              "--series N or UID if you mean it (hrinet info lists them)")
        chosen = images[0]
        warnings = []
        if len(series) > 1:
            others = len(series) - len(images)
            aside = (f" ({others} scout, report or secondary-capture series set aside)"
                     if others else "")
            warnings.append(f"{folder} holds {len(series)} series{aside}; read the largest, "
                            f"{_series_name(chosen)}; choose another with --series N or UID "
                            "(hrinet info lists them; series_uid= in Python)")
        return chosen, warnings
    text = str(wanted).strip()
    if text.isdigit() and 1 <= int(text) <= len(series):
        return series[int(text) - 1], []
    matches = [s for s in series if s["uid"] == text] or \
        [s for s in series if s.get("folder") and s["folder"] == text.strip("/")]
    if len(matches) == 1:
        return matches[0], []
    if len(matches) > 1:
        raise HRINetError(f"{text} names {len(matches)} series in {folder}; give its number "
                          "as listed by hrinet info")
    raise HRINetError(f"series {text} is not in {folder}; give a number from 1 to {len(series)} "
                      "or a series UID, as listed by hrinet info")


#: File names that are never slices (listings, notes, the DICOMDIR index).
NOT_SLICES = ("DICOMDIR", "README", "LICENSE")


def _looks_like_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".ima", ".dicom"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def unreadable_files(folder: Path, series: List[dict]) -> List[str]:
    """Files of ``folder`` that should be slices but are in no series GDCM could read: a DICOM
    file cut off or damaged, a broken link, a pipe or another special file."""
    read = {str(Path(f).resolve()) for s in series for f in s["files"]}
    bad, odd = [], []  # odd entries first: they can also upset GDCM's scan of the rest
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name.upper().startswith(NOT_SLICES):
            continue
        if entry.is_symlink() and not entry.exists():
            odd.append(f"{entry.name} (a broken link)")
        elif entry.exists() and not entry.is_file() and not entry.is_dir():
            odd.append(f"{entry.name} (not a regular file)")
        elif entry.is_file() and str(entry.resolve()) not in read and _looks_like_dicom(entry):
            bad.append(f"{entry.name} (a DICOM file that cannot be read: cut off or damaged)")
    return odd + bad


def dicomdir_missing(folder: Path, series_uid: str) -> List[Path]:
    """The files a DICOMDIR in ``folder`` lists for the series ``series_uid`` that are not
    there (a study copied from its CD or DVD in part): each would be a slice left out. Records
    are read in the order DICOMDIRs are written (each IMAGE after its SERIES); an index that
    cannot be read lists nothing (the folder's files are still read as they are)."""
    index = _existing(Path(folder), "DICOMDIR")
    if index is None or not index.is_file():
        return []
    try:
        records = pydicom.dcmread(str(index)).DirectoryRecordSequence
    except Exception:  # noqa: BLE001 - a damaged index: the files decide, as without one
        return []
    missing, current = [], None
    for record in records:
        kind = str(record.get("DirectoryRecordType", "")).strip().upper()
        if kind == "SERIES":
            current = str(record.get("SeriesInstanceUID", ""))
        elif current == series_uid and "ReferencedFileID" in record:
            parts = record.ReferencedFileID
            parts = [parts] if isinstance(parts, str) else list(parts)
            path = Path(folder)
            for part in parts:  # a CD read on Linux may show its names in lower case
                path = _existing(path, part) or path / part
            if not path.exists():
                missing.append(path)
    return missing


def _existing(folder: Path, name: str) -> Optional[Path]:
    """``folder / name`` as it exists, its letter case aside (ISO 9660 names are upper case,
    and systems show them as either), or None."""
    exact = folder / name
    if exact.exists():
        return exact
    try:
        return next((folder / n for n in os.listdir(folder) if n.upper() == name.upper()),
                    None)
    except OSError:
        return None
