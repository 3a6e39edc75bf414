"""The inventory as the rest of confluo sees it: plain frozen values, already validated.

Nothing here reads YAML or knows about the schema library; `load.py` and `schema.py` build these values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from confluo.secrets import SecretRef
from confluo.versions import Version

TransportKind = Literal["ssh", "local"]
Layout = Literal["symlink", "plain"]
ServiceKind = Literal["script", "initd", "systemd"]
TransferMode = Literal["per-node", "shared-home"]
Database = Literal["mysql", "postgresql", "oracle", "sqlserver"]
LoadBalancerKind = Literal["haproxy", "nginx", "apache", "command"]
OnFailure = Literal["rollback", "halt"]
OnDrainTimeout = Literal["halt", "continue"]

TRANSPORTS: tuple[TransportKind, ...] = ("ssh", "local")
LAYOUTS: tuple[Layout, ...] = ("symlink", "plain")
SERVICE_KINDS: tuple[ServiceKind, ...] = ("script", "initd", "systemd")
TRANSFER_MODES: tuple[TransferMode, ...] = ("per-node", "shared-home")
DATABASES: tuple[Database, ...] = ("mysql", "postgresql", "oracle", "sqlserver")
LOAD_BALANCER_KINDS: tuple[LoadBalancerKind, ...] = ("haproxy", "nginx", "apache", "command")
ON_FAILURE: tuple[OnFailure, ...] = ("rollback", "halt")
ON_DRAIN_TIMEOUT: tuple[OnDrainTimeout, ...] = ("halt", "continue")

DEFAULT_CUSTOMIZATION_FILES: tuple[str, ...] = (
    "conf/server.xml",
    "bin/setenv.sh",
    "bin/user.sh",
    "confluence/WEB-INF/classes/seraph-config.xml",
    "confluence/WEB-INF/classes/crowd.properties",
)
RESOLUTION_WORDS = ("keep-mine", "take-release")  # customizations.resolve's values besides a file's path
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
MIN_KEEP_RELEASES = 2  # the release in use and the previous one, for a rollback


@dataclass(frozen=True)
class Credentials:
    username: str | None
    secret: SecretRef


@dataclass(frozen=True)
class ClusterSettings:
    name: str
    api_url: str
    verify_tls: bool
    timeout_seconds: float
    credentials: Credentials


@dataclass(frozen=True)
class Target:
    version: Version
    archive: str  # an http(s) URL, or an absolute local path
    sha256: str | None  # lower-case hex; required for a URL
    transfer: TransferMode
    shared_home: PurePosixPath | None

    @property
    def staging_shared_home(self) -> str | None:
        """The shared home the archive is sent to once, or None when it goes to every node."""
        return str(self.shared_home) if self.transfer == "shared-home" and self.shared_home else None


@dataclass(frozen=True)
class SshSettings:
    user: str | None
    port: int
    key: Path | None
    known_hosts: Path
    alias: str | None
    connect_timeout_seconds: float


@dataclass(frozen=True)
class InstallSettings:
    layout: Layout
    base: PurePosixPath | None
    path: PurePosixPath | None


@dataclass(frozen=True)
class ServiceSettings:
    kind: ServiceKind
    name: str
    file: PurePosixPath | None = None  # the init.d script or systemd unit that names the installation

    @property
    def definition(self) -> PurePosixPath | None:
        """The file confluo rewrites to repoint an initd or systemd service (None for script)."""
        if self.file is not None or self.kind == "script":
            return self.file
        if self.kind == "initd":
            return PurePosixPath("/etc/init.d") / self.name
        return PurePosixPath("/etc/systemd/system") / f"{self.name}.service"


@dataclass(frozen=True)
class Timeouts:
    stop_seconds: float
    start_seconds: float
    finalize_seconds: float
    min_ready_seconds: float = 0.0  # how long an upgraded node must keep serving before the next one is stopped
    kill_grace_seconds: float = 30.0  # a hung stop: how long each signal (SIGTERM again, then SIGKILL) is given
    page_view_seconds: float = 60.0  # a node just ACTIVE: how long its page reads may fail (apps still enabling)
    index_seconds: float = 60.0  # a node just started: how long its search index may take to catch up


@dataclass(frozen=True)
class Access:
    """How confluo reaches a machine and acts on it: the same for a Confluence node and a Synchrony node."""

    transport: TransportKind
    ssh: SshSettings
    sudo: bool  # changes as `sudo -n`
    run_as: str | None  # the user the service runs as: its scripts run as that user


@dataclass(frozen=True)
class NodeSettings(Access):
    """The settings a node inherits from `defaults` and may override."""

    install: InstallSettings
    home: PurePosixPath
    service: ServiceSettings
    timeouts: Timeouts
    min_free_disk_mb: int


@dataclass(frozen=True)
class Node(NodeSettings):
    name: str  # the node's name in the cluster
    host: str  # a host name (lower case) or an address (normalised), or an ssh alias
    url: str  # normalised: lower-case scheme and host, no default port, no trailing slash
    cluster_id: str | None = None  # the node's id in the ZDU API, where its name does not tell it apart
    lb_server: str | None = None  # the node's server name in the load balancer, when not its name

    @property
    def balancer_server(self) -> str:
        """The name the load balancer knows this node by."""
        return self.lb_server or self.name


# --- standalone Synchrony ----------------------------------------------------------------------------------

SYNCHRONY_JAR = "synchrony-standalone.jar"  # in the Synchrony home, and in every Confluence node's local home


@dataclass(frozen=True)
class SynchronyTimeouts:
    stop_seconds: float = 60.0  # stop-synchrony.sh until the process is gone and the heartbeat down
    start_seconds: float = 300.0  # start-synchrony.sh until the heartbeat answers OK


@dataclass(frozen=True)
class SynchronyNode(Access):
    """A node of a standalone Synchrony cluster: its home holds the jar and start-/stop-synchrony.sh."""

    name: str
    host: str
    home: PurePosixPath
    heartbeat_url: str  # normalised like a node's url; answers 200 "OK" while Synchrony serves
    timeouts: SynchronyTimeouts = field(default_factory=SynchronyTimeouts)

    @property
    def jar(self) -> PurePosixPath:
        return self.home / SYNCHRONY_JAR


# --- load balancers (confluo/loadbalancer/factory.py builds the adapter; steps/pool.py drives it) -----------


@dataclass(frozen=True)
class DrainSettings:
    """What every kind shares: how long a drain may take, and what then."""

    drain_seconds: float
    on_drain_timeout: OnDrainTimeout


@dataclass(frozen=True)
class RemoteHost:
    """A machine confluo reaches over SSH to operate the load balancer (None: this machine)."""

    host: str
    ssh: SshSettings


@dataclass(frozen=True)
class WeightRamp:
    """HAProxy only: after a node is back, raise its weight to 100% in `steps` over `seconds`."""

    steps: int
    seconds: float


@dataclass(frozen=True)
class HaproxyBalancer(DrainSettings):
    socket: PurePosixPath  # the runtime API ("stats socket ... level admin")
    backend: str
    remote: RemoteHost | None
    weight_ramp: WeightRamp | None
    config: PurePosixPath | None = None  # read for the server-state-file check; add-node writes a server to it
    reload_command: str = "systemctl reload haproxy"
    test_command: str | None = None  # None: haproxy -c -q -f CONFIG
    kind: Literal["haproxy"] = "haproxy"

    @property
    def host(self) -> str | None:
        return self.remote.host if self.remote else None


NGINX_PID_FILE = PurePosixPath("/run/nginx.pid")


@dataclass(frozen=True)
class NginxBalancer(DrainSettings):
    upstream_file: PurePosixPath  # the file holding the upstream's `server` lines
    upstream: str
    reload_command: str
    test_command: str
    remote: RemoteHost | None
    pid_file: PurePosixPath = NGINX_PID_FILE
    kind: Literal["nginx"] = "nginx"

    @property
    def host(self) -> str | None:
        return self.remote.host if self.remote else None


@dataclass(frozen=True)
class ApacheBalancer(DrainSettings):
    balancer_manager_url: str
    balancer: str  # the name after balancer:// in the Apache configuration
    verify_tls: bool
    credentials: Credentials | None
    kind: Literal["apache"] = "apache"


@dataclass(frozen=True)
class CommandBalancer(DrainSettings):
    """Commands run on this machine, with {server}, {host} and {node} replaced (shell-quoted) for each node."""

    drain: str
    ready: str
    status: str
    maint: str | None = None
    kind: Literal["command"] = "command"


LoadBalancer = HaproxyBalancer | NginxBalancer | ApacheBalancer | CommandBalancer
COMMAND_PLACEHOLDERS = ("server", "host", "node")


@dataclass(frozen=True)
class Carry:
    """How customization files are carried: where the old release's stock files come from, and the
    administrator's per-file resolutions (keep-mine, take-release, or a local file's path)."""

    base_archive: str | None = None
    base_sha256: str | None = None
    accept_two_way: bool = False
    resolve: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    path: Path
    cluster: ClusterSettings
    target: Target
    database: Database
    customizations: tuple[str, ...]
    keep_releases: int
    load_balancer: LoadBalancer | None
    nodes: tuple[Node, ...]
    on_failure: OnFailure = "rollback"  # what an upgrade does when a node fails: roll that node back, or halt
    carry: Carry = field(default_factory=Carry)
    synchrony: tuple[SynchronyNode, ...] = ()  # standalone Synchrony, upgraded once the first node runs the target
