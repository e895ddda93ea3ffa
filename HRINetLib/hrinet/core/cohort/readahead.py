"""Reading a cohort's next case while the current one is computed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, List, Tuple, TypeVar

T = TypeVar("T")
C = TypeVar("C")


def read_ahead(cases: List[C], read: Callable[[C], T]) -> Iterator[Tuple[C, Callable[[], T]]]:
    """Yield each case with a function that returns what ``read(case)`` returned (or raises what
    it raised), reading the next case in a background thread while the caller works on this
    one: a cohort's reading (DICOM parsing, decompression) overlaps its computing. At most two
    cases are held at once; a stop (an exception in the caller) cancels the read ahead."""
    if not cases:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hrinet-read-ahead") as pool:
        ahead = pool.submit(read, cases[0])
        try:
            for i, case in enumerate(cases):
                current = ahead
                ahead = pool.submit(read, cases[i + 1]) if i + 1 < len(cases) else None
                yield case, current.result
        finally:
            if ahead is not None:
                ahead.cancel()
