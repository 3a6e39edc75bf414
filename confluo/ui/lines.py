"""The run as lines: one timestamped line per event for cron mails and CI logs, or JSON lines with --json."""

from __future__ import annotations

import json
import time
from typing import IO

from confluo.events import Event


class PlainLines:
    """One timestamped line per event: for cron mails and CI logs."""

    QUIET = frozenset({"waiting"})

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._last_wait: dict[str | None, str] = {}

    def __call__(self, event: Event) -> None:
        if event.kind == "waiting":
            # Only a change in what is observed is worth a line.
            if self._last_wait.get(event.node) == event.message:
                return
            self._last_wait[event.node] = event.message
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
        self.stream.write(f"{stamp} {event.message if event.kind != 'waiting' else _waiting(event)}\n")
        self.stream.flush()


def _waiting(event: Event) -> str:
    return f"{event.node + ': ' if event.node else ''}waiting ({event.message})"


class JsonLines:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.stream.write(json.dumps(event.as_json(), separators=(",", ":")) + "\n")
        self.stream.flush()
