"""Machine-readable progress: ``hrinet --progress jsonl ...`` prints one JSON object a line on
stdout for each event, for programs (the Slicer panel) that must not parse the human lines.

The events, their fields and the reader of a line are defined once, in the lowest layer
(:mod:`hrinet.core.events`); this module writes them. In jsonl mode stdout carries these lines
only; every line for people goes to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Optional, TextIO, Union

from hrinet.core.events import EVENTS, Event, parse

__all__ = ["EVENTS", "Event", "Events", "parse", "report_warnings"]


class Events:
    """Emits events as JSON lines when enabled; does nothing otherwise."""

    def __init__(self, enabled: bool = False, stream: Optional[TextIO] = None):
        self.enabled = enabled
        self.stream = stream or sys.stdout

    def emit(self, event: Union[Event, str], **fields) -> None:
        """Write ``event`` (an :class:`Event`, or its wire string) with ``fields``; an unknown
        name is a ValueError, enabled or not."""
        try:
            name = Event(event).value
        except ValueError:
            raise ValueError(f"unknown event {event!r}") from None
        if self.enabled:
            print(json.dumps({"event": name, **fields}), file=self.stream, flush=True)


def report_warnings(warnings, events: Events, stream: Optional[TextIO] = None) -> None:
    """Each warning as the person's line (``hrinet: warning: ...`` on stderr) and as an event."""
    for text in warnings:
        print(f"hrinet: warning: {text}", file=stream or sys.stderr)
        events.emit(Event.WARNING, message=text)
