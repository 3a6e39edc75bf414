"""The timings of a run, gathered from its events: for the summary line and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluo.events import Event


@dataclass
class RunReport:
    """Seconds per phase and per node; bytes of archive sent."""

    prestage_seconds: float = 0.0
    rolling_seconds: float = 0.0
    finalize_seconds: float = 0.0
    out_of_service: dict[str, float] = field(default_factory=dict)  # stop begun -> ACTIVE again
    stop_seconds: dict[str, float] = field(default_factory=dict)
    start_seconds: dict[str, float] = field(default_factory=dict)
    out_of_pool: dict[str, float] = field(default_factory=dict)  # taken out of the load balancer -> back and UP
    drain_seconds: dict[str, float] = field(default_factory=dict)  # drained until its users had left
    bytes_sent: int = 0


class ReportCollector:
    """An event sink: subscribe it to the run's events, read `report` afterwards."""

    def __init__(self) -> None:
        self.report = RunReport()
        self._marks: dict[str, float] = {}  # first event of each phase, and when it ended
        self._stop_began: dict[str, float] = {}
        self._pool_left: dict[str, float] = {}

    def __call__(self, event: Event) -> None:
        if event.kind == "run_started":
            self._marks["run"] = event.at
        elif event.phase in ("upgrade mode", "finalize"):
            self._marks.setdefault(event.phase, event.at)
            if event.phase == "finalize":
                self._marks["finalized"] = event.at
        step = event.data.get("step")
        if event.kind == "phase_started" and step == "stop" and event.node:
            self._stop_began[event.node] = event.at
        elif event.kind == "phase_started" and step in ("drain", "maint") and event.node:
            self._pool_left.setdefault(event.node, event.at)
        elif event.kind == "phase_done" and event.node:
            self._done(event, step)
        elif event.kind == "node_done" and event.node in self._stop_began:
            self.report.out_of_service[event.node] = event.at - self._stop_began[event.node]
        self._update()

    def _done(self, event: Event, step: object) -> None:
        assert event.node is not None
        seconds = float(event.data.get("seconds", 0.0))
        if step == "stop":
            self.report.stop_seconds[event.node] = seconds
        elif step == "start":
            self.report.start_seconds[event.node] = seconds
        elif step == "drain":
            self.report.drain_seconds[event.node] = seconds
        elif step == "ready" and event.node in self._pool_left:
            self.report.out_of_pool[event.node] = event.at - self._pool_left.pop(event.node)
        self.report.bytes_sent += int(event.data.get("bytes_sent", 0))

    def _update(self) -> None:
        marks = self._marks
        if "run" in marks and "upgrade mode" in marks:
            self.report.prestage_seconds = marks["upgrade mode"] - marks["run"]
        if "upgrade mode" in marks and "finalize" in marks:
            self.report.rolling_seconds = marks["finalize"] - marks["upgrade mode"]
        if "finalize" in marks:
            self.report.finalize_seconds = marks["finalized"] - marks["finalize"]
