"""Qt-free logic of the HRINetSlicer module (testable with the PyPI ``slicer-core`` MRML)."""

from .logic import (  # noqa: F401
    TrainingJob,
    adapt_job,
    export_nrrd,
    interpolate_node,
    lps_from_ras,
    node_from_volume,
    plan_for_node,
    volume_from_node,
)
