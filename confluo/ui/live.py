"""The run on a terminal: a live table, a row per node, with its phase, elapsed time, deadline and observation."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from confluo.events import Event


def terminal_console(stream: IO[str]) -> Console:
    return Console(file=stream)


@dataclass
class _NodeRow:
    phase: str = "waiting"
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None
    observed: str = ""
    done: bool = False


class LiveView:
    """A table per node: phase, elapsed time, deadline, what is being waited for."""

    def __init__(self, console: Console, nodes: list[str]) -> None:
        self.console = console
        self.rows = {name: _NodeRow() for name in nodes}
        self.cluster_line = ""
        self._lock = threading.Lock()
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.update(self._render())
        self._live.__exit__(None, None, None)

    def __call__(self, event: Event) -> None:
        with self._lock:
            row = self.rows.get(event.node or "")
            if row is None:
                if event.kind != "waiting":
                    self.cluster_line = event.message
            elif event.kind == "phase_started":
                row.phase, row.started, row.observed = event.phase or "", time.monotonic(), ""
                row.deadline = event.data.get("deadline")
            elif event.kind in ("phase_done", "phase_skipped"):
                row.phase, row.deadline, row.observed = f"{event.phase}: done", None, ""
            elif event.kind == "waiting":
                row.observed = event.message
            elif event.kind == "node_done":
                row.phase, row.done, row.observed, row.deadline = "done", True, event.message, None
            self._live.update(self._render())

    def _render(self) -> Table:
        table = Table(title=self.cluster_line or "confluo", expand=False)
        for column in ("node", "phase", "elapsed", "deadline", "observed"):
            table.add_column(column)
        for name, row in self.rows.items():
            elapsed = "" if row.done else f"{time.monotonic() - row.started:.0f}s"
            deadline = f"{row.deadline:.0f}s" if row.deadline else ""
            style = "green" if row.done else None
            table.add_row(name, row.phase, elapsed, deadline, row.observed, style=style)
        return table
