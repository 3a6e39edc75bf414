"""What a lab is: its options, its nodes and where each piece lives, and its record, ``lab.json``.

Addresses: node ``k`` of slot ``s`` is 127.0.s.(10+k), port 8090; the load balancer is 127.0.s.10:8080; standalone
Synchrony host ``k`` is 127.0.s.(100+k), its heartbeat on port 8091.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from confluo.lab import balancer, hosts
from confluo.lab.hosts import LabError

DEFAULT_DIR = Path("confluo-lab")
DEFAULT_VERSION = "9.2.13"
DATABASES = ("mysql", "postgresql")
LB_KINDS = (*balancer.KINDS, "none")
HTTP_PORT = 8090
MAX_NODES = 40
MAX_SYNCHRONY = 9
SYNCHRONY_PORT = 8091
ADMIN_USER = "admin"
LAB_FORMAT = 1


@dataclass(frozen=True)
class Timings:
    start_seconds: float = 2.0
    stop_seconds: float = 1.0
    finalize_seconds: float = 2.0
    index_seconds: float = 1.0  # how often each node's search index takes the new content


@dataclass(frozen=True)
class LabOptions:
    nodes: int = 3
    version: str = DEFAULT_VERSION
    db: str = "mysql"
    lb: str = balancer.HAPROXY
    timings: Timings = field(default_factory=Timings)
    local: bool = False  # force local mode even where ssh mode is possible
    lb_retries: bool = False  # the load balancer re-sends failed requests to another server (hides a stop)
    synchrony: int = 0  # standalone Synchrony hosts
    spare_hosts: int = 0  # hosts with sshd and a login user but no Confluence, for `confluo add-node`


def validate(options: LabOptions) -> None:
    parse_version(options.version)
    if not 1 <= options.nodes <= MAX_NODES:
        raise LabError(f"--nodes must be between 1 and {MAX_NODES}, not {options.nodes}")
    if not 0 <= options.synchrony <= MAX_SYNCHRONY:
        raise LabError(f"--synchrony must be between 0 and {MAX_SYNCHRONY}, not {options.synchrony}")
    if not 0 <= options.spare_hosts <= MAX_NODES - options.nodes:
        raise LabError(f"--spare-hosts must be between 0 and {MAX_NODES - options.nodes}, not {options.spare_hosts}")
    if options.db not in DATABASES:
        raise LabError(f"--db must be one of {', '.join(DATABASES)}, not {options.db!r}")
    if options.lb not in LB_KINDS:
        raise LabError(f"--lb must be one of {', '.join(LB_KINDS)}, not {options.lb!r}")
    timings = vars(options.timings)
    if any(value < 0 for value in timings.values()):
        raise LabError(f"timings must not be negative: {timings}")


class _LabHost:
    """A machine of the lab: a folder under hosts/ laid out like a production machine, with its own sshd."""

    lab_dir: Path
    user: str | None

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def address(self) -> str:
        raise NotImplementedError

    @property
    def host_root(self) -> Path:
        return self.lab_dir / "hosts" / self.name

    @property
    def sshd(self) -> hosts.Sshd:
        return hosts.Sshd(self.host_root / "sshd", self.address, self.user or "")


@dataclass(frozen=True)
class Node(_LabHost):
    """One node and its "host": a folder of the lab with the layout of a production machine."""

    lab_dir: Path
    index: int
    slot: int
    user: str | None  # the login user and CONF_USER; None in local mode

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def address(self) -> str:
        return node_address(self.slot, self.index)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{HTTP_PORT}"

    @property
    def install_base(self) -> Path:
        return self.host_root / "opt/atlassian/confluence"

    @property
    def current(self) -> Path:
        return self.install_base / "current"

    @property
    def home(self) -> Path:
        return self.host_root / "var/atlassian/application-data/confluence"

    @property
    def pid_record(self) -> Path:
        return self.lab_dir / "run" / f"{self.name}.pid"


@dataclass(frozen=True)
class SynchronyHost(_LabHost):
    """A standalone Synchrony node's "host": its own folder, sshd and login user, and the Synchrony home."""

    lab_dir: Path
    index: int
    slot: int
    user: str | None  # the login user, as which Synchrony runs; None in local mode

    @property
    def name(self) -> str:
        return f"synchrony{self.index}"

    @property
    def address(self) -> str:
        return f"127.0.{self.slot}.{100 + self.index}"

    @property
    def heartbeat_url(self) -> str:
        return f"http://{self.address}:{SYNCHRONY_PORT}/synchrony/heartbeat"

    @property
    def home(self) -> Path:
        return self.host_root / "opt/atlassian/synchrony"

    @property
    def jar(self) -> Path:
        return self.home / "synchrony-standalone.jar"

    @property
    def pid_file(self) -> Path:
        return self.home / "synchrony.pid"

    @property
    def fault_file(self) -> Path:
        return self.host_root / "etc/synchrony-fault.json"


@dataclass(frozen=True)
class SpareHost(_LabHost):
    """A host prepared like a node's (its own address, sshd and login user; the shared home at the same path)
    with no Confluence on it: where `confluo add-node` puts a new node."""

    lab_dir: Path
    index: int  # spare1, spare2, ...
    number: int  # its place after the nodes: its address and user continue theirs
    slot: int
    user: str | None

    @property
    def name(self) -> str:
        return f"spare{self.index}"

    @property
    def address(self) -> str:
        return node_address(self.slot, self.number)

    @property
    def node_name(self) -> str:
        """The node it is meant to carry (its load-balancer server's name): the next after the lab's nodes."""
        return f"node{self.number}"

    @property
    def install_base(self) -> Path:
        return self.host_root / "opt/atlassian/confluence"

    @property
    def home(self) -> Path:
        return self.host_root / "var/atlassian/application-data/confluence"


@dataclass(frozen=True)
class Lab:
    """What lab.json records: enough to find, inspect and tear down every piece."""

    dir: Path
    slot: int
    mode: str  # "ssh" | "local"
    version: str
    db: str
    lb: str
    timings: Timings
    admin_password: str
    node_count: int
    state: str = "starting"  # "starting" while `up` runs, then "up"
    lb_retries: bool = False
    synchrony_count: int = 0
    spare_count: int = 0

    @property
    def ssh(self) -> bool:
        return self.mode == "ssh"

    @property
    def nodes(self) -> list[Node]:
        return [Node(self.dir, k, self.slot, self.user_of(k)) for k in range(1, self.node_count + 1)]

    @property
    def synchrony(self) -> list[SynchronyHost]:
        def user(index: int) -> str | None:
            return hosts.synchrony_user_name(self.slot, index) if self.ssh else None

        return [SynchronyHost(self.dir, k, self.slot, user(k)) for k in range(1, self.synchrony_count + 1)]

    def synchrony_host(self, name: str) -> SynchronyHost | None:
        return next((host for host in self.synchrony if host.name == name), None)

    @property
    def spares(self) -> list[SpareHost]:
        numbers = range(self.node_count + 1, self.node_count + self.spare_count + 1)
        return [SpareHost(self.dir, j, k, self.slot, self.user_of(k)) for j, k in enumerate(numbers, 1)]

    @property
    def node_names(self) -> set[str]:
        return {n.name for n in self.nodes}

    def user_of(self, index: int) -> str | None:
        return hosts.user_name(self.slot, index) if self.ssh else None

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise LabError(f"no node {name!r} in the lab at {self.dir} (its nodes: {known})")

    @property
    def cluster_name(self) -> str:
        return f"confluo-lab-{self.slot}"

    @property
    def next_version(self) -> str:
        return next_bugfix(self.version)

    @property
    def next_archive(self) -> Path:
        return self.dir / f"atlassian-confluence-{self.next_version}.tar.gz"

    @property
    def source_archive(self) -> Path:
        """The installed release's archive, kept for the three-way merge's base."""
        return self.dir / f"atlassian-confluence-{self.version}.tar.gz"

    @property
    def db_file(self) -> Path:
        return self.dir / "db" / "confluence.db"

    @property
    def shared_home(self) -> Path:
        return self.dir / "shared"

    @property
    def client_key(self) -> Path:
        return self.dir / "keys" / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yaml"

    @property
    def password_file(self) -> Path:
        return self.dir / "admin.password"

    @property
    def group(self) -> str | None:
        return hosts.group_name(self.slot) if self.ssh else None

    @property
    def balancer(self) -> balancer.Balancer | None:
        if self.lb not in balancer.KINDS:
            return None
        gid = hosts.group_id(self.slot) if self.ssh and hosts.group_exists(hosts.group_name(self.slot)) else None
        return balancer.Balancer(
            self.lb, self.dir / "lb", lb_address(self.slot), socket_gid=gid, retries=self.lb_retries
        )

    @property
    def api_url(self) -> str:
        return f"http://{lb_address(self.slot)}:{balancer.LB_PORT}" if self.lb != "none" else self.nodes[0].url


def node_address(slot: int, index: int) -> str:
    return f"127.0.{slot}.{10 + index}"


def lb_address(slot: int) -> str:
    return f"127.0.{slot}.10"


def next_bugfix(version: str) -> str:
    major, minor, patch = parse_version(version)
    return f"{major}.{minor}.{patch + 1}"


def parse_version(version: str) -> tuple[int, int, int]:
    """Stricter than the node program's rules: the lab names releases X.Y.Z."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if match is None:
        raise LabError(f"version {version!r} is not of the form X.Y.Z (e.g. {DEFAULT_VERSION})")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


# --- lab.json -------------------------------------------------------------------------------------------


def lab_json(lab_dir: Path) -> Path:
    return lab_dir / "lab.json"


def save(lab: Lab) -> None:
    record = {
        "format": LAB_FORMAT,
        "dir": str(lab.dir),
        "slot": lab.slot,
        "mode": lab.mode,
        "state": lab.state,
        "version": lab.version,
        "db": lab.db,
        "lb": lab.lb,
        "lb_retries": lab.lb_retries,
        "timings": vars(lab.timings),
        "admin": {"username": ADMIN_USER, "password": lab.admin_password},
        "nodes": [{"name": n.name, "address": n.address, "user": n.user} for n in lab.nodes],
        "synchrony": [{"name": s.name, "address": s.address, "user": s.user} for s in lab.synchrony],
        "spare_hosts": [{"name": s.name, "address": s.address, "user": s.user} for s in lab.spares],
    }
    path = lab_json(lab.dir)
    draft = path.with_suffix(".json.new")
    # Created 0600 from the start: the file holds the admin password.
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(record, out, indent=2)
    draft.replace(path)


def load(lab_dir: Path) -> Lab:
    lab_dir = lab_dir.resolve()
    path = lab_json(lab_dir)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab in {lab_dir} (no lab.json); start one with `confluo lab up --dir {lab_dir}`") from None
    except (OSError, ValueError) as error:
        raise LabError(f"cannot read {path}: {error}") from None
    return Lab(
        dir=lab_dir,
        slot=int(record["slot"]),
        mode=record["mode"],
        version=record["version"],
        db=record["db"],
        lb=record["lb"],
        timings=Timings(**record["timings"]),
        admin_password=record["admin"]["password"],
        node_count=len(record["nodes"]),
        state=record.get("state", "up"),
        lb_retries=bool(record.get("lb_retries", False)),
        synchrony_count=len(record.get("synchrony", [])),
        spare_count=len(record.get("spare_hosts", [])),
    )
