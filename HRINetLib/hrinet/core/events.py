"""The machine-readable events of ``hrinet --progress jsonl``: their names and how a line is read.

The lowest layer, so that both sides of the wire use one definition: the command line emits
them (:mod:`hrinet.cli.events`), and programs that run the command in a background process (the
Slicer panel's jobs) read them with :func:`parse`, without importing the command line.

Each event is one JSON object a line with ``"event"`` set to an :class:`Event` value:
``plan`` (``factor``, ``input_slices``, ``output_slices``, ``method``, ``description``),
``progress`` (``done``, ``total``, ``unit``), ``case`` (a batch's case ended: ``number``,
``total``, ``input``, ``series_uid``, ``output``, ``status``, ``message``), ``warning``
(``message``), ``wrote`` (``path``), ``summary`` (the end of an interpolation: ``worst_slices``,
the synthesised slices with the highest predicted error, ``[{"slice", "error_hu"}]``; only when
the method estimates it), ``error`` (``message``: what the person's one line says after
``hrinet: error:``).
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Optional


class Event(str, Enum):
    """An event's name; the value is the wire string (a member equals its string)."""

    PLAN = "plan"
    PROGRESS = "progress"
    CASE = "case"
    WARNING = "warning"
    WROTE = "wrote"
    SUMMARY = "summary"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


#: The event names on the wire, in the order a run emits them.
EVENTS = tuple(e.value for e in Event)


def parse(line: str) -> Optional[dict]:
    """The event a line holds (its ``"event"`` an :class:`Event`), or None for any other line
    (a human one, a partial one, an object that is no event)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event") not in EVENTS:
        return None
    event["event"] = Event(event["event"])
    return event
