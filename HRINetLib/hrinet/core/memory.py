"""How much memory this process can still use: what the kernel can hand out without swapping
(MemAvailable, which counts reclaimable page cache, unlike MemFree) and, in a container or a
cluster job, what is left under its cgroup limit, whichever is smaller."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

#: Said when nothing can be read (not Linux, no /proc): large, so nothing is refused for it.
UNKNOWN = 1 << 50


def meminfo_available(meminfo: Path = Path("/proc/meminfo")) -> Optional[int]:
    """MemAvailable in bytes, or None where the file or the field is missing."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cgroup_available(root: Path = Path("/sys/fs/cgroup")) -> Optional[int]:
    """Bytes left under this process's cgroup memory limit (v2, else v1), or None without one."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes",
                                    "memory/memory.usage_in_bytes")):
        try:
            limit = (root / limit_file).read_text().strip()
            usage = int((root / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:
            return None  # no limit set
        return max(0, int(limit) - usage)
    return None


def available_memory(meminfo: Path = Path("/proc/meminfo"),
                     cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Bytes this process can still allocate: the smaller of MemAvailable and what its cgroup
    leaves; ``sysconf``'s free pages where /proc is missing (macOS); :data:`UNKNOWN` elsewhere."""
    found = [v for v in (meminfo_available(meminfo), cgroup_available(cgroup)) if v is not None]
    if found:
        return min(found)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return UNKNOWN
