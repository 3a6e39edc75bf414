"""A small real cluster for the node program's tests: real archives, real scripts, real HTTP.

Each test gets its own loopback addresses (127.0.X.Y, port 8090 as in the lab) so tests running in
parallel with other suites do not collide, and every node process a test starts is killed (by pid)
when the test ends.
"""

from __future__ import annotations

import base64
import getpass
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from confluo.lab import provision
from confluo.lab.node.cluster_state import cluster_view, pid_alive
from confluo.lab.node.clusterdb import init_database
from confluo.lab.node.install import INIT_PROPERTIES, SERVER_XML, SETENV_SH
from confluo.lab.node.versions import build_number_for
from confluo.lab.tarball import build_archive

VERSION = "9.2.13"  # the cluster's version
NEXT = "9.2.14"  # the next bug-fix release
FEATURE = "9.3.0"  # the next feature release (allowed from 7.14 on)
PLATFORM = "10.0.0"  # a platform release (never rolling)
OLDER = "9.2.12"  # a downgrade
VERSIONS = (VERSION, NEXT, FEATURE, PLATFORM, OLDER)

ADMIN, PASSWORD, TOKEN = "admin", "s3cret-pass", "pat-0123456789"
PORT = 8090
START_SECONDS, STOP_SECONDS, FINALIZE_SECONDS = 0.3, 0.2, 0.4


# --- HTTP -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    *,
    auth: tuple[str, str] | None = (ADMIN, PASSWORD),
    token: str | None = None,
    body: object = None,
    timeout: float = 5.0,
) -> Response:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    elif auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return Response(reply.status, dict(reply.headers), reply.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read())


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.03)


# --- addresses ------------------------------------------------------------------------------------------


def _free(address: str) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, PORT))
        except OSError:
            return False
    return True


def _address_pool() -> Iterator[str]:
    # The third octet depends on the pid so that concurrent pytest processes use different ranges;
    # 200+ stays clear of the lab's slots (127.0.<slot>.x).
    first = 200 + os.getpid() % 50
    for third in itertools.chain(range(first, 255), range(200, first)):
        for fourth in range(11, 251):
            address = f"127.0.{third}.{fourth}"
            if _free(address):
                yield address


_ADDRESSES = _address_pool()


# --- archives -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("archives")
    return {version: build_archive(version, out) for version in VERSIONS}


@pytest.fixture(scope="session")
def pristine(archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each release extracted once, untouched: the stock files a lost customization falls back to."""
    base = tmp_path_factory.mktemp("pristine")
    return {version: provision.install_release(path, base, version) for version, path in archives.items()}


# --- the cluster ----------------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    address: str
    host: Path

    @property
    def base(self) -> Path:
        return self.host / "opt/atlassian/confluence"

    @property
    def install(self) -> Path:
        return self.base / "current"

    @property
    def home(self) -> Path:
        return self.host / "var/atlassian/application-data/confluence"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{PORT}"

    @property
    def pid_file(self) -> Path:
        return self.install / "work" / "catalina.pid"

    def catalina_out(self) -> str:
        return (self.install / "logs" / "catalina.out").read_text()

    def home_log(self) -> str:
        return (self.home / "logs" / "atlassian-confluence.log").read_text()

    def cfg_xml(self) -> str:
        return (self.home / "confluence.cfg.xml").read_text()


@dataclass
class Cluster:
    root: Path
    archives: dict[str, Path]
    pristine: dict[str, Path]
    nodes: dict[str, Node] = field(default_factory=dict)
    pids: set[int] = field(default_factory=set)

    @property
    def db(self) -> Path:
        return self.root / "db" / "confluence.db"

    # building

    def add_node(
        self, name: str, version: str = VERSION, *, db_kind: str = "postgresql", lose: tuple[str, ...] = ()
    ) -> Node:
        node = Node(name, next(_ADDRESSES), self.root / "hosts" / name)
        provision.write_host_marker(node.host, name=name, address=node.address, http_port=PORT)
        provision.create_home(
            node.home,
            cluster_name="lab",
            shared_home=self.root / "shared",
            db_file=self.db,
            db_kind=db_kind,
            build_number=build_number_for(VERSION),
        )
        self.nodes[name] = node
        self.install(node, version, db_kind=db_kind, lose=lose)
        return node

    def install(self, node: Node, version: str, *, db_kind: str = "postgresql", lose: tuple[str, ...] = ()) -> None:
        """Install a release the way an upgrade should: customized, then `current` switched.

        ``lose`` names customizations to drop: "address", "name", "home", "driver".
        """
        target = provision.install_release(self.archives[version], node.base, version)
        provision.customize_install(
            target,
            address=node.address,
            node_name=node.name,
            conf_user=getpass.getuser(),
            home=node.home,
            db_kind="postgresql" if "driver" in lose else db_kind,
        )
        stock = {"address": SERVER_XML, "name": SETENV_SH, "home": INIT_PROPERTIES}
        for customization in lose:
            if customization in stock:
                shutil.copyfile(self.pristine[version] / stock[customization], target / stock[customization])
        provision.point_current(node.base, version)

    # running

    def start(self, node: Node) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(node.install / "bin" / "start-confluence.sh")], capture_output=True, text=True, timeout=10, check=False
        )
        if result.returncode == 0:
            self.pids.add(int(node.pid_file.read_text()))
        return result

    def pid(self, node: Node) -> int:
        return int(node.pid_file.read_text())

    def send_stop(self, node: Node) -> subprocess.CompletedProcess[str]:
        """Run stop-confluence.sh (it returns at once; the node stops in the background)."""
        return subprocess.run(
            [str(node.install / "bin" / "stop-confluence.sh")], capture_output=True, text=True, timeout=10, check=False
        )

    def stop(self, node: Node) -> None:
        pid = self.pid(node)
        assert self.send_stop(node).returncode == 0
        wait_for(lambda: not pid_alive(pid), 10, f"{node.name} to exit")

    def kill_all(self) -> None:
        for pid in self.pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)

    # observing

    def status(self, node: Node) -> tuple[int, str] | None:
        try:
            reply = http("GET", node.url + "/status", auth=None, timeout=2)
        except OSError:
            return None
        return reply.status, reply.body.decode()

    def wait_status(self, node: Node, state: str, timeout: float = 10.0) -> tuple[int, str]:
        expected = json.dumps({"state": state}, separators=(",", ":"))
        seen: tuple[int, str] = wait_for(
            lambda: (s := self.status(node)) and s[1] == expected and s, timeout, f"{node.name} /status {state}"
        )
        return seen

    def view_node(self, node: Node, name: str | None = None) -> dict[str, Any]:
        """The node's row in `cluster_view` (by address and name: a "Not configured" row is another row)."""
        rows = [
            n
            for n in cluster_view(self.db)["nodes"]
            if n["address"] == node.address and n["name"] == (name or node.name)
        ]
        assert len(rows) == 1, rows
        row: dict[str, Any] = rows[0]
        return row

    def api(self, node: Node, method: str, route: str, **kwargs: Any) -> Response:
        return http(method, f"{node.url}/rest/zdu/{route}", **kwargs)

    def cluster(self, node: Node) -> dict[str, Any]:
        reply = self.api(node, "GET", "cluster")
        assert reply.status == 200, reply
        body: dict[str, Any] = reply.json()
        return body

    def upgrade(self, node: Node, version: str) -> None:
        """The by-hand rolling step: stop, install the new release customized, start, wait until RUNNING."""
        self.stop(node)
        self.install(node, version)
        assert self.start(node).returncode == 0
        self.wait_status(node, "RUNNING")


@pytest.fixture
def cluster(tmp_path: Path, archives: dict[str, Path], pristine: dict[str, Path]) -> Iterator[Cluster]:
    lab = Cluster(tmp_path, archives, pristine)
    init_database(
        lab.db,
        version=VERSION,
        admin_user=ADMIN,
        admin_password=PASSWORD,
        token=TOKEN,
        start_seconds=START_SECONDS,
        stop_seconds=STOP_SECONDS,
        finalize_seconds=FINALIZE_SECONDS,
    )
    try:
        yield lab
    finally:
        lab.kill_all()


@pytest.fixture
def running(cluster: Cluster) -> tuple[Cluster, Node, Node]:
    """A two-node cluster, both nodes RUNNING."""
    first, second = cluster.add_node("node1"), cluster.add_node("node2")
    for node in (first, second):
        assert cluster.start(node).returncode == 0
    for node in (first, second):
        cluster.wait_status(node, "RUNNING")
    return cluster, first, second
