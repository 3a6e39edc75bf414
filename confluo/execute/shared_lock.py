"""One run per cluster across machines: a lock folder in the cluster's shared home, made with an atomic `mkdir`
(flock is not to be trusted over NFS), with an `owner.json` inside that names the run holding it.

Every command runs as the login user, as the shared-home transfer's do: NFS exports squash root by default, and
no sudo rule is added. The holder rewrites `owner.json` on every heartbeat; a lock whose record has not changed
for longer than `stale_after(...)` is stale — reported as such, and released only on request
(`confluo lock release`). Heartbeat ages are taken on the shared home's side (the file's modification time
against the node's clock), so a controller whose clock is off cannot make a live lock look stale.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from confluo.errors import RefusedError
from confluo.transport.base import CommandFailed, TransportError
from confluo.transport.remote import MKDIR, MV, RM, TEE, Command, Remote, plain

LOCK_DIR_NAME = ".confluo-lock"
OWNER_FILE = "owner.json"
OWNER_VERSION = 1
HEARTBEAT_SECONDS = 15.0
MISSED_BEATS = 3  # a lock is stale once this many heartbeats in a row did not come ...
STALE_MARGIN_SECONDS = 5.0  # ... plus this much, for whole-second file times and slow connections
BOOT_ID = "/proc/sys/kernel/random/boot_id"
TIMEOUT_SECONDS = 20.0  # one lock command; a heartbeat must not hang on a dead connection


def stale_after(heartbeat_seconds: float) -> float:
    return MISSED_BEATS * heartbeat_seconds + STALE_MARGIN_SECONDS


def lock_path(shared_home: str) -> str:
    return posixpath.join(shared_home, LOCK_DIR_NAME)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Owner:
    """Who holds the lock. No secret is in it: user, host, pid, the command, times, the heartbeat interval."""

    run_id: str  # a random id: a release removes the lock only while it is still this run's
    user: str
    host: str
    pid: int
    command: str  # upgrade, rollback, cancel, finalize
    started_at: str  # ISO 8601, UTC, on the holder's clock
    heartbeat_at: str
    heartbeat_seconds: float
    boot_id: str = ""  # the holder's boot: a pid is only meaningful within one boot of one machine

    @property
    def holder(self) -> str:
        return f"{self.user}@{self.host}"

    def beat(self) -> Owner:
        return replace(self, heartbeat_at=utc_now())

    def to_bytes(self) -> bytes:
        return (json.dumps({"v": OWNER_VERSION, **asdict(self)}, indent=2) + "\n").encode()


def parse_owner(text: str) -> Owner | None:
    """The owner record, or None when it is not one this confluo writes (missing, partial, another version)."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("v") != OWNER_VERSION:
        return None
    try:
        return Owner(
            run_id=str(record["run_id"]), user=str(record["user"]), host=str(record["host"]),
            pid=int(record["pid"]), command=str(record["command"]), started_at=str(record["started_at"]),
            heartbeat_at=str(record["heartbeat_at"]), heartbeat_seconds=float(record["heartbeat_seconds"]),
            boot_id=str(record.get("boot_id", "")),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class LockState:
    """The lock as read through one node: free, or held (by `owner` when its record could be read)."""

    path: str
    node: str
    held: bool
    owner: Owner | None = None
    heartbeat_age: float | None = None  # seconds since the record (or the folder) last changed
    unreadable: str | None = None  # why no owner could be read
    now: float | None = None  # the node's clock, epoch seconds

    @property
    def stale_after(self) -> float:
        return stale_after(self.owner.heartbeat_seconds if self.owner else HEARTBEAT_SECONDS)

    @property
    def stale(self) -> bool:
        return self.held and self.heartbeat_age is not None and self.heartbeat_age > self.stale_after

    @property
    def run_id(self) -> str | None:
        return self.owner.run_id if self.owner else None

    @property
    def age(self) -> float | None:
        """How long the holder has held it (its start time on its own clock, against the node's)."""
        if self.owner is None or self.now is None:
            return None
        try:
            return max(0.0, self.now - datetime.fromisoformat(self.owner.started_at).timestamp())
        except ValueError:
            return None

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"path": self.path, "read_through": self.node, "held": self.held}
        if not self.held:
            return record
        if self.owner is not None:
            owner = self.owner
            record |= {"holder": owner.holder, "host": owner.host, "user": owner.user, "pid": owner.pid}
            record |= {"command": owner.command, "started_at": owner.started_at, "heartbeat_at": owner.heartbeat_at}
        else:
            record["unreadable"] = self.unreadable
        record |= {"age_seconds": _rounded(self.age), "heartbeat_age_seconds": _rounded(self.heartbeat_age)}
        record |= {"stale": self.stale, "stale_after_seconds": self.stale_after}
        if (dead := holder_gone_here(self.owner)) is not None:
            record["holder_running"] = not dead
        return record


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:.0f} min"


def describe(state: LockState) -> str:
    """Who holds the lock, in one line: holder, host, pid, command, start, heartbeat age (and stale or not)."""
    if not state.held:
        return f"the cluster lock {state.path} is free"
    if state.owner is None:
        changed = ago(state.heartbeat_age)
        text = f"a holder whose record cannot be read ({state.unreadable}); the lock last changed {changed} ago"
    else:
        owner = state.owner
        started = _readable(owner.started_at)
        text = (
            f"{owner.holder} (pid {owner.pid}, `confluo {owner.command}`, started {started}, "
            f"{ago(state.age)} ago; last heartbeat {ago(state.heartbeat_age)} ago)"
        )
        if holder_gone_here(owner):
            text += f"; pid {owner.pid} is no longer running on this machine"
    if state.stale:
        text += f"; STALE: no heartbeat for over {state.stale_after:.0f} s, its run has probably died"
    return text


def _readable(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return iso


def refusal(state: LockState, *, waited: float = 0.0) -> RefusedError:
    """A second run, anywhere, is refused before any change, naming the run that holds the lock."""
    reason = f"another confluo run holds the cluster lock {state.path}: {describe(state)}"
    if state.stale:
        who = state.owner.holder if state.owner else "the machine that took it"
        hint = f"make sure no confluo run is still going on {who}, then `confluo lock release -i INVENTORY`"
        return RefusedError([reason], hint=hint)
    if waited:
        reason += f"; still held after waiting {waited:.0f} s"
    hint = "wait for that run to end (`--lock-wait SECONDS` waits for it); `confluo lock status -i INVENTORY` shows it"
    return RefusedError([reason], hint=hint)


def this_boot() -> str:
    try:
        with open(BOOT_ID) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def holder_gone_here(owner: Owner | None) -> bool | None:
    """Whether the holder was a run on this very machine (same host name and boot) that is no longer running;
    None when that cannot be known from here."""
    if owner is None or owner.host != socket.gethostname() or not owner.boot_id or owner.boot_id != this_boot():
        return None
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, as another user
    return False


_READ = (
    'if [ -d "$1" ]; then echo held; date +%s; stat -c %Y "$1/$2" 2>/dev/null || stat -c %Y "$1" 2>/dev/null || echo; '
    'cat "$1/$2" 2>&1; else echo free; fi; true'
)


def read_lock(remote: Remote, path: str) -> LockState:
    """One round trip: whether the folder exists, the node's clock, the record's modification time, the record."""
    result = remote.run(plain("bash", "-c", _READ, "lock", path, OWNER_FILE), timeout=TIMEOUT_SECONDS)
    return parse_reading(path, remote.node.name, result.stdout)


def parse_reading(path: str, node: str, output: str) -> LockState:
    lines = [*output.split("\n", 3), "", "", ""]
    if lines[0].strip() != "held":
        return LockState(path, node, held=False)
    now, modified, text = _number(lines[1]), _number(lines[2]), lines[3].strip()
    owner = parse_owner(text)
    age = now - modified if now is not None and modified is not None else None
    unreadable = None if owner else (text.splitlines()[-1][:200] if text else "no owner record yet")
    return LockState(path, node, True, owner, age, unreadable, now)


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def try_take(remote: Remote, path: str, owner: Owner) -> LockState | None:
    """None when taken; else the lock as it is held. The `mkdir` is the atomic test-and-set."""
    for _ in range(2):  # a lock released between a failed mkdir and the look at it is tried once more
        made = remote.run(plain(MKDIR, "-m", "775", path), timeout=TIMEOUT_SECONDS, check=False)
        if made.ok:
            try:
                write_owner(remote, path, owner)
            except TransportError:
                remote.run(plain(RM, "-r", "-f", "--", path), check=False)
                raise
            return None
        state = read_lock(remote, path)
        if state.held:
            return state
    raise RefusedError(
        [f"{remote.node.name}: cannot create the cluster lock {path}: {made.tail() or f'exit {made.exit_status}'}"],
        hint="target.shared_home must be the shared home's path on the nodes, writable by the login user",
    )


def write_owner(remote: Remote, path: str, owner: Owner) -> None:
    """Written beside, then renamed over: a reader never sees half a record."""
    partial = posixpath.join(path, f"{OWNER_FILE}.{owner.run_id}.part")
    remote.run(Command((TEE, partial), stdout_to_null=True), stdin=owner.to_bytes(), timeout=TIMEOUT_SECONDS)
    remote.run(plain(MV, "-f", partial, posixpath.join(path, OWNER_FILE)), timeout=TIMEOUT_SECONDS)


def renew(remote: Remote, path: str, owner: Owner) -> bool:
    """One heartbeat; False when the lock is no longer this run's (released by force, or taken by another)."""
    if read_lock(remote, path).run_id != owner.run_id:
        return False
    write_owner(remote, path, owner.beat())
    return True


def release(remote: Remote, path: str, run_id: str | None) -> bool:
    """Removes the lock only while it is still the one named (`run_id` None: a lock without a readable record)."""
    state = read_lock(remote, path)
    if not state.held or state.run_id != run_id:
        return False
    result = remote.run(plain(RM, "-r", "-f", "--", path), timeout=TIMEOUT_SECONDS, check=False)
    if not result.ok:
        raise CommandFailed(result)
    return True
