"""What a volume file's header promises, checked before the image reader is trusted with it.

ITK reads a cut-off NIfTI file with zero-filled slices and no error, turns a spacing of 0 or NaN
into 1 mm, and follows a detached header's data file wherever it points (``../../etc/passwd``).
Each of these would give the user a silently wrong volume, or read a file they never named. So
every file is checked here first: the data the header describes is all there (a NIfTI/Analyze
pair's ``.img`` too), the spacing is a positive number, a NIfTI orientation in use is made of
numbers, and every detached data file (a single name, a file-name pattern, a ``LIST``) lies in
the header's own folder. One module a format: :mod:`.nifti` (NIfTI files and NIfTI/Analyze
pairs), :mod:`.nrrd`, :mod:`.metaimage`; :mod:`.text_header` holds what the last two share.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from hrinet.core.errors import HRINetError
from hrinet.core.io.headers.metaimage import check_metaimage, metaimage_data_files
from hrinet.core.io.headers.nifti import check_nifti, check_nifti_pair, pair_files
from hrinet.core.io.headers.nrrd import check_nrrd, nrrd_data_files


def data_files(path: Path) -> List[Path]:
    """The detached data files a header names (empty for a file that holds its own data): for
    NRRD and MetaImage every file its data file field names, for a NIfTI/Analyze pair the other
    file of the pair."""
    name = path.name.lower()
    if name.endswith((".hdr", ".hdr.gz", ".img", ".img.gz")):
        return [f for f in pair_files(path) if f is not None and f != path]
    try:
        if name.endswith((".mha", ".mhd")):
            names = metaimage_data_files(path)
        elif name.endswith((".nrrd", ".nhdr")):
            names = nrrd_data_files(path)
        else:
            names = []
        return [path.parent / n for n, _ in names]
    except (HRINetError, OSError):
        return []  # a header naming its data files in a way no reader follows: reading refuses it


def check_file(path: Path) -> None:
    """Every check that applies to ``path``'s format (by its suffix)."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        check_nifti(path)
    elif name.endswith((".hdr", ".hdr.gz", ".img", ".img.gz")):
        check_nifti_pair(path)
    elif name.endswith((".nrrd", ".nhdr")):
        check_nrrd(path)
    elif name.endswith((".mha", ".mhd")):
        check_metaimage(path)
