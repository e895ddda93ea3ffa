"""How the panel's background jobs end, as the panel reads them: a batch whose command failed
(an internal error, out of memory: exit 1 with an error event, or no failed row) is a failed
batch, not "0 of 0 cases, 0 failed"; a job the user stopped or cancelled is no failure; a job
that died says its last words in the message (its temporary log may be gone when it is read);
an output interpolated again is named for its own synthesised slices.

The commands here are small Python programs standing in for ``hrinet`` where an ending that
the real one reaches only by a crash or a signal is needed; the jobs, their logs and processes
are real."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import slicer  # noqa: F401 (the real MRML library of PyPI slicer-core, for the scene fixture)

REPO = Path(__file__).resolve().parents[3]
if str(REPO / "HRINetSlicer") not in sys.path:
    sys.path.insert(0, str(REPO / "HRINetSlicer"))

from hrinet import Volume  # noqa: E402
from hrinet.core.errors import HRINetError  # noqa: E402
from hrinet.core.model_options import ModelOptions  # noqa: E402
from HRINetSlicerLib.batch_job import BatchJob  # noqa: E402
from HRINetSlicerLib.jobs import InterpolationJob, interpolate_node  # noqa: E402
from HRINetSlicerLib.mrml import node_from_volume  # noqa: E402


def _program(code: str) -> list:
    return [sys.executable, "-c", code]


def _wait(job, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while job.running() and time.time() < deadline:
        time.sleep(0.1)
    return job.poll()


class _Batch(BatchJob):
    def __init__(self, out, code):
        super().__init__(out / "in", out / "res", ModelOptions(method="linear", factor=2))
        self.code = code

    def command(self):
        return _program(self.code)


@pytest.fixture
def cohort(tmp_path):
    (tmp_path / "in").mkdir()
    return tmp_path


def test_a_batch_that_crashed_is_a_failed_batch_with_its_message(cohort):
    job = _Batch(cohort, "import sys; print('{\"event\": \"error\", \"message\": \"internal "
                         "error: MemoryError\"}'); sys.exit(1)")
    job.start()
    info = _wait(job)
    assert info["returncode"] == 1 and info["error"] == "internal error: MemoryError"


def test_a_batch_the_user_cancelled_is_no_failure(cohort):
    job = _Batch(cohort, "import time; time.sleep(60)")
    job.start()
    job.cancel()
    assert job.poll()["error"] is None


@pytest.fixture
def node(scene):
    array = (np.random.RandomState(0).rand(4, 16, 16) * 100).astype(np.int16)
    return node_from_volume(Volume(array=array, spacing=(1.0, 1.0, 3.0)), "CT", scene)


def test_an_interpolation_that_died_says_its_last_words(node):
    class Dying(InterpolationJob):
        def command(self):
            return _program("import sys; print('MemoryError: the machine ran out', "
                            "file=sys.stderr); sys.exit(3)")

    job = Dying(node, ModelOptions(method="linear", factor=2))
    job.start()
    _wait(job)
    with pytest.raises(HRINetError, match="MemoryError: the machine ran out; see its log"):
        job.finish()


def test_an_output_interpolated_again_is_named_for_its_own_synthesised_slices(node):
    once, _ = interpolate_node(node, ModelOptions(method="linear", factor=2))
    twice, _ = interpolate_node(once, ModelOptions(method="linear", factor=2))
    assert twice.GetName().endswith("(interpolated x2, 9 of 13 slices synthesised)")  # 4 of 13 acquired
    assert twice.GetName().count("synthesised") == 1


def test_a_stopped_job_that_ended_in_an_error_still_says_it(cohort):
    job = _Batch(cohort, "import signal, sys, time\n"
                         "def stop(*_):\n"
                         "    print('{\"event\": \"error\", \"message\": \"cannot write the "
                         "checkpoint: no space left\"}', flush=True); sys.exit(2)\n"
                         "signal.signal(signal.SIGTERM, stop)\n"
                         "print('started', flush=True); time.sleep(60)")
    job.start()
    deadline = time.time() + 30
    while "started" not in (job.log_path.read_text() if job.log_path.exists() else "") and \
            time.time() < deadline:
        time.sleep(0.1)
    job.cancel()  # stopped as asked, but the stop itself failed: said
    assert job.poll()["error"] == "cannot write the checkpoint: no space left"


def test_an_input_holding_nan_is_refused_naming_the_node_not_a_temporary_file(scene):
    array = np.zeros((4, 8, 8), np.float32)
    array[1, 2, 3] = np.nan
    bad = node_from_volume(Volume(array=array, spacing=(1.0, 1.0, 3.0)), "CT with a gap", scene)
    job = InterpolationJob(bad, ModelOptions(method="linear", factor=2))
    with pytest.raises(HRINetError, match="cannot write CT with a gap for interpolation: the "
                                          "volume holds 1 non-finite") as err:
        job.start()
    assert "hrinet-interpolate-" not in str(err.value)  # no temporary file named
    assert job.folder is None or not job.folder.exists()  # and none left behind
