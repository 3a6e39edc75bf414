"""One run per cluster: the local flock (one machine), and the lock in the shared home (across machines) with its
owner record, heartbeat and staleness — the pure parts with plain values, the rest through the CLI against
FakeSite hosts (real bash, real folders) and a FakeClock. The two-machines race with real sshd is
tests/test_lock_lab.py."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fakes import SOURCE, TARGET, FakeClock, FakeSite

from confluo.cli.env import Env
from confluo.cli.main import cli
from confluo.errors import ExitCode, RefusedError
from confluo.events import EventBus
from confluo.execute import shared_lock
from confluo.execute.lock import cluster_lock
from confluo.execute.run_lock import NO_SHARED_HOME, Heartbeat, LockChannel
from confluo.execute.shared_lock import LockState, Owner, parse_owner, parse_reading
from confluo.inventory import load_inventory
from confluo.secrets import Masker
from confluo.transport.base import ConnectionFailed
from confluo.transport.local import LocalTransport
from confluo.transport.remote import Remote

HOLD = """
import sys, time
from pathlib import Path
from confluo.execute.lock import cluster_lock
with cluster_lock(sys.argv[1], Path(sys.argv[2])):
    print("held", flush=True)
    time.sleep(30)
"""


def test_a_second_run_against_the_same_cluster_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, "https://confluence.example.com", str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(RefusedError, match=f"pid {holder.pid}") as refused,
            cluster_lock("https://confluence.example.com", tmp_path),
        ):
            pass
        assert refused.value.exit_code is ExitCode.REFUSED
        with cluster_lock("https://other.example.com", tmp_path):
            pass  # another cluster is not blocked
    finally:
        holder.kill()
        holder.wait()
    with cluster_lock("https://confluence.example.com", tmp_path):
        pass  # released when its holder died


# --- the owner record and the lock as read: pure -------------------------------------------------------------

OWNER = Owner(
    run_id="r1", user="deploy", host="admin2", pid=4242, command="upgrade", started_at="2030-01-02T03:04:05+00:00",
    heartbeat_at="2030-01-02T03:05:00+00:00", heartbeat_seconds=15.0, boot_id="b",
)  # fmt: skip
STARTED = 1893553445.0  # OWNER.started_at as epoch seconds


def held(age: float, owner: Owner | None = OWNER, now: float = STARTED + 600) -> LockState:
    return LockState("/shared/.confluo-lock", "node1", True, owner, age, None if owner else "no owner record", now)


def test_the_owner_record_reads_back_what_was_written_and_nothing_else() -> None:
    assert parse_owner(OWNER.to_bytes().decode()) == OWNER
    record = json.loads(OWNER.to_bytes())
    assert record["v"] == 1 and set(record) >= {"user", "host", "pid", "command", "started_at", "heartbeat_at"}
    for broken in ("", "{", '{"v": 1}', json.dumps({**record, "v": 2}), json.dumps({**record, "pid": "x"}), "[]"):
        assert parse_owner(broken) is None, broken


def test_a_reading_of_the_shared_home_becomes_free_held_or_held_without_a_record() -> None:
    assert parse_reading("/s/.confluo-lock", "node1", "free\n") == LockState("/s/.confluo-lock", "node1", False)
    state = parse_reading("/s/.confluo-lock", "node2", f"held\n2000\n1990\n{OWNER.to_bytes().decode()}")
    assert (state.held, state.owner, state.heartbeat_age, state.node) == (True, OWNER, 10.0, "node2")
    bare = parse_reading("/s/.confluo-lock", "node1", "held\n2000\n1900\ncat: /s/.confluo-lock/owner.json: No such\n")
    assert bare.held and bare.owner is None and bare.heartbeat_age == 100 and "No such" in (bare.unreadable or "")


def test_a_lock_is_stale_only_after_three_missed_heartbeats_of_its_holder_and_a_margin() -> None:
    limit = 3 * 15 + shared_lock.STALE_MARGIN_SECONDS
    assert held(age=limit).stale_after == limit
    assert not held(age=limit).stale and held(age=limit + 1).stale
    quick = replace(OWNER, heartbeat_seconds=0.5)  # the holder's own interval decides
    assert held(age=7, owner=quick).stale and not held(age=6, owner=quick).stale
    assert held(age=limit + 1, owner=None).stale  # a taker that died before writing its record
    unknown_age = LockState("/s/.confluo-lock", "node1", True, OWNER, None)
    assert not unknown_age.stale  # what cannot be measured is never called stale


def test_a_live_lock_refusal_names_holder_host_pid_command_start_and_heartbeat_age() -> None:
    refused = shared_lock.refusal(held(age=4))
    assert refused.exit_code is ExitCode.REFUSED
    for part in ("deploy@admin2", "pid 4242", "`confluo upgrade`", "2030-01-02 03:04:05 UTC", "10 min ago"):
        assert part in refused.message, part
    assert "last heartbeat 4 s ago" in refused.message and "STALE" not in refused.message
    assert refused.hint and "--lock-wait" in refused.hint and "lock status" in refused.hint
    assert "after waiting 30 s" in shared_lock.refusal(held(age=4), waited=30).message


def test_a_stale_lock_refusal_says_so_and_names_lock_release() -> None:
    refused = shared_lock.refusal(held(age=3600))
    assert "STALE" in refused.message and "60 min ago" in refused.message
    assert refused.hint and "confluo lock release" in refused.hint and "deploy@admin2" in refused.hint


def test_a_holder_is_known_gone_only_when_it_ran_on_this_machine_in_this_boot() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    here = replace(OWNER, host=socket.gethostname(), boot_id=shared_lock.this_boot(), pid=dead.pid)
    assert shared_lock.holder_gone_here(here) is True
    assert shared_lock.holder_gone_here(replace(here, pid=os.getpid())) is False
    assert shared_lock.holder_gone_here(replace(here, host="elsewhere")) is None
    assert shared_lock.holder_gone_here(replace(here, boot_id="another boot")) is None


# --- through the command line, against FakeSite hosts ---------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FakeSite]:
    site = FakeSite.build(tmp_path)
    (tmp_path / "shared").mkdir()
    site.write_inventory(
        target={"version": TARGET, "archive": str(site.archive), "shared_home": str(tmp_path / "shared")}
    )
    yield site
    site.stop_all()


def lock_dir(site: FakeSite) -> Path:
    return site.dir / "shared" / ".confluo-lock"


def leave_lock(site: FakeSite, owner: Owner = OWNER, *, age: float = 0.0) -> None:
    """A lock as another run writes it; `age` seconds since its last heartbeat."""
    lock_dir(site).mkdir()
    (lock_dir(site) / "owner.json").write_bytes(owner.to_bytes())
    age_lock(site, age)


def age_lock(site: FakeSite, age: float) -> None:
    """The lock's last heartbeat `age` seconds ago (real time passes while a test runs)."""
    os.utime(lock_dir(site) / "owner.json", (time.time() - age, time.time() - age))


def confluo(site: FakeSite, *args: str, tty: bool = False) -> tuple[int, str, str]:
    """Exit code, stdout (the JSON events included) and stderr."""
    events = io.StringIO()
    env = Env(stdin_isatty=tty, stdout_isatty=False, stdout=events, ports=site.ports())
    result = CliRunner().invoke(cli, [*args, "-i", str(site.inventory)], obj=env)
    return result.exit_code, events.getvalue() + result.stdout, result.stderr


def notes(out: str) -> list[str]:
    return [e["message"] for line in out.splitlines() if (e := json.loads(line)).get("event") == "note"]


def test_upgrade_takes_the_lock_says_so_and_releases_it_when_done(site: FakeSite) -> None:
    code, out, _ = confluo(site, "upgrade", "--yes", "--json")
    assert code == 0 and set(site.versions().values()) == {TARGET}
    assert any(note.startswith(f"cluster lock taken: {lock_dir(site)} (through node1)") for note in notes(out))
    assert json.loads(out.splitlines()[-1])["event"] == "summary" and not lock_dir(site).exists()


def test_a_run_that_fails_or_is_interrupted_releases_the_lock(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.fail_start("node1")
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.ROLLED_BACK and not lock_dir(site).exists()

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(site.api, "start_upgrade", interrupted)
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.INTERRUPTED and not lock_dir(site).exists()


def test_a_live_lock_refuses_upgrade_cancel_and_finalize_before_any_change(site: FakeSite) -> None:
    leave_lock(site, age=2)
    before = site.snapshot()
    for command in ("upgrade", "cancel", "finalize"):
        age_lock(site, 2)
        began = time.monotonic()
        code, _, err = confluo(site, command, "--yes")
        assert code == ExitCode.REFUSED, (command, err)
        assert "deploy@admin2 (pid 4242, `confluo upgrade`" in err
        age = re.search(r"last heartbeat (\d+) s ago", err)  # real time passes while the command runs
        assert age and 2 <= int(age[1]) <= 2 + round(time.monotonic() - began), err
    assert site.api.calls == [] and set(site.versions().values()) == {SOURCE} and site.snapshot() == before
    assert parse_owner((lock_dir(site) / "owner.json").read_text()) == OWNER  # the holder's lock is untouched


def test_verify_holds_the_lock_and_is_refused_while_another_run_holds_it(site: FakeSite) -> None:
    code, out, err = confluo(site, "verify", "--json")
    assert code == ExitCode.SUCCESS, err
    assert any(note.startswith(f"cluster lock taken: {lock_dir(site)}") for note in notes(out))
    assert not lock_dir(site).exists() and site.content.pages == {}
    leave_lock(site, age=2)  # an upgrade holds it: a node it has taken down would read as a miss
    calls = len(site.content.calls)
    code, _, err = confluo(site, "verify")
    assert code == ExitCode.REFUSED and "`confluo upgrade`" in err and len(site.content.calls) == calls


def test_a_stale_lock_is_reported_as_stale_and_never_broken(site: FakeSite) -> None:
    leave_lock(site, age=3600)
    code, _, err = confluo(site, "upgrade", "--yes", "--lock-wait", "600")  # waiting for it would not help
    assert code == ExitCode.REFUSED and "STALE" in err and "confluo lock release" in err
    assert site.clock.slept == 0 and site.api.calls == [] and lock_dir(site).exists()


def test_lock_wait_polls_on_the_clock_and_refuses_at_its_end(site: FakeSite) -> None:
    leave_lock(site, age=0)
    code, _, err = confluo(site, "upgrade", "--yes", "--lock-wait", "30")
    assert code == ExitCode.REFUSED and "still held after waiting 3" in err and site.clock.slept >= 30
    assert site.api.calls == []


class ReleasedAfter(FakeClock):
    """The holder's run ends (its lock folder goes) once `seconds` have passed on this clock."""

    def __init__(self, folder: Path, seconds: float) -> None:
        super().__init__()
        self.folder, self.seconds = folder, seconds

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self.slept >= self.seconds and self.folder.exists():
            for child in self.folder.iterdir():
                child.unlink()
            self.folder.rmdir()


def test_lock_wait_takes_the_lock_once_its_holder_lets_go(site: FakeSite) -> None:
    leave_lock(site, age=0)
    site.clock = ReleasedAfter(lock_dir(site), 10)
    code, out, _ = confluo(site, "upgrade", "--yes", "--json", "--lock-wait", "60")
    assert code == 0 and set(site.versions().values()) == {TARGET}
    taken = [note for note in notes(out) if note.startswith("cluster lock taken")]
    assert len(taken) == 1 and "after waiting 1" in taken[0]


class RecordWrittenAfter(FakeClock):
    """Another run's mkdir has just made the lock; its owner.json follows `seconds` later on this clock."""

    def __init__(self, site: FakeSite, seconds: float) -> None:
        super().__init__()
        self.site, self.seconds = site, seconds

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        record = lock_dir(self.site) / "owner.json"
        if self.slept >= self.seconds and not record.exists():
            record.write_bytes(OWNER.to_bytes())


def test_a_lock_caught_between_its_mkdir_and_its_record_is_refused_naming_its_holder(site: FakeSite) -> None:
    lock_dir(site).mkdir()
    site.clock = RecordWrittenAfter(site, 1.0)
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.REFUSED and "deploy@admin2 (pid 4242, `confluo upgrade`" in err
    assert site.api.calls == [] and site.clock.slept < 5


def test_a_lock_whose_record_never_comes_is_refused_once_the_grace_is_over(site: FakeSite) -> None:
    lock_dir(site).mkdir()
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.REFUSED and "record cannot be read" in err and site.clock.slept >= 5
    assert site.api.calls == [] and lock_dir(site).exists()


def test_a_lock_left_by_a_dead_run_of_this_machine_is_taken_over_and_said_so(site: FakeSite) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    leave_lock(site, replace(OWNER, host=socket.gethostname(), boot_id=shared_lock.this_boot(), pid=dead.pid))
    code, out, _ = confluo(site, "upgrade", "--yes", "--json")
    assert code == 0, out
    assert any("took over the cluster lock left by a run that died" in n and f"pid {dead.pid}" in n for n in notes(out))


def test_without_a_shared_home_only_the_local_lock_holds_and_the_events_say_so(site: FakeSite) -> None:
    site.write_inventory()
    code, out, _ = confluo(site, "upgrade", "--yes", "--json")
    assert code == 0 and notes(out).count(NO_SHARED_HOME) == 1


def test_lock_status_says_free_held_or_stale(site: FakeSite) -> None:
    code, out, _ = confluo(site, "lock", "status")
    assert code == 0 and "is free" in out
    leave_lock(site, age=3)
    code, out, _ = confluo(site, "lock", "status", "--json")
    state = json.loads(out)
    assert (state["held"], state["holder"], state["pid"], state["command"], state["stale"]) == (
        True, "deploy@admin2", 4242, "upgrade", False)  # fmt: skip
    assert state["heartbeat_age_seconds"] >= 3 and state["stale_after_seconds"] == 50
    os.utime(lock_dir(site) / "owner.json", (time.time() - 51, time.time() - 51))
    code, out, _ = confluo(site, "lock", "status")
    assert code == 0 and "STALE" in out and "deploy@admin2" in out


def test_status_shows_a_held_lock(site: FakeSite) -> None:
    leave_lock(site)
    code, out, _ = confluo(site, "status", "--json")
    assert code == 0 and json.loads(out)["cluster_lock"]["holder"] == "deploy@admin2"
    code, out, _ = confluo(site, "status")
    assert code == 0 and "cluster lock held by deploy@admin2" in out


def test_lock_release_of_a_live_lock_needs_force_and_always_shows_what_it_releases(site: FakeSite) -> None:
    leave_lock(site, age=1)
    code, out, err = confluo(site, "lock", "release", "--yes")
    assert code == ExitCode.REFUSED and "deploy@admin2" in out and "--force" in err and lock_dir(site).exists()
    code, out, _ = confluo(site, "lock", "release", "--yes", "--force")
    assert code == 0 and "deploy@admin2" in out and "released" in out and not lock_dir(site).exists()
    code, out, _ = confluo(site, "lock", "release", "--yes")
    assert code == 0 and "nothing to release" in out


def test_lock_release_of_a_stale_lock_asks_and_refuses_without_a_terminal(site: FakeSite) -> None:
    leave_lock(site, age=3600)
    code, out, _ = confluo(site, "lock", "release")
    assert code == ExitCode.NEEDS_CONFIRMATION and "STALE" in out and lock_dir(site).exists()
    code, _, _ = confluo(site, "lock", "release", "--yes")
    assert code == 0 and not lock_dir(site).exists()
    code, out, _ = confluo(site, "upgrade", "--yes")
    assert code == 0, out


def test_a_heartbeat_interval_that_is_not_a_number_is_a_usage_error(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFLUO_LOCK_HEARTBEAT_SECONDS", "soon")
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.USAGE and "CONFLUO_LOCK_HEARTBEAT_SECONDS='soon'" in err and site.api.calls == []


def test_the_heartbeat_renews_the_record_and_ends_when_the_lock_is_released_by_force(site: FakeSite) -> None:
    nodes = load_inventory(site.inventory).nodes
    channel = LockChannel(nodes, lambda node: Remote(node, LocalTransport(node.name)))
    path = str(lock_dir(site))
    owner = replace(OWNER, heartbeat_seconds=0.01, heartbeat_at="2000-01-01T00:00:00+00:00")
    assert channel.run(lambda remote: shared_lock.try_take(remote, path, owner)) is None
    said: list[str] = []
    events = EventBus(Masker())
    events.subscribe(lambda event: said.append(event.message))
    heartbeat = Heartbeat(channel, path, owner, events)
    heartbeat.start()
    try:
        deadline = time.monotonic() + 10
        while heartbeat.beats < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        renewed = parse_owner((lock_dir(site) / "owner.json").read_text())
        assert renewed is not None and renewed.run_id == owner.run_id and renewed.heartbeat_at > owner.heartbeat_at
        assert channel.run(lambda remote: shared_lock.release(remote, path, owner.run_id))  # as --force would
        while not said and time.monotonic() < deadline:
            time.sleep(0.01)
        assert said and "no longer this run's" in said[0]
    finally:
        heartbeat.stop()
        channel.close()
    assert not lock_dir(site).exists()  # the heartbeat never brings a released lock back


class Unreachable(LocalTransport):
    def run(self, command: str, **_: object) -> Any:
        raise ConnectionFailed(f"{self.node}: connection refused")


def test_the_lock_is_reached_through_the_next_node_when_one_does_not_answer(site: FakeSite) -> None:
    nodes = load_inventory(site.inventory).nodes
    transports = {"node1": Unreachable}
    channel = LockChannel(nodes, lambda node: Remote(node, transports.get(node.name, LocalTransport)(node.name)))
    try:
        state = channel.run(lambda remote: shared_lock.read_lock(remote, str(lock_dir(site))))
        assert (state.held, state.node, channel.node) == (False, "node2", "node2")
        transports["node2"] = transports["node3"] = Unreachable
        channel.close()
        with pytest.raises(RefusedError, match="no node could be reached") as refused:
            channel.run(lambda remote: shared_lock.read_lock(remote, str(lock_dir(site))))
        assert all(f"node{i}: connection refused" in refused.value.message for i in (1, 2, 3))
    finally:
        channel.close()
