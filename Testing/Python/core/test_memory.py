"""Available memory as the kernel and a container see it (hrinet.core.memory)."""

from __future__ import annotations

from hrinet.core.memory import available_memory, cgroup_available, meminfo_available


def _meminfo(tmp_path, free_kb, available_kb):
    p = tmp_path / "meminfo"
    p.write_text(f"MemTotal: 32000000 kB\nMemFree: {free_kb} kB\n"
                 f"MemAvailable: {available_kb} kB\n")
    return p


def test_page_cache_counts_as_available_not_only_free_pages(tmp_path):
    p = _meminfo(tmp_path, free_kb=1_000_000, available_kb=20_000_000)
    assert meminfo_available(p) == 20_000_000 * 1024
    assert available_memory(p, tmp_path / "no-cgroup") == 20_000_000 * 1024


def test_a_cgroup_limit_bounds_what_is_available(tmp_path):
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "memory.max").write_text(str(4 * 2 ** 30))
    (cg / "memory.current").write_text(str(1 * 2 ** 30))
    assert cgroup_available(cg) == 3 * 2 ** 30
    assert available_memory(_meminfo(tmp_path, 1, 20_000_000), cg) == 3 * 2 ** 30
    (cg / "memory.max").write_text("max\n")  # no limit: the machine's figure holds
    assert cgroup_available(cg) is None


def test_a_cgroup_v1_limit_is_read_too(tmp_path):
    cg = tmp_path / "cg"
    (cg / "memory").mkdir(parents=True)
    (cg / "memory" / "memory.limit_in_bytes").write_text(str(2 * 2 ** 30))
    (cg / "memory" / "memory.usage_in_bytes").write_text(str(2 ** 29))
    assert cgroup_available(cg) == 2 * 2 ** 30 - 2 ** 29
