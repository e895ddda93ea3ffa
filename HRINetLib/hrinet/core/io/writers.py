"""Writing CT volumes (NRRD, NIfTI, MHA) with SimpleITK: atomically
(:mod:`hrinet.core.io.atomic`), verified, and with the provenance of an interpolation result in
the file (:mod:`hrinet.core.io.provenance`). A derived DICOM series is written by
:mod:`hrinet.core.io.dicom.derived.writer`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hrinet.core.errors import HRINetError
from hrinet.core.io.atomic import atomic_write
from hrinet.core.io.headers import check_file
from hrinet.core.io.paths import PathLike, check_output_path, file_suffix
from hrinet.core.io.provenance.files import add_nifti_extension, stamp_image
from hrinet.core.io.provenance.record import provenance_of
from hrinet.core.itk import quiet_native_output, to_sitk
from hrinet.core.volume import Volume, non_finite_counts


def check_finite(volume: Volume, path: PathLike) -> None:
    """Refuse to write ``volume`` at ``path`` when it holds NaN or infinite values: one line
    naming how many, before any file is made."""
    nan, inf = non_finite_counts(volume.array)
    if nan or inf:
        kinds = " and ".join(w for n, w in ((nan, f"{nan} NaN"), (inf, f"{inf} infinite"))
                             if n)
        raise HRINetError(f"cannot write {path}: the volume holds {nan + inf} non-finite values "
                          f"({kinds}) of {volume.array.size} voxels; nothing was written: "
                          "replace them (for example with the background value) first")


def write_volume(volume: Volume, path: PathLike, overwrite: bool = False,
                 compress: bool = True, what: str = "") -> Path:
    """Write ``volume`` atomically and verified: into a hidden file beside ``path``, read back and
    compared voxel for voxel, then moved into place.

    An interpolation result carries its provenance into the file
    (:mod:`hrinet.core.io.provenance`): NRRD key/value fields and ``content``, MetaImage header
    keys, NIfTI ``descrip`` and a comment extension.

    A failed write (full disk, no permission, a writer that reports errors only on stderr, as
    the NIfTI writer does) leaves neither a partial file nor a damaged previous file at ``path``.
    Without ``overwrite``, a file that appears at ``path`` meanwhile is never replaced.

    A volume holding NaN or infinite values is refused before anything is written
    (:func:`check_finite`): no file format keeps them as voxels a reader can use.
    ``what`` names the file in error messages (default its path; a caller writing into its own
    hidden file names the output the user knows).
    """
    out = check_output_path(path, overwrite=overwrite)
    check_finite(volume, what or out)

    def verify(tmp: Path) -> None:
        check_file(tmp)  # a cut-off NIfTI file reads back zero-filled: its size is checked first
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

    rec = provenance_of(volume)  # an interpolation result says how it was made
    suffix = file_suffix(out)
    with atomic_write(out, overwrite=overwrite, verify=verify, suffix=suffix,
                      what=what) as tmp:
        with quiet_native_output():
            image = to_sitk(volume)
            if rec:
                stamp_image(image, rec, suffix)
            sitk.WriteImage(image, str(tmp), useCompression=compress)
            del image  # the copy made for the writer; the read-back needs the room
        if rec and suffix in (".nii", ".nii.gz"):
            add_nifti_extension(tmp, rec)  # the whole record; descrip holds 80 characters
    return out
