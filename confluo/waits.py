"""Every wait and retry of confluo: one injectable clock, deadlines, polling for a state, retrying on passing errors.

No other core module reads the wall clock or sleeps: a test hands in a FakeClock, and a deadline of an hour
expires in a millisecond.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.1


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


@dataclass(frozen=True)
class Deadline:
    clock: Clock
    at: float
    seconds: float

    @classmethod
    def after(cls, clock: Clock, seconds: float) -> Deadline:
        return cls(clock, clock.monotonic() + seconds, seconds)

    def passed(self) -> bool:
        return self.clock.monotonic() > self.at


class TimedOut(Exception, Generic[T]):
    """The deadline passed before the state was reached; `last` is what was observed last."""

    def __init__(self, last: T, deadline: Deadline) -> None:
        super().__init__(f"not reached within {deadline.seconds:.0f} s")
        self.last = last
        self.deadline = deadline


def poll(
    observe: Callable[[], T],
    *,
    until: Callable[[T], bool],
    deadline: Deadline,
    on_wait: Callable[[T], None] = lambda observed: None,
    interval: float = POLL_SECONDS,
) -> T:
    """Observe until `until(observed)`; TimedOut once the deadline passes. `on_wait` sees every observation that
    is not there yet, and may raise to give up early (a node reporting ERROR will not become ACTIVE)."""
    while True:
        observed = observe()
        if until(observed):
            return observed
        on_wait(observed)
        if deadline.passed():
            raise TimedOut(observed, deadline)
        deadline.clock.sleep(interval)


def retry(
    call: Callable[[], T],
    *,
    on: tuple[type[Exception], ...],
    pauses: Sequence[float],
    clock: Clock,
    on_retry: Callable[[Exception, float], None] = lambda error, pause: None,
) -> T:
    """`call`, again after each pause while it raises one of `on`; the last failure is raised as it is."""
    for pause in (*pauses, None):
        try:
            return call()
        except on as error:
            if pause is None:
                raise
            on_retry(error, pause)
            clock.sleep(pause)
    raise AssertionError("unreachable")


def ticks(interval: float, stop: threading.Event) -> Iterator[None]:
    """Once every `interval` seconds until `stop` is set, which ends it at once rather than at the next tick: a
    periodic task in a thread of its own (the cluster lock's heartbeat), in real time whatever the clock."""
    while not stop.wait(interval):
        yield
