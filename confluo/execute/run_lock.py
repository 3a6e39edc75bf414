"""One run per cluster, on this machine and across machines: the local flock, then the lock in the shared home
(when the inventory names one), kept alive by a heartbeat on a connection of its own, released on every way out.

    with one_run(site, "upgrade", wait_seconds=0) as notes:   # RefusedError (exit 3) naming the holder
        ...                                                     # notes: what to tell in the run's events
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from uuid import uuid4

from confluo.errors import ConfluoError, RefusedError
from confluo.events import EventBus
from confluo.execute import shared_lock
from confluo.execute.lock import cluster_lock
from confluo.execute.shared_lock import LockState, Owner
from confluo.inventory import Node
from confluo.transport.base import ConnectionFailed, ConnectionLost, TransportError
from confluo.transport.remote import Remote
from confluo.waits import Clock, Deadline, TimedOut, poll, ticks

T = TypeVar("T")

LOCK_POLL_SECONDS = 2.0  # how often --lock-wait looks again
RECORD_GRACE_SECONDS = 5.0  # a lock found without its record: how long its owner.json may take to appear
NO_SHARED_HOME = (
    "no shared home in the inventory (target.shared_home): only this machine's lock keeps runs apart; "
    "a run from another machine would not be refused"
)


class LockChannel:
    """The lock's own connection to the first node that answers, never shared with the runner's commands; a lost
    connection moves on to the next node. One caller at a time (the heartbeat thread, or the run around it)."""

    def __init__(self, nodes: Sequence[Node], connect: Callable[[Node], Remote]) -> None:
        self._nodes = list(nodes)
        self._connect = connect
        self._remote: Remote | None = None
        self._mutex = threading.Lock()

    @property
    def node(self) -> str | None:
        return self._remote.node.name if self._remote else None

    def run(self, action: Callable[[Remote], T]) -> T:
        with self._mutex:
            errors = []
            current = [n for n in self._nodes if self._remote and n.name == self._remote.node.name]
            for node in current + [n for n in self._nodes if n not in current]:
                if self._remote is None or self._remote.node.name != node.name:
                    self._remote = self._connect(node)
                try:
                    return action(self._remote)
                except (ConnectionFailed, ConnectionLost) as error:
                    errors.append(error.message)
                    self._drop()
            raise RefusedError(["no node could be reached for the cluster lock in the shared home", *errors])

    def _drop(self) -> None:
        if self._remote is not None:
            self._remote.transport.close()
            self._remote = None

    def close(self) -> None:
        with self._mutex:
            self._drop()


@dataclass(frozen=True)
class LockSite:
    """What the lock needs to know of a session: where each lock lives, how to reach the nodes, whom to tell."""

    api_url: str
    local_dir: Path  # this machine's flock
    shared_home: str | None
    nodes: tuple[Node, ...]
    connect: Callable[[Node], Remote]  # a new connection, the lock's own
    events: EventBus
    clock: Clock
    heartbeat_seconds: float = shared_lock.HEARTBEAT_SECONDS


def new_owner(command: str, heartbeat_seconds: float) -> Owner:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    now = shared_lock.utc_now()
    return Owner(
        uuid4().hex, user, socket.gethostname(), os.getpid(), command, now, now, heartbeat_seconds,
        shared_lock.this_boot(),
    )  # fmt: skip


@contextmanager
def one_run(site: LockSite, command: str, wait_seconds: float = 0.0) -> Iterator[tuple[str, ...]]:
    """Held for the whole command; yields the notes for the run's events (taken, waited, taken over, or no
    shared home). Refused (exit 3) while another run holds either lock."""
    with cluster_lock(site.api_url, site.local_dir):
        if site.shared_home is None:
            yield (NO_SHARED_HOME,)
            return
        channel = LockChannel(site.nodes, site.connect)
        try:
            owner = new_owner(command, site.heartbeat_seconds)
            path = shared_lock.lock_path(site.shared_home)
            notes = _take(channel, path, owner, wait_seconds, site)
            heartbeat = Heartbeat(channel, path, owner, site.events)
            heartbeat.start()
            try:
                yield notes
            finally:
                heartbeat.stop()
                _release(channel, path, owner, site.events)
        finally:
            channel.close()


def _take(channel: LockChannel, path: str, owner: Owner, wait_seconds: float, site: LockSite) -> tuple[str, ...]:
    notes: list[str] = []

    def attempt() -> LockState | None:
        state = channel.run(lambda remote: shared_lock.try_take(remote, path, owner))
        if state is not None and shared_lock.holder_gone_here(state.owner):
            # Left by a run of this machine that died (SIGKILL): its pid is gone, so nothing can still hold it.
            left_by = state.run_id
            if channel.run(lambda remote: shared_lock.release(remote, path, left_by)):
                notes.append(f"took over the cluster lock left by a run that died: {shared_lock.describe(state)}")
            state = channel.run(lambda remote: shared_lock.try_take(remote, path, owner))
        return state

    def waiting(state: LockState | None) -> None:
        if state is not None:
            site.events.emit("waiting", f"for the cluster lock: {shared_lock.describe(state)}")

    started = site.clock.monotonic()
    state = attempt()
    if state is not None and state.owner is None and not state.stale:
        # Taken that very moment by another run, whose record follows its mkdir: wait for it, to name the holder.
        try:
            state = poll(
                attempt,
                until=lambda s: s is None or s.owner is not None or s.stale,
                deadline=Deadline.after(site.clock, RECORD_GRACE_SECONDS),
                interval=LOCK_POLL_SECONDS / 4,
            )
        except TimedOut as timed_out:
            state = timed_out.last
    if state is not None and wait_seconds > 0 and not state.stale:
        deadline = Deadline.after(site.clock, wait_seconds)
        try:
            state = poll(attempt, until=lambda s: s is None or s.stale, deadline=deadline, on_wait=waiting,
                         interval=LOCK_POLL_SECONDS)  # fmt: skip
        except TimedOut as timed_out:
            state = timed_out.last
    waited = site.clock.monotonic() - started
    if state is not None:
        raise shared_lock.refusal(state, waited=waited if wait_seconds > 0 else 0.0)
    taken = f"cluster lock taken: {path} (through {channel.node}), heartbeat every {owner.heartbeat_seconds:g} s"
    if wait_seconds > 0 and waited >= LOCK_POLL_SECONDS:
        taken += f", after waiting {waited:.0f} s for it"
    return (*notes, taken)


def _release(channel: LockChannel, path: str, owner: Owner, events: EventBus) -> None:
    try:
        released = channel.run(lambda remote: shared_lock.release(remote, path, owner.run_id))
    except (ConfluoError, TransportError) as error:
        events.emit(
            "note",
            f"the cluster lock {path} could not be released ({error.message}); it turns stale after "
            f"{shared_lock.stale_after(owner.heartbeat_seconds):.0f} s: then `confluo lock release -i INVENTORY`",
        )
        return
    if not released:  # released as it should be: nothing to say (the summary stays the last line)
        events.emit("note", f"the cluster lock {path} was no longer this run's at its end (released by someone else)")


class Heartbeat:
    """Rewrites the owner record every `heartbeat_seconds` in a thread of its own. A failed beat is reported once
    and tried again at the next; a lock that is no longer this run's (released with --force) ends it."""

    def __init__(self, channel: LockChannel, path: str, owner: Owner, events: EventBus) -> None:
        self._channel, self._path, self._owner, self._events = channel, path, owner, events
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="confluo-lock-heartbeat", daemon=True)
        self.beats = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=shared_lock.TIMEOUT_SECONDS * 2)

    def _beat(self) -> None:
        failing = False
        for _ in ticks(self._owner.heartbeat_seconds, self._stop):
            try:
                ours = self._channel.run(lambda remote: shared_lock.renew(remote, self._path, self._owner))
            except (ConfluoError, TransportError) as error:
                if not failing:
                    self._events.emit("note", f"cluster lock heartbeat failed, trying again: {error.message}")
                failing = True
                continue
            if not ours:
                self._events.emit("note", f"the cluster lock {self._path} is no longer this run's: released by "
                                  "someone else (`confluo lock release --force`?); this run goes on")  # fmt: skip
                return
            if failing:
                self._events.emit("note", "cluster lock heartbeat works again")
            failing = False
            self.beats += 1
