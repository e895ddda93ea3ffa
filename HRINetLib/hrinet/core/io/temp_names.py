"""Who wrote a temporary file: the writer's tag in every temporary name, and the proof that a
leftover is one.

A write goes to a hidden temporary entry beside its file and is renamed into place when done
(:mod:`hrinet.core.io.atomic`, the derived DICOM series). SIGKILL or a power loss gives the
writer no chance to remove it, so later runs clean up; but a name pattern alone is no proof (a
user may keep a ``.scan.nrrd.notes.partial`` of their own). Every temporary name therefore
carries its writer: ``.NAME.hrinet-PID-HOST.XXXXXXXX.partial`` (``XXXXXXXX`` from
:mod:`tempfile`). A leftover is removed only when every tag in its name names this machine and a
process that no longer exists; an entry without a tag, one of another machine, or one whose
writer still runs is left alone.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Optional

#: A writer's tag inside a temporary name: ``hrinet-PID-HOST`` followed by a dot.
_TAG = re.compile(r"hrinet-(\d+)-([A-Za-z0-9-]*)\.")
#: The same, as a piece of a larger pattern (no groups).
TAG_PATTERN = r"hrinet-\d+-[A-Za-z0-9-]*"
#: The writer's tag and the random part of a ``tempfile`` name (8 characters of its alphabet).
RANDOM_PATTERN = TAG_PATTERN + r"\.[a-z0-9_]{8}"


def host_name() -> str:
    """This machine's name as temporary names carry it (letters, digits, dashes)."""
    return re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname())[:40]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists here (where that cannot be asked safely: assume it does,
    so nothing is removed on a guess)."""
    if os.name == "nt":  # os.kill would end the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # someone else's, or no pid at all: no proof
        return True
    return True


def writer_tag(pid: Optional[int] = None) -> str:
    """The tag of this process (or of ``pid``): ``hrinet-PID-HOST``."""
    return f"hrinet-{os.getpid() if pid is None else pid}-{host_name()}"


def temp_prefix(name: str, pid: Optional[int] = None) -> str:
    """The start of a temporary name for the file ``name``: ``.NAME.hrinet-PID-HOST.``, to which
    :mod:`tempfile` adds its random part and the caller's suffix."""
    return f".{name}.{writer_tag(pid)}."


def _endings(name: str) -> str:
    """A pattern of the extensions a temporary name of ``name`` may end with: none, or an
    ending of ``name`` itself (``.gz``, ``.nii.gz``) in any case (writers lower-case the
    extension that chooses the format)."""
    ends = {name[i:].lower() for i, c in enumerate(name) if c == "." and i > 0}
    return "(?i:" + "|".join([""] + [re.escape(e) for e in sorted(ends)]) + ")"


#: What a NIfTI provenance rewrite streams a finished temporary file into before replacing it
#: (:func:`hrinet.core.io.provenance.files.add_nifti_extension`): the temporary name plus this.
REWRITE_ENDING = ".ext"


def partial_name_pattern(name: str) -> "re.Pattern[str]":
    """Exactly the temporary names a write of the file ``name`` uses (``.NAME.TAG.XXXXXXXX.
    partial[EXT]``, a writer's own nested ``..NAME.TAG.XXXXXXXX.partial[EXT].TAG.YYYYYYYY.
    partial[EXT]``, and either with the NIfTI rewrite's :data:`REWRITE_ENDING`), and nothing
    else: a user's ``.NAME.TAG.my notes.partial.txt`` does not match even if its tag is a dead
    process's. Anchored at both ends (``\\Z``: a trailing newline is not ignored)."""
    end = _endings(name)
    one = rf"\.{re.escape(name)}\.{RANDOM_PATTERN}\.partial{end}"
    rewrite = re.escape(REWRITE_ENDING)
    return re.compile(rf"(?:{one}|\.{one}\.{RANDOM_PATTERN}\.partial{end})(?:{rewrite})?\Z")


def left_by_dead_writer(entry_name: str) -> bool:
    """Whether ``entry_name`` carries writer tags and every one names a process of this machine
    that no longer exists: the proof that it is a killed write's leftover."""
    tags = _TAG.findall(entry_name)
    if not tags:
        return False
    host = host_name()
    return all(h == host and not process_alive(int(p)) for p, h in tags)
