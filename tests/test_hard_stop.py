"""The hard stop over fakes (tests/fakes.py): a real process that ignores SIGTERM, real bash and /proc, a fake
clock. The escalation goes stop script -> SIGTERM again -> SIGKILL, and never signals a pid that is not the
installation's own process."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import SOURCE, TARGET, FakeHost, FakeSite

from confluo import app
from confluo.api.base import ClusterState
from confluo.inventory import Node, load_inventory
from confluo.steps.base import Host, NodeFailed, StepContext
from confluo.steps.service import StopNode
from confluo.transport.base import CommandResult
from confluo.transport.local import LocalTransport
from confluo.transport.remote import KILL, Remote

# A Confluence whose shutdown hangs: the JVM ignores SIGTERM. Its command line names the installation, as Tomcat's
# does (-Dcatalina.base=...); its parent waits for it, so a killed process is reaped at once.
HUNG_START = """#!/bin/bash
here=$(cd "$(dirname "$0")/.." && pwd -P)
mkdir -p "$here/work"
nohup bash -c 'trap "" TERM; (exec -a "$2/bin/java" sleep 600) & echo $! > "$1"; wait' confluence \\
  "$here/work/catalina.pid" "$here" >/dev/null 2>&1 &
until [ -s "$here/work/catalina.pid" ]; do sleep 0.005; done
"""
# Like Tomcat's stop: asks once (SIGTERM) and returns.
ASK_STOP = """#!/bin/bash
here=$(cd "$(dirname "$0")/.." && pwd -P)
kill -TERM "$(cat "$here/work/catalina.pid")" 2>/dev/null
exit 0
"""
TIMEOUTS = {"stop_seconds": 2, "kill_grace_seconds": 3}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FakeSite]:
    site = FakeSite.build(tmp_path, nodes=2)
    site.write_inventory(defaults={"transport": "local", "sudo": False, "timeouts": TIMEOUTS})
    yield site
    site.stop_all()


def hang_on_stop(host: FakeHost) -> int:
    """Restart the host's Confluence as one that ignores SIGTERM; its pid."""
    host.kill()
    (host.base / SOURCE / "work/catalina.pid").unlink()
    for name, text in (("start-confluence.sh", HUNG_START), ("stop-confluence.sh", ASK_STOP)):
        (host.base / SOURCE / "bin" / name).write_text(text)
    subprocess.run([str(host.base / "current/bin/start-confluence.sh")], check=True)
    return int((host.base / SOURCE / "work/catalina.pid").read_text())


def alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


class Stopping:
    """StopNode of a host's old installation, with every command run and every event it emitted."""

    def __init__(self, site: FakeSite, name: str) -> None:
        self.node: Node = next(n for n in load_inventory(site.inventory).nodes if n.name == name)
        host = site.host(name)
        self.step = StopNode(Host(self.node), str(host.base / SOURCE), str(host.base / "current"))
        self.commands: list[str] = []
        self.events: list[str] = []
        remote = Remote(self.node, LocalTransport(name), [self._ran])
        self.ctx = StepContext(api=site.api, remote=remote, clock=site.clock, on_wait=self.events.append)

    def _ran(self, result: CommandResult) -> None:
        if "confluo-check" not in result.command and "confluo-pid" not in result.command:  # not the looks
            self.commands.append(result.command)


def test_a_node_that_ignores_sigterm_gets_it_again_then_sigkill_and_is_then_stopped(site: FakeSite) -> None:
    pid = hang_on_stop(site.host("node1"))
    stopping = Stopping(site, "node1")
    stopping.step.apply(stopping.ctx)
    assert not alive(pid)
    stop_script = str(site.host("node1").base / "current/bin/stop-confluence.sh")
    assert stopping.commands == [stop_script, f"{KILL} -TERM {pid}", f"{KILL} -KILL {pid}"]
    timed_out = stopping.events.index("graceful stop timed out; SIGTERM again")
    assert stopping.events.index(f"SIGKILL pid {pid}") > timed_out
    assert stopping.step.is_done(stopping.ctx)


def test_a_stale_pid_file_whose_pid_runs_something_else_is_never_signalled(site: FakeSite) -> None:
    host = site.host("node1")
    host.kill()  # Confluence is gone; its pid file names a pid the kernel gave to an unrelated process
    stranger = subprocess.Popen(["bash", "-c", "trap '' TERM; exec sleep 600"])
    try:
        (host.base / SOURCE / "work/catalina.pid").write_text(f"{stranger.pid}\n")
        (host.base / SOURCE / "bin/stop-confluence.sh").write_text(ASK_STOP)
        stopping = Stopping(site, "node1")
        with pytest.raises(NodeFailed, match=f"names pid {stranger.pid}, which is not a process of") as refused:
            stopping.step.apply(stopping.ctx)
        assert "sleep 600" in refused.value.message and "stale" in refused.value.hint
        assert stranger.poll() is None, "the unrelated process still runs"
        assert not any(KILL in command for command in stopping.commands)
    finally:
        stranger.kill()
        stranger.wait()


def test_the_plan_shows_the_escalation_with_the_run_users_kill(site: FakeSite) -> None:
    site.write_inventory(defaults={"transport": "local", "sudo": False, "run_as": "confluence", "timeouts": TIMEOUTS})
    preview = Stopping(site, "node1").step.describe()
    term, kill = preview.commands[1:]
    assert term.startswith("(only if it still runs at the deadline) sudo -n -u confluence /usr/bin/kill -TERM")
    assert kill.startswith("(only if it still runs 3 s later) sudo -n -u confluence /usr/bin/kill -KILL")
    assert "SIGTERM again, 3 s later SIGKILL" in preview.waits[0]


def test_an_upgrade_with_a_hung_node_completes_with_that_node_killed_and_upgraded(site: FakeSite) -> None:
    site.load.update(node1=0, node2=5)  # node1 goes first
    hang_on_stop(site.host("node1"))
    before = site.snapshot()
    session = app.open_session(site.inventory, ports=site.ports())
    messages: list[str] = []
    session.events.subscribe(lambda event: messages.append(event.message))
    plan, _ = app.make_plan(session)
    app.run_plan(session, plan)
    assert site.versions() == {"node1": TARGET, "node2": TARGET}
    assert all(host.in_use() == str(host.base / TARGET) for host in site.hosts)
    assert site.api.cluster().state is ClusterState.STABLE
    assert site.snapshot() == before
    assert "graceful stop timed out; SIGTERM again" in messages
