"""Progress for people: a bar on a terminal, plain lines when stderr goes to a log."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

#: The unit of a progress counted in bytes: shown as MB (plain lines) or scaled (the bar).
BYTE = "byte"


class PlainProgress:
    """Progress as plain lines for logs (stderr not a terminal): every 10% or minute."""
    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit = max(total, 1), desc, unit
        self.start = self.last_time = time.monotonic()
        self.last_tenth = 0

    def update(self, done: int, _total: int = 0, **_postfix) -> None:
        now = time.monotonic()
        tenth = int(10 * done / self.total)
        if tenth > self.last_tenth or now - self.last_time >= 60:
            self.last_tenth, self.last_time = tenth, now
            if self.unit == BYTE:
                amount = f"{done / 2 ** 20:.1f}/{self.total / 2 ** 20:.1f} MB"
            else:
                amount = f"{done}/{self.total} {self.unit}s"
            print(f"{self.desc}: {amount} ({100 * done // self.total}%, "
                  f"{now - self.start:.0f} s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str = "pair", leave: bool = False,
                 enabled: bool = True):
    """A progress bar on a terminal, plain progress lines otherwise (nothing when not
    ``enabled``); ``(bar, update)`` with ``update(done, total, **postfix)``."""
    if enabled and not sys.stderr.isatty():
        plain = PlainProgress(total, desc, unit)
        return plain, plain.update

    scaled = dict(unit="B", unit_scale=True, unit_divisor=1024) if unit == BYTE else \
        dict(unit=unit)
    bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=leave, disable=not enabled,
               **scaled)

    def update(done: int, _total: int, **postfix) -> None:
        bar.n = done
        if postfix:
            bar.set_postfix(refresh=False, **postfix)
        bar.refresh()

    return bar, update
