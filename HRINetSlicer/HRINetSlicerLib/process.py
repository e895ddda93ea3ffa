"""One ``hrinet`` command in a background process: what the module's jobs have in common.

As SlicerMONAIAuto3DSeg runs its inference: the process starts in a session of its own (POSIX),
so that ending it reaches everything it started (training's data workers, thread pools), and its
output goes to a log file the panel reads on a timer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from hrinet.core.errors import HRINetError

_POSIX = os.name != "nt"


def library_env() -> dict:
    """The environment for a background ``hrinet`` process: this ``hrinet`` first on the path
    (an empty PYTHONPATH adds nothing: a trailing separator would add the current folder)."""
    import hrinet

    env = dict(os.environ)
    paths = [str(Path(hrinet.__file__).resolve().parents[1])]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def python_executable() -> str:
    """The Python that can run ``hrinet`` in a background process: PythonSlicer (on the path,
    or beside the Slicer executable) in Slicer, this interpreter elsewhere.

    Raises a one-line :class:`HRINetError` inside Slicer when PythonSlicer cannot be found
    (Slicer's own executable is not a Python interpreter).
    """
    found = shutil.which("PythonSlicer")
    if found:
        return found
    here = Path(sys.executable)
    for name in ("PythonSlicer", "PythonSlicer.exe"):
        if (here.parent / name).is_file():
            return str(here.parent / name)
    if here.name.lower().startswith("slicer"):
        raise HRINetError(f"PythonSlicer was not found beside {here}; the Slicer installation "
                          "is incomplete: reinstall Slicer")
    return sys.executable


class BackgroundProcess:
    """A command running beside Slicer, its stdout and stderr in ``log_path``."""

    def __init__(self) -> None:
        self.popen: Optional[subprocess.Popen] = None
        self._log = None

    def start(self, cmd: Sequence[str], log_path: Path, append: bool = False) -> None:
        """Start ``cmd`` (returns at once); refused while the previous command still runs."""
        if self.running():
            raise HRINetError("the previous job is still running; stop it first")
        self._log = open(log_path, "a" if append else "w")
        try:
            self.popen = subprocess.Popen(list(cmd), stdout=self._log, stderr=subprocess.STDOUT,
                                          env=library_env(), start_new_session=_POSIX)
        except OSError as exc:
            self._log.close()
            self._log = None
            raise HRINetError(f"cannot start {cmd[0]} ({exc.strerror or exc}); check the "
                              "Slicer installation") from None

    @property
    def returncode(self) -> Optional[int]:
        return None if self.popen is None else self.popen.poll()

    @property
    def log_open(self) -> bool:
        return self._log is not None

    def running(self) -> bool:
        """True while the process runs; once it has ended its log is closed (complete)."""
        running = self.popen is not None and self.popen.poll() is None
        if not running and self._log is not None:
            self._log.close()
            self._log = None
        return running

    def end(self, timeout: float, terminate: bool = True) -> None:
        """End the process and everything it started.

        ``terminate``: send SIGTERM to its process group (Windows: terminate it) first; without
        it the process is only waited for (it was asked to stop another way). Whatever still
        runs after ``timeout`` seconds is killed.
        """
        if self.running():
            try:
                if terminate:
                    if _POSIX:
                        os.killpg(self.popen.pid, signal.SIGTERM)
                    else:
                        self.popen.terminate()
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                if _POSIX:
                    try:
                        os.killpg(self.popen.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.popen.kill()
                self.popen.wait()
            except ProcessLookupError:
                pass
        self.running()  # closes the log
