"""The HRINetSlicer module's library: MRML conversion (:mod:`.mrml`) and background jobs
(:mod:`.jobs`, :mod:`.training_job`, :mod:`.process`) without Qt, testable with the PyPI ``slicer-core`` MRML; the
panel (:mod:`.widget`, :mod:`.parameters`, :mod:`.install`) and the self-test (:mod:`.selftest`)
need the Slicer application and are imported by the module file only."""

from .adaptation import AdaptJob, adapt_job
from .jobs import InterpolationJob, interpolate_node
from .mrml import (
    export_nrrd,
    lps_from_ras,
    node_from_volume,
    plan_for_node,
    volume_from_node,
)
from .requirements import missing_requirements, requirements_for
from .training_job import TrainingJob, default_runs_folder

__all__ = ["AdaptJob", "InterpolationJob", "TrainingJob", "adapt_job", "default_runs_folder",
           "export_nrrd", "interpolate_node", "lps_from_ras", "node_from_volume",
           "plan_for_node", "volume_from_node", "missing_requirements", "requirements_for"]
