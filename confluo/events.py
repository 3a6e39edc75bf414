"""What happens during a run, as events: every view (rich, plain lines, JSON, the log file) is fed by these."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluo.secrets import Masker

EVENT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Event:
    """kind: run_started, phase_started, phase_done, phase_skipped, waiting, command, note, run_finished."""

    kind: str
    message: str
    node: str | None = None
    phase: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"v": EVENT_SCHEMA_VERSION, "at": round(self.at, 3), "event": self.kind}
        if self.node is not None:
            record["node"] = self.node
        if self.phase is not None:
            record["phase"] = self.phase
        record["message"] = self.message
        record.update(self.data)
        return record


Sink = Callable[[Event], None]


class EventBus:
    """Hands every event, with secrets masked, to each sink."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._sinks: list[Sink] = []
        self._lock = threading.Lock()  # pre-staging emits from one thread per node

    def subscribe(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def emit(self, kind: str, message: str, *, node: str | None = None, phase: str | None = None, **data: Any) -> None:
        event = Event(kind, self._masker.mask(message), node, phase, {k: self._mask(v) for k, v in data.items()})
        with self._lock:
            for sink in self._sinks:
                sink(event)

    def _mask(self, value: Any) -> Any:
        return self._masker.mask(value) if isinstance(value, str) else value
