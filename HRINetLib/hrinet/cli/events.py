"""Machine-readable progress: ``hrinet --progress jsonl ...`` prints one JSON object a line on
stdout for each event, for programs (the Slicer panel) that must not parse the human lines.

Events (each has ``"event"``): ``plan`` (``factor``, ``input_slices``, ``output_slices``,
``method``, ``description``), ``progress`` (``done``, ``total``, ``unit``), ``case`` (a batch's
case ended: ``number``, ``total``, ``input``, ``series_uid``, ``output``, ``status``, ``message``),
``warning`` (``message``), ``wrote`` (``path``), ``summary`` (the end of an interpolation:
``worst_slices``, the synthesised slices with the highest predicted error, ``[{"slice",
"error_hu"}]``; only when the method estimates it), ``error`` (``message``: what the person's one
line says after ``hrinet: error:``). In jsonl mode stdout carries these lines only; every line
for people goes to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Optional, TextIO

#: The event names, in the order a run emits them.
EVENTS = ("plan", "progress", "case", "warning", "wrote", "summary", "error")


class Events:
    """Emits events as JSON lines when enabled; does nothing otherwise."""

    def __init__(self, enabled: bool = False, stream: Optional[TextIO] = None):
        self.enabled = enabled
        self.stream = stream or sys.stdout

    def emit(self, event: str, **fields) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        if self.enabled:
            print(json.dumps({"event": event, **fields}), file=self.stream, flush=True)


def parse(line: str) -> Optional[dict]:
    """The event a line holds, or None for any other line (a human one)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and event.get("event") in EVENTS else None


def report_warnings(warnings, events: Events, stream: Optional[TextIO] = None) -> None:
    """Each warning as the person's line (``hrinet: warning: ...`` on stderr) and as an event."""
    for text in warnings:
        print(f"hrinet: warning: {text}", file=stream or sys.stderr)
        events.emit("warning", message=text)
