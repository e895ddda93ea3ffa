"""``hrinet info``: a volume or DICOM series described (geometry, gaps, tilt, thickness,
padding, its provenance, every problem) with what ``hrinet interpolate`` will do with it, and
the series of a folder or study listed. A series that can be read is described even where
``interpolate`` would refuse it."""

from __future__ import annotations

from pathlib import Path

from hrinet.core.errors import HRINetError
from hrinet.methods import default_method
from hrinet.methods.planning import plan_upsampling, reach_warning


def cmd_info(args) -> int:
    """Describe a volume or a DICOM series, and what ``interpolate`` will do with it. A series
    that can be read is described even where ``interpolate`` would refuse it: its problems are
    listed (all of them) and the command exits 0."""
    from hrinet.core.io import (describe, dicom_folder_of, read_dicom_folder,  # pydicom when
                                read_volume)  # run, not for every command's start

    folder = dicom_folder_of(Path(args.input))
    volume = (read_dicom_folder(folder, args.series, lenient=True) if folder is not None
              else read_volume(args.input, series_uid=args.series))
    print(describe(volume))
    print(f"interpolate: {_info_plan(volume)}")
    series = volume.metadata.get("dicom_series", [])
    if len(series) > 1:
        print(f"series in this folder ({len(series)}; choose with --series N or UID):")
        for i, s in enumerate(series, 1):
            mark = "*" if s["uid"] == volume.metadata.get("series_uid") and \
                s.get("folder", "") == volume.metadata.get("series_folder", "") else " "
            where = f" in {s['folder']}" if s.get("folder") else ""
            kind = s.get("kind", "image")
            aside = f" [{kind}: not chosen by default]" if kind != "image" else ""
            print(f" {mark}{i:>2}. {s['description']} ({s['modality']}){where}: {s['slices']} "
                  f"slices, pixels {s['pixel_spacing']} mm, thickness {s['thickness']} mm, "
                  f"UID {s['uid']}{aside}")
    return 0


def _info_plan(volume) -> str:
    """What ``hrinet interpolate`` with its defaults will do with ``volume``, or why it will
    not."""
    problems = volume.metadata.get("problems", [])
    if problems:
        return (f"refuses this series until its {len(problems)} problem(s) above are fixed"
                if len(problems) > 1 else "refuses this series until the problem above is fixed")
    try:
        plan = plan_upsampling(volume, method=default_method(), estimate_thickness=True)
    except HRINetError as exc:
        return f"nothing with the defaults: {exc}"
    beyond = reach_warning(plan)  # as interpolate warns before its work
    return plan.describe() + (f" (warning: {beyond})" if beyond else "")
