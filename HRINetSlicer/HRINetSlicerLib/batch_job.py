"""A folder of cases from the panel: ``hrinet batch`` as a background job.

The command does the work (every DICOM series and volume file under the folder, resumable,
one bad case never stopping the rest, ``results.csv`` beside the outputs); the job starts it,
reads its progress events and, as cases finish, its results table. Cancel stops it at once;
starting again on the same folders skips what is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from hrinet.core import cohort
from hrinet.core.errors import HRINetError
from hrinet.core.events import Event
from hrinet.core.model_options import ModelOptions, check_options

from .jobs import Job, as_run

#: Columns of the results the panel shows, from the command's results table.
SHOWN_COLUMNS = ("input", "series_uid", "status", "message", "seconds", "output")


class BatchJob(Job):
    """``hrinet batch INPUT --out OUT`` with the panel's target, model and device.

    Args:
        input_folder: the cohort's folder (read only).
        out_folder: where the outputs (mirroring the input tree), ``results.csv`` and the job's
            log go.
        options: what ``hrinet batch`` is asked for, as for an interpolation (the target as the
            panel's :func:`~HRINetSlicerLib.targets.interpolation_target` gives it).
    """

    def __init__(self, input_folder, out_folder, options: ModelOptions = ModelOptions()):
        super().__init__()
        self.input, self.out = Path(input_folder), Path(out_folder)
        self.options = check_options(options)

    @property
    def log_path(self) -> Path:
        return self.out / "batch.log"

    @property
    def results_path(self) -> Path:
        return self.out / cohort.results_name(0, 1)

    def command(self) -> List[str]:
        return self.hrinet("batch", self.input, "--out", self.out,
                           "--shard", "1/1",  # Slicer's own environment is no job array
                           *as_run(self.options).argv())

    def start(self) -> None:
        """Check the folders and start the command (returns at once)."""
        if self.running():
            raise HRINetError("a batch is already running; cancel it first")
        if not self.input.is_dir():
            raise HRINetError(f"the input folder {self.input} does not exist")
        if self.out.resolve() == self.input.resolve():
            raise HRINetError("choose an output folder other than the input folder (inputs are "
                              "never overwritten)")
        self.out.mkdir(parents=True, exist_ok=True)
        self.proc.start(self.command(), self.log_path, append=True)

    def results(self) -> List[dict]:
        """The rows of the results table so far (empty before the first case finishes)."""
        try:
            rows = cohort.read_results(self.results_path)
        except (OSError, HRINetError):
            return []
        return [{c: str(getattr(r, c)) for c in SHOWN_COLUMNS} for r in rows.values()]

    def poll(self) -> dict:
        """``{"running", "returncode", "done", "total", "failed", "rows", "error"}``: cases
        finished (skipped ones included) of all, failed cases, the results so far, and a
        one-line error when the command itself failed (not when some cases did)."""
        info = {"running": self.running(), "returncode": self.proc.returncode, "done": 0,
                "total": 0, "error": None}
        for e in self.events():
            if e["event"] == Event.PROGRESS and e.get("unit") == "case":
                info["done"], info["total"] = int(e["done"]), int(e["total"])
        info["rows"] = self.results()
        info["failed"] = sum(r["status"] == "failed" for r in info["rows"])
        errors = [e for e in self.events() if e["event"] == Event.ERROR]
        if info["returncode"] not in (None, 0) and (info["returncode"] != 1 or errors or
                                                    not info["failed"]):
            info["error"] = self.failure("the batch")  # 1 with failed rows: some cases failed
        return info

    def cancel(self, timeout: float = 30) -> None:
        """Stop the command and what it started; the case in flight is left for a rerun."""
        self.stopped = True
        self.proc.end(timeout)
