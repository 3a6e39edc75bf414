"""Typed, stateful fakes for fast tests of the plan, the runner and the CLI: no root, no sshd, no HTTP.

    site = FakeSite.build(tmp_path, nodes=3)      # hosts as folders, each with a 9.2.13 installation
    ports = site.ports()                           # the session's ports: local shells, FakeClusterApi, FakeClock
    site.fail_start("node2")                       # node2's next start ends in ERROR

A node's host is a folder reached through the real LocalTransport (real bash, real files, real processes): its
`bin/start-confluence.sh` starts a `sleep` and writes `work/catalina.pid`, `stop-confluence.sh` kills it.
FakeClusterApi derives every node's state from those hosts (which installation's process is alive, its version)
and keeps the ZDU state machine: upgrade mode, MIXED, READY_TO_RUN_UPGRADE_TASKS, approve, STABLE.
FakeClock makes every wait instant: a deadline of an hour passes in a millisecond.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from fake_content import FakeContentApi

from confluo.api.base import (
    ApiAuth,
    ApiError,
    ClusterInfo,
    ClusterState,
    Heartbeat,
    InvalidTransition,
    NodeInfo,
    NodeState,
    PageView,
    StatusState,
)
from confluo.inventory import ClusterSettings, Node
from confluo.loadbalancer.base import AdminState, LoadBalancerError, ServerState, check_applied
from confluo.ports import Ports
from confluo.transport.base import CommandResult
from confluo.transport.local import LocalTransport

SOURCE, TARGET = "9.2.13", "9.2.14"
POM = "confluence/META-INF/maven/com.atlassian.confluence/confluence-webapp/pom.properties"
INIT = "confluence/WEB-INF/classes/confluence-init.properties"

START = """#!/bin/bash
# The fake Confluence: a sleeping process whose pid is in work/catalina.pid, as Tomcat's is.
here=$(cd "$(dirname "$0")/.." && pwd -P)
mkdir -p "$here/work"
rm -f "$here/work/catalina.pid"  # a killed process's pid file would otherwise end the wait below at once
# As Confluence does: the synchrony-standalone.jar of its release goes into its local home.
home=$(sed -n 's/^confluence.home=//p' "$here/confluence/WEB-INF/classes/confluence-init.properties" | tail -1)
packaged=$here/confluence/WEB-INF/packages/synchrony-standalone.jar
if [ -n "$home" ] && [ -f "$packaged" ]; then
  cp "$packaged" "$home/.synchrony.tmp" && mv -f "$home/.synchrony.tmp" "$home/synchrony-standalone.jar"
fi
# The sleeper's own parent waits for it, so a killed sleeper is reaped at once (PID 1 here may reap late).
nohup bash -c 'sleep 600 & echo $! > "$1"; wait' confluence "$here/work/catalina.pid" >/dev/null 2>&1 &
until [ -s "$here/work/catalina.pid" ]; do sleep 0.005; done
"""
STOP = """#!/bin/bash
here=$(cd "$(dirname "$0")/.." && pwd -P)
pid=$(cat "$here/work/catalina.pid" 2>/dev/null) && kill "$pid" 2>/dev/null
while [ -n "$pid" ] && [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do
  sleep 0.01
done
exit 0
"""


class FakeClock:
    """Time moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


SYNCHRONY_START = """#!/bin/bash
# The fake standalone Synchrony: a sleeping process whose pid is in synchrony.pid; a pid file left behind blocks it.
here=$(cd "$(dirname "$0")" && pwd -P)
if [ -f "$here/synchrony.pid" ]; then echo "remove $here/synchrony.pid first" >&2; exit 1; fi
nohup bash -c 'sleep 600 & echo $! > "$1"; wait' synchrony.core "$here/synchrony.pid" >/dev/null 2>&1 &
until [ -s "$here/synchrony.pid" ]; do sleep 0.005; done
"""
SYNCHRONY_STOP = """#!/bin/bash
here=$(cd "$(dirname "$0")" && pwd -P)
[ -f "$here/synchrony.pid" ] || { echo "Unable to locate Synchrony PID file!"; exit 1; }
pid=$(cat "$here/synchrony.pid") && kill "$pid" 2>/dev/null
while [ -n "$pid" ] && [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do
  sleep 0.01
done
rm -f "$here/synchrony.pid"
"""


def synchrony_jar(version: str) -> bytes:
    return f"synchrony-standalone for Confluence {version}\n".encode()


def install_tree(root: Path, version: str, synchrony: bool = False) -> None:
    """A Confluence installation as the archive lays it out, with scripts that really start and stop; with
    `synchrony`, the release's synchrony-standalone.jar, which its start puts into the local home."""
    (root / "bin").mkdir(parents=True)
    for name, text in (("start-confluence.sh", START), ("stop-confluence.sh", STOP)):
        (root / "bin" / name).write_text(text)
        (root / "bin" / name).chmod(0o755)
    (root / POM).parent.mkdir(parents=True)
    (root / POM).write_text(f"version={version}\n")
    (root / INIT).parent.mkdir(parents=True)
    (root / INIT).write_text("# confluence.home=/var/atlassian/application-data/confluence\n")
    (root / "confluence/WEB-INF/lib").mkdir(parents=True)
    (root / "conf").mkdir()
    (root / "conf/server.xml").write_text('<Server port="8000" shutdown="SHUTDOWN"/>\n')
    (root / "logs").mkdir()
    if synchrony:
        (root / "confluence/WEB-INF/packages").mkdir(parents=True)
        (root / "confluence/WEB-INF/packages/synchrony-standalone.jar").write_bytes(synchrony_jar(version))


def release_archive(path: Path, version: str, synchrony: bool = False) -> Path:
    scratch = path.parent / f"build-{version}"
    install_tree(scratch / f"atlassian-confluence-{version}", version, synchrony)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(scratch / f"atlassian-confluence-{version}", arcname=f"atlassian-confluence-{version}")
    return path


@dataclass
class FakeHost:
    name: str
    index: int
    root: Path

    @property
    def base(self) -> Path:
        return self.root / "opt/confluence"

    @property
    def home(self) -> Path:
        return self.root / "var/confluence-home"

    @property
    def url(self) -> str:
        return f"http://127.0.0.{10 + self.index}:8090"

    def running(self) -> tuple[str, str] | None:
        """(installation, version) of the live Confluence process, if any."""
        for install in sorted(self.base.iterdir()):
            pid_file = install / "work/catalina.pid"
            if install.is_symlink() or not pid_file.is_file():
                continue
            pid = pid_file.read_text().strip()
            if pid and _alive(int(pid)):
                return str(install), (install / POM).read_text().strip().removeprefix("version=")
        return None

    def in_use(self) -> str:
        return os.readlink(self.base / "current")

    def kill(self) -> None:
        for _ in range(1000):
            running = self.running()
            if running is None:
                return
            text = (Path(running[0]) / "work/catalina.pid").read_text().strip()
            if text:
                break
            os.sched_yield()  # a second start script is rewriting the pid file (`echo $! > file` empties it first)
        else:
            return
        pid = int(text)
        os.kill(pid, signal.SIGKILL)
        _reap(pid)


@dataclass
class FakeSynchrony:
    """A standalone Synchrony node: its home holds the jar and the scripts; its heartbeat is its live process."""

    name: str
    index: int
    root: Path

    @property
    def home(self) -> Path:
        return self.root / "opt/synchrony"

    @property
    def jar(self) -> Path:
        return self.home / "synchrony-standalone.jar"

    @property
    def heartbeat_url(self) -> str:
        return f"http://127.0.1.{10 + self.index}:8091/synchrony/heartbeat"

    def pid(self) -> int | None:
        try:
            pid = int((self.home / "synchrony.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self) -> None:
        os.system(str(self.home / "start-synchrony.sh"))

    def stop(self) -> None:
        os.system(str(self.home / "stop-synchrony.sh"))

    def kill(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _reap(pid: int) -> None:
    for _ in range(500):
        if not _alive(pid):
            return
        os.sched_yield()


class FakeLogin(LocalTransport):
    """This machine's shell, logged in with a home of the site's own: archives staged in `~/.cache/confluo` by
    suites running side by side on one machine never meet."""

    def __init__(self, node: str, home: Path) -> None:
        super().__init__(node)
        home.mkdir(exist_ok=True)
        self.home = str(home)

    def run(
        self, command: str, *, stdin: bytes | None = None, timeout: float = 120.0, check: bool = True
    ) -> CommandResult:
        return super().run(f"HOME={shlex.quote(self.home)}; {command}", stdin=stdin, timeout=timeout, check=check)


@dataclass
class FakeClusterApi:
    """The ZDU state machine over the fake hosts."""

    site: FakeSite
    upgrade_mode: bool = False
    original_version: str | None = None
    tasks_failed: bool = False
    unreachable: bool = False
    verify_tls: bool = True
    calls: list[str] = field(default_factory=list)
    # A state change that fails with the load balancer's 503, untouched, this many times more: {"approve": 6}
    gateway_errors: dict[str, int] = field(default_factory=dict)

    def _through_the_gateway(self, action: str) -> None:
        self.calls.append(action)
        if self.gateway_errors.get(action, 0) > 0:
            self.gateway_errors[action] -= 1
            raise ApiError(f"cluster API POST http://lb.invalid/rest/zdu/{action}: HTTP 503: No server is available")

    def _nodes(self) -> tuple[NodeInfo, ...]:
        return tuple(self._node(host) for host in self.site.hosts)

    def _node(self, host: FakeHost) -> NodeInfo:
        running = host.running()
        state = NodeState.OFFLINE
        version = running[1] if running else (self.original_version or SOURCE)
        if running:
            state = NodeState.ERROR if self.site.fails(host.name, running[1]) else NodeState.ACTIVE
        load, users = self.site.load.get(host.name, 0), self.site.users.get(host.name, 0)
        errors = (f"FakeUpgradeTask: {host.name}'s tasks failed",) if self.tasks_failed else ()
        address = f"127.0.0.{10 + host.index}"
        return NodeInfo(f"id-{host.name}", host.name, address, state, version, "1", load, users, errors)

    def _state(self, nodes: tuple[NodeInfo, ...]) -> ClusterState:
        if not self.upgrade_mode:
            return ClusterState.STABLE
        if self.tasks_failed:
            return ClusterState.UPGRADE_TASKS_FAILED
        if any(n.state is NodeState.ERROR for n in nodes):
            return ClusterState.MIXED
        versions = {n.version for n in nodes if n.state is not NodeState.OFFLINE}
        if versions == {self.original_version} or not versions:
            return ClusterState.READY_TO_UPGRADE
        if len(versions) == 1 and all(n.state is NodeState.ACTIVE for n in nodes):
            return ClusterState.READY_TO_RUN_UPGRADE_TASKS
        return ClusterState.MIXED

    def cluster(self) -> ClusterInfo:
        if self.unreachable:
            raise ApiError("cluster API GET http://lb.invalid/rest/zdu/cluster: connection refused")
        nodes = self._nodes()
        return ClusterInfo(self._state(nodes), self.upgrade_mode, self.original_version, False, nodes)

    def start_upgrade(self) -> ClusterInfo:
        self._through_the_gateway("start")
        if self.cluster().state is not ClusterState.STABLE:
            raise InvalidTransition("409")
        self.upgrade_mode, self.original_version = True, SOURCE
        return self.cluster()

    def cancel_upgrade(self) -> ClusterInfo:
        self._through_the_gateway("cancel")
        if self.cluster().state is not ClusterState.READY_TO_UPGRADE:
            raise InvalidTransition("409")
        self.upgrade_mode = False
        return self.cluster()

    def approve_upgrade(self) -> ClusterInfo:
        self._through_the_gateway("approve")
        if self.cluster().state is not ClusterState.READY_TO_RUN_UPGRADE_TASKS:
            raise InvalidTransition("409")
        if self.site.finalize_fails:
            self.tasks_failed = True
        else:
            self.upgrade_mode, self.original_version = False, None
        return self.cluster()

    def retry_upgrade(self) -> ClusterInfo:
        self._through_the_gateway("retry")
        self.tasks_failed = False
        self.upgrade_mode, self.original_version = False, None
        return self.cluster()

    def heartbeat(self, url: str, *, timeout: float = 5.0) -> Heartbeat:
        node = next(n for n in self.site.synchrony if n.heartbeat_url == url)
        if node.pid() is None:
            return Heartbeat(False, "unreachable (ConnectError)")
        if node.name in self.site.synchrony_failing and node.jar.read_bytes() == synchrony_jar(TARGET):
            return Heartbeat(False, "HTTP 503 'starting'")  # the new jar never comes up on this node
        return Heartbeat(True, "OK")

    def node_status(self, url: str, *, timeout: float = 5.0) -> StatusState:
        host = next(h for h in self.site.hosts if h.url == url)
        running = host.running()
        if running is None:
            return StatusState.UNREACHABLE
        return StatusState.ERROR if self.site.fails(host.name, running[1]) else StatusState.RUNNING

    def view_page(self, url: str) -> PageView:
        host = next(h for h in self.site.hosts if h.url == url)
        running = host.running()
        if running is None:
            return PageView(False, "unreachable (ConnectError)")
        if host.name in self.site.pages_broken and running[1] == TARGET:
            return PageView(False, "HTTP 500")  # ACTIVE and RUNNING, but the new release renders no page
        return PageView(True, "page 98306 viewed")

    def close(self) -> None:
        return None


@dataclass
class FakeSite:
    """Hosts, the cluster API over them, a clock, an inventory and the next release's archive."""

    dir: Path
    hosts: list[FakeHost]
    inventory: Path
    archive: Path
    clock: FakeClock = field(default_factory=FakeClock)
    failing: set[str] = field(default_factory=set)  # nodes on which the new release reports ERROR once started
    pages_broken: set[str] = field(default_factory=set)  # nodes on which the new release serves no page (yet ACTIVE)
    load: dict[str, int] = field(default_factory=dict)
    finalize_fails: bool = False
    users: dict[str, int] = field(default_factory=dict)  # active users the cluster reports per node
    synchrony: list[FakeSynchrony] = field(default_factory=list)
    synchrony_failing: set[str] = field(default_factory=set)  # Synchrony nodes whose heartbeat never OKs the new jar
    api: FakeClusterApi = field(init=False)
    content: FakeContentApi = field(init=False)
    lb: FakeLoadBalancer | None = None  # with_balancer() adds one, and the inventory's section for it

    def __post_init__(self) -> None:
        self.api = FakeClusterApi(self)
        self.content = FakeContentApi(self.clock, "http://lb.invalid", [host.url for host in self.hosts])

    def with_balancer(self, **section: object) -> FakeLoadBalancer:
        """A load balancer in front of the hosts (the inventory names a `command` one; the port is this fake)."""
        self.lb = FakeLoadBalancer(self)
        commands = {"drain": "true", "ready": "true", "status": "echo ready"}
        self.write_inventory(load_balancer={"kind": "command", **commands, **section})
        return self.lb

    @classmethod
    def build(cls, tmp_path: Path, nodes: int = 3, synchrony: int = 0, **inventory_changes: object) -> FakeSite:
        """`synchrony`: that many standalone Synchrony nodes, on the jar of SOURCE (the releases then ship one)."""
        hosts = [FakeHost(f"node{i}", i, tmp_path / "hosts" / f"node{i}") for i in range(1, nodes + 1)]
        archive = release_archive(tmp_path / f"atlassian-confluence-{TARGET}.tar.gz", TARGET, synchrony > 0)
        for host in hosts:
            install_tree(host.base / SOURCE, SOURCE, synchrony > 0)
            (host.base / "current").symlink_to(host.base / SOURCE)
            host.home.mkdir(parents=True)
            (host.home / "confluence.cfg.xml").write_text("<confluence-configuration/>\n")
            if synchrony:
                (host.base / SOURCE / INIT).write_text(f"confluence.home={host.home}\n")
        site = cls(tmp_path, hosts, tmp_path / "inventory.yaml", archive)
        site.synchrony = [_synchrony_host(tmp_path, i) for i in range(1, synchrony + 1)]
        site.write_inventory(**inventory_changes)
        site.start_all()
        return site

    def write_inventory(self, **changes: object) -> None:
        document: dict[str, object] = {
            "cluster": {
                "name": "fake",
                "api_url": "http://lb.invalid",
                "credentials": {"username": "admin", "password_env": "HOME"},
            },
            "target": {"version": TARGET, "archive": str(self.archive)},
            "database": "postgresql",
            "defaults": {"transport": "local", "sudo": False},
            "nodes": [
                {
                    "name": host.name,
                    "url": host.url,
                    "install": {"base": str(host.base)},
                    "home": str(host.home),
                }
                for host in self.hosts
            ],
        }
        if self.synchrony:
            document["synchrony"] = {
                "timeouts": {"stop_seconds": 30, "start_seconds": 30},
                "nodes": [
                    {"name": n.name, "home": str(n.home), "heartbeat_url": n.heartbeat_url} for n in self.synchrony
                ],
            }
        document.update(changes)
        self.inventory.write_text(yaml.safe_dump(document))

    def ports(self) -> Ports:
        def transport(node: Node, **_: object) -> LocalTransport:
            return FakeLogin(node.name, self.dir / "login")

        def api(_cluster: ClusterSettings, _auth: ApiAuth, _clock: object, _urls: object) -> FakeClusterApi:
            return self.api

        def content(_cluster: ClusterSettings, _auth: ApiAuth, _clock: object) -> FakeContentApi:
            self.content.clock = self.clock  # a test may have put in a clock of its own since
            return self.content

        return Ports(
            transport=transport, api=api, content=content, clock=self.clock, state_dir=self.dir / "state",
            balancer=lambda *_, **__: self.lb,
        )  # fmt: skip

    def host(self, name: str) -> FakeHost:
        return next(host for host in self.hosts if host.name == name)

    def start_all(self) -> None:
        for host in self.hosts:
            if host.running() is None:
                os.system(f"{host.base / 'current/bin/start-confluence.sh'}")
        for synchrony in self.synchrony:
            synchrony.start()

    def stop_all(self) -> None:
        for host in self.hosts:
            host.kill()
        for synchrony in self.synchrony:
            synchrony.kill()

    def fail_start(self, name: str) -> None:
        self.failing.add(name)

    def fails(self, name: str, version: str) -> bool:
        return name in self.failing and version == TARGET

    def versions(self) -> dict[str, str | None]:
        return {h.name: (running[1] if (running := h.running()) else None) for h in self.hosts}

    def snapshot(self) -> dict[str, str]:
        """Every file under the homes and old installations, with its sha256: nothing may be lost."""
        files = {}
        for host in self.hosts:
            for path in sorted([*host.home.rglob("*"), *(host.base / SOURCE).rglob("*")]):
                if path.is_file() and "work" not in path.parts and "logs" not in path.parts:
                    files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        return files


@dataclass
class FakeLoadBalancer:
    """A load balancer over the fake hosts. Admin state is what confluo set (READY at first); health is the host's
    (running, not failing); a server's sessions (`sessions`) leave `leave_seconds` after it is drained, on the
    site's clock; a `deaf` server accepts changes that do not take effect; `unreachable` fails every call."""

    site: FakeSite
    admin: dict[str, AdminState] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    leave_seconds: float = 0.0
    deaf: set[str] = field(default_factory=set)
    unreachable: bool = False
    changes: list[tuple[str, str]] = field(default_factory=list)  # (server, what), in order
    weights: dict[str, list[int]] = field(default_factory=dict)
    warned: tuple[str, ...] = ()  # what its set-up check reports
    _drained_at: dict[str, float] = field(default_factory=dict)

    def state(self, server: str) -> ServerState:
        host = self._host(server)
        admin = self.admin.get(server, AdminState.READY)
        running = host.running()
        healthy = running is not None and not self.site.fails(host.name, running[1])
        drained = self._drained_at.get(server)
        gone = drained is not None and self.site.clock.monotonic() >= drained + self.leave_seconds
        sessions = 0 if gone or not healthy else self.sessions.get(server, 0)
        return ServerState(server, admin, healthy, sessions, f"{admin.value} {'UP' if healthy else 'DOWN'}")

    def drain(self, server: str) -> None:
        self._set(server, AdminState.DRAIN)
        self._drained_at.setdefault(server, self.site.clock.monotonic())

    def maint(self, server: str) -> None:
        self._set(server, AdminState.MAINT)

    def ready(self, server: str) -> None:
        self._set(server, AdminState.READY)
        self._drained_at.pop(server, None)

    def weight(self, server: str, percent: int) -> None:
        self._host(server)
        self.weights.setdefault(server, []).append(percent)

    def describe(self, server: str, target: AdminState) -> str:
        return f"fakelb {target.value} {server}"

    def warnings(self) -> tuple[str, ...]:
        return self.warned

    def out_of_pool(self) -> set[str]:
        return {server for server, admin in self.admin.items() if admin is not AdminState.READY}

    def _set(self, server: str, target: AdminState) -> None:
        self._host(server)
        self.changes.append((server, target.value))
        if server not in self.deaf:
            self.admin[server] = target
        check_applied("fake load balancer", self.state(server), target)

    def _host(self, server: str) -> FakeHost:
        if self.unreachable:
            raise LoadBalancerError("fake load balancer: connection refused")
        for host in self.site.hosts:
            if host.name == server:
                return host
        raise LoadBalancerError(f"fake load balancer: no server {server!r}")


def _synchrony_host(tmp_path: Path, index: int) -> FakeSynchrony:
    node = FakeSynchrony(f"synchrony{index}", index, tmp_path / "hosts" / f"synchrony{index}")
    node.home.mkdir(parents=True)
    node.jar.write_bytes(synchrony_jar(SOURCE))
    for name, text in (("start-synchrony.sh", SYNCHRONY_START), ("stop-synchrony.sh", SYNCHRONY_STOP)):
        (node.home / name).write_text(text)
        (node.home / name).chmod(0o755)
    return node
