"""Reading and writing CT volumes (NRRD, NHDR, NIfTI, MHA/MHD, DICOM series) with SimpleITK.

DICOM series policy: slices are ordered by their position along the slice normal
(ImagePositionPatient projected on the cross product of ImageOrientationPatient). Duplicate
positions, missing slices and otherwise uneven gaps are *refused* with a message naming the gap,
because a regular output grid cannot place the known slices exactly on uneven positions; resample
or fix the series first. Folders holding several series read the one with the most slices (ties:
the first series UID in sorted order) unless ``series_uid`` names one; the choice is recorded in
``Volume.metadata["warnings"]``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Union

import numpy as np
import SimpleITK as sitk

from hrinet.core.atomic import atomic_write
from hrinet.core.errors import HRINetError, first_line
from hrinet.core.volume import Volume

PathLike = Union[str, os.PathLike]

READ_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
# Single-file formats only: a detached header and its data cannot be renamed into place atomically.
WRITE_EXTENSIONS = (".nrrd", ".nii", ".nii.gz", ".mha")
# Relative tolerance on DICOM slice gaps before a series counts as unevenly spaced.
GAP_TOLERANCE = 0.01


@contextmanager
def quiet_native_output() -> Iterator[None]:
    """Keep what C libraries print to stderr (GDCM, the NIfTI writer) off the user's terminal:
    their failures reach the user as the one-line error of the call they broke. Python's own
    ``sys.stderr`` writes are untouched."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect (e.g. a GUI process)
        yield
        return
    with open(os.devnull, "wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _volume_from_image(image: sitk.Image, source: str) -> Volume:
    dim = image.GetDimension()
    if dim == 2:
        raise HRINetError(f"{source} is a 2D image; give a 3D volume with at least 2 slices")
    if dim != 3:
        raise HRINetError(f"{source} has {dim} dimensions; give a single 3D volume "
                          "(split 4D series into 3D volumes first)")
    comps = image.GetNumberOfComponentsPerPixel()
    if comps != 1:
        raise HRINetError(f"{source} has {comps} components per voxel (vector/RGB image); "
                          "convert it to a single-channel grayscale volume first")
    spacing = image.GetSpacing()
    if any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise HRINetError(f"{source} has invalid voxel spacing {tuple(spacing)}; "
                          "fix the header so every spacing is a positive number of mm")
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(direction)) or abs(np.linalg.det(direction)) < 1e-6:
        raise HRINetError(f"{source} has a degenerate direction matrix (its axes are parallel "
                          "or zero); fix the header's space directions")
    cosines = np.abs(direction.T @ direction - np.eye(3)).max()
    if cosines > 1e-3:
        angle = float(np.degrees(np.arcsin(min(1.0, cosines))))
        raise HRINetError(f"{source} is sheared: its axes are {angle:.1f} degrees from "
                          "perpendicular, so its slices are not stacked straight; resample it onto "
                          "a regular grid first (e.g. Slicer's Resample Scalar Volume) and retry")
    array = sitk.GetArrayFromImage(image)
    return Volume(array=array, spacing=spacing, origin=image.GetOrigin(), direction=direction,
                  metadata={"source": source, "warnings": []})


def _read_file(path: Path) -> sitk.Image:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with quiet_native_output():
            return reader.Execute()
    except RuntimeError as exc:
        if "Zero-valued spacing" in str(exc):
            raise HRINetError(f"{path} has a zero voxel spacing in its header; fix the header "
                              "so every spacing is a positive number of mm") from None
        raise HRINetError(f"cannot read {path}: not a readable or complete image file "
                          f"({first_line(exc)}); check the file is a complete NRRD, NIfTI, MHA or "
                          "DICOM") from None


#: Largest angle between the slice normal and the line through the slice positions before a
#: series counts as gantry-tilted (sheared).
MAX_TILT_DEGREES = 0.5


def _dicom_positions(files: List[str]) -> np.ndarray:
    """Positions of each file's slice along the series' slice normal, in mm.

    Refuses gantry-tilted series, whose slices are shifted in-plane as they advance: a regular
    3D grid (and so any resampling along z) would shear the anatomy.
    """
    reader = sitk.ImageFileReader()
    positions, normal, ipps = [], None, []
    for f in files:
        reader.SetFileName(f)
        try:
            reader.ReadImageInformation()
            ipp = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
            iop = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
        except (RuntimeError, ValueError):
            raise HRINetError(f"cannot read the slice position of {f}; the DICOM file lacks "
                              "ImagePositionPatient/ImageOrientationPatient") from None
        if normal is None:
            normal = np.cross(iop[:3], iop[3:])
        positions.append(float(np.dot(ipp, normal)))
        ipps.append(ipp)
    ipps_arr = np.asarray(ipps)
    first, last = ipps_arr[np.argmin(positions)], ipps_arr[np.argmax(positions)]
    axis = last - first
    if np.linalg.norm(axis) > 0:
        cos = abs(float(np.dot(axis, normal))) / (np.linalg.norm(axis) * np.linalg.norm(normal))
        tilt = float(np.degrees(np.arccos(min(1.0, cos))))
        if tilt > MAX_TILT_DEGREES:
            raise HRINetError(
                f"the series has a gantry tilt of {tilt:.1f} degrees (slices are shifted "
                "in-plane as they advance); correct it first, e.g. Slicer's DICOM module with "
                "'Acquisition geometry regularization' enabled, then save and retry")
    return np.asarray(positions)


def check_even_spacing(positions: np.ndarray, source: str) -> float:
    """Return the slice gap of sorted ``positions``; refuse uneven or duplicate slices."""
    gaps = np.diff(positions)
    if len(gaps) == 0:
        return 1.0
    gap = float(np.median(gaps))
    if gap <= 0 or np.any(gaps <= 1e-6):
        raise HRINetError(f"{source} holds several slices at the same position (duplicate or "
                          "overlapping acquisitions); keep one slice per position and retry")
    bad = np.flatnonzero(np.abs(gaps - gap) > max(GAP_TOLERANCE * gap, 1e-3))
    if len(bad):
        i = int(bad[0])
        kind = "a missing slice" if gaps[i] > 1.5 * gap else "uneven spacing"
        raise HRINetError(
            f"{source} has {kind}: the gap between slices {i} and {i + 1} is {gaps[i]:.3f} mm "
            f"where the series' spacing is {gap:.3f} mm ({len(bad)} uneven gap(s)); resample the "
            "series to even spacing first (for example Slicer's Resample Scalar Volume)")
    return gap


def _dicom_tag(path: str, tag: str) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        with quiet_native_output():
            reader.ReadImageInformation()
        return reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
    except RuntimeError:
        return ""


def list_dicom_series(folder: PathLike) -> List[dict]:
    """The DICOM series in ``folder``, largest first: ``uid``, ``description``, ``modality``,
    ``slices``, ``pixel_spacing`` (text as stored), ``thickness`` (text as stored) and ``files``
    (GDCM's scan of a large folder is slow: the reader uses these instead of scanning again)."""
    with quiet_native_output():
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or []
    series = []
    for uid in ids:
        with quiet_native_output():
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        first = files[0] if files else ""
        series.append({"uid": uid, "slices": len(files), "files": list(files),
                       "description": _dicom_tag(first, "0008|103e") or "(no description)",
                       "modality": _dicom_tag(first, "0008|0060") or "?",
                       "pixel_spacing": _dicom_tag(first, "0028|0030").replace("\\", " x ") or "?",
                       "thickness": _dicom_tag(first, "0018|0050") or "?"})
    return sorted(series, key=lambda s: (-s["slices"], s["uid"]))


def _choose_series(folder: Path, series: List[dict], wanted: Optional[str]):
    """``(uid, warnings)``: the wanted series (a UID or its number in :func:`list_dicom_series`'
    order, from 1), else the largest with a warning when there are several."""
    if wanted is None:
        chosen = series[0]
        warnings = []
        if len(series) > 1:
            warnings.append(f"{folder} holds {len(series)} series; read the largest, "
                            f"{chosen['description']} ({chosen['slices']} slices); choose another "
                            "with --series N or UID (hrinet info lists them; series_uid= in "
                            "Python)")
        return chosen["uid"], warnings
    text = str(wanted).strip()
    if text.isdigit() and 1 <= int(text) <= len(series):
        return series[int(text) - 1]["uid"], []
    if text in {s["uid"] for s in series}:
        return text, []
    raise HRINetError(f"series {text} is not in {folder}; give a number from 1 to {len(series)} "
                      "or a series UID, as listed by hrinet info")


def _read_dicom_folder(folder: Path, series_uid: Optional[str]) -> Volume:
    series = list_dicom_series(folder)
    if not series:
        raise HRINetError(f"no DICOM series found in folder {folder}; point to a folder of "
                          "DICOM files or to a volume file")
    chosen, warnings = _choose_series(folder, series, series_uid)
    entry = next(s for s in series if s["uid"] == chosen)
    files = entry["files"]
    if len(files) < 2:
        raise HRINetError(f"DICOM series {chosen} in {folder} has {len(files)} slice; "
                          "interpolation needs at least 2 slices")
    positions = _dicom_positions(files)
    order = np.argsort(positions, kind="stable")
    files = [files[i] for i in order]
    gap = check_even_spacing(positions[order], str(folder))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        with quiet_native_output():
            image = reader.Execute()
    except RuntimeError as exc:
        raise HRINetError(f"cannot read the DICOM series in {folder} ({first_line(exc)})") from None
    sx, sy, _ = image.GetSpacing()
    image.SetSpacing((sx, sy, gap))
    volume = _volume_from_image(image, str(folder))
    volume.metadata["warnings"].extend(warnings)
    volume.metadata["series_uid"] = chosen
    # the folder's listing, for `hrinet info` (which then need not scan the folder again)
    volume.metadata["dicom_series"] = [{k: v for k, v in s.items() if k != "files"}
                                       for s in series]
    if entry["modality"] not in ("CT", "?"):
        volume.metadata["warnings"].append(
            f"the series' modality is {entry['modality']}, not CT; the learned models are trained on CT "
            "in Hounsfield units, so check the result or use the cubic method (--method cubic)")
    volume.metadata["slice_positions_mm"] = positions[order].tolist()
    thickness = _dicom_slice_thickness(files[0])
    if thickness is not None:
        volume.metadata["slice_thickness_mm"] = thickness
    return volume


def _dicom_slice_thickness(path: str) -> Optional[float]:
    """Slice Thickness (0018,0050) in mm, or None when absent or not a positive number."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
        value = float(reader.GetMetaData("0018|0050").strip())
    except (RuntimeError, ValueError):
        return None
    return value if value > 0 and np.isfinite(value) else None


def read_volume(path: PathLike, series_uid: Optional[str] = None) -> Volume:
    """Read a 3D scalar volume from a file or a DICOM series folder.

    Raises:
        HRINetError: missing path, unreadable file, empty folder, 2D, 4D or vector image,
            invalid spacing, or an unevenly spaced DICOM series.
    """
    p = Path(path)
    if not p.exists():
        raise HRINetError(f"{p} does not exist; check the path")
    if p.is_dir():
        return _read_dicom_folder(p, series_uid)
    if not os.access(p, os.R_OK):
        raise HRINetError(f"{p} is not readable; check its permissions")
    if p.stat().st_size == 0:
        raise HRINetError(f"{p} is empty (0 bytes); the file is incomplete")
    return _volume_from_image(_read_file(p), str(p))


def to_sitk(volume: Volume) -> sitk.Image:
    """A SimpleITK image with the volume's voxels and geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(volume.direction.ravel()))
    return image


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when two paths name the same file (or folder), even through links."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_output_path(out: PathLike, inputs: Iterable[PathLike] = (), overwrite: bool = False) -> Path:
    """Validate an output path before any work starts, so a bad one costs nothing.

    Raises:
        HRINetError: OUT is one of the inputs, exists without ``overwrite``, has an unknown
            extension, or its folder is missing or not writable.
    """
    out = Path(out)
    for src in inputs:
        if same_file(out, src):
            raise HRINetError(f"output {out} is the input file; choose another output path "
                              "(inputs are never overwritten)")
    if _suffix(out) not in WRITE_EXTENSIONS:
        raise HRINetError(f"cannot write {out}: unknown extension; use one of "
                          f"{', '.join(WRITE_EXTENSIONS)}")
    if out.is_dir():
        raise HRINetError(f"output {out} is a folder; give a file name such as {out / 'out.nrrd'}")
    if out.exists() and not overwrite:
        raise HRINetError(f"output {out} exists; allow replacing it (--overwrite) or choose "
                          "another name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise HRINetError(f"cannot write {out}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise HRINetError(f"cannot write {out}: no write permission in {parent}")
    return out


def write_volume(volume: Volume, path: PathLike, overwrite: bool = False,
                 compress: bool = True) -> Path:
    """Write ``volume`` atomically and verified: into a hidden file beside ``path``, read back and
    compared voxel for voxel, then moved into place.

    A failed write (full disk, no permission, a writer that reports errors only on stderr, as
    the NIfTI writer does) leaves neither a partial file nor a damaged previous file at ``path``.
    Without ``overwrite``, a file that appears at ``path`` meanwhile is never replaced.
    """
    out = check_output_path(path, overwrite=overwrite)

    def verify(tmp: Path) -> None:
        try:
            back = sitk.ReadImage(str(tmp))
        except RuntimeError:
            raise HRINetError("the written file cannot be read back (disk full?); free disk "
                              "space and retry") from None
        same = (back.GetSize() == tuple(int(v) for v in volume.shape_xyz) and
                np.array_equal(sitk.GetArrayViewFromImage(back), volume.array))
        if not same:
            raise HRINetError("the written file differs from the volume when read back (disk "
                              "full?); free disk space and retry")

    with atomic_write(out, overwrite=overwrite, verify=verify, suffix=_suffix(out)) as tmp:
        with quiet_native_output():
            image = to_sitk(volume)
            sitk.WriteImage(image, str(tmp), useCompression=compress)
            del image  # the copy made for the writer; the read-back needs the room
    return out


def describe(volume: Volume) -> str:
    """A short multi-line summary for ``hrinet info``."""
    a = volume.array
    x, y, z = volume.shape_xyz
    sx, sy, sz = volume.spacing
    lines = [
        f"source:     {volume.metadata.get('source', '?')}",
        f"size:       {x} x {y} x {z} (x, y, z)",
        f"spacing:    {sx:.4g} x {sy:.4g} x {sz:.4g} mm",
        f"origin:     {tuple(round(o, 4) for o in volume.origin)} mm (LPS)",
        f"direction:  {np.round(volume.direction, 4).tolist()}",
        f"pixel type: {a.dtype}",
        f"range:      {a.min()} .. {a.max()}",
        f"isotropic factor (z spacing / in-plane): {sz / min(sx, sy):.2f}",
    ]
    if volume.metadata.get("slice_thickness_mm"):
        t = volume.metadata["slice_thickness_mm"]
        lines.append(f"thickness:  {t:.4g} mm (DICOM Slice Thickness; {t / sz:.2f} x the spacing)")
    lines += [f"warning:    {w}" for w in volume.metadata.get("warnings", [])]
    return "\n".join(lines)
