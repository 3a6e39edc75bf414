"""What the read-only probes found, as plain values: the plan is built from these alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluo.api.base import ClusterInfo
from confluo.loadbalancer.base import AdminState, ServerState

SERVICE_FILE_KEY = "@service"  # where the service definition's text goes in NodeFacts.files


@dataclass(frozen=True)
class NodeFacts:
    """What one node looks like now. `error` says why it could not be probed ("unreachable: …", "probe failed …")."""

    node: str
    error: str | None = None
    login_home: str = ""
    login_user: str | None = None
    old_install: str | None = None
    installed_version: str | None = None
    new_install_version: str | None = None
    new_install_exists: bool = False
    free_mb: int | None = None
    staging_free_mb: int | None = None
    home_exists: bool = False
    drivers: tuple[str, ...] = ()
    releases: tuple[str, ...] = ()
    pid: int | None = None
    staged_bytes: int | None = None
    sudo_denied: tuple[str, ...] = ()
    present: tuple[str, ...] = ()  # customization files that exist in the installation in use
    files: dict[str, str] = field(default_factory=dict)  # their text, where the login user can read it
    not_text: tuple[str, ...] = ()  # readable, but not UTF-8 text: copied whole, never merged
    has_stock: bool = False  # the installation in use keeps its release's stock files (confluo extracted it)
    stock: dict[str, str] = field(default_factory=dict)  # those stock files' text: the merge's base
    # Which cluster node the host is configured as, whatever the customization files are:
    configured_names: tuple[str, ...] = ()  # -Dconfluence.cluster.node.name in bin/setenv.sh
    configured_id: str | None = None  # the node id its local home keeps (confluence.cfg.xml), where it keeps one
    bound_addresses: tuple[str, ...] = ()  # the addresses its Connectors are bound to (conf/server.xml)
    forces_cfg_update: str | None = None  # where ATL_FORCE_CFG_UPDATE=true is set (setenv.sh, the service)
    join_type: str | None = None  # confluence.cluster.join.type: tcp_ip, multicast, aws
    peers: tuple[str, ...] = ()  # confluence.cluster.peers, with TCP/IP discovery

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class SynchronyFacts:
    """What one standalone Synchrony node looks like now. `error` says why it could not be probed
    ("unreachable: …", "probe failed …")."""

    node: str
    error: str | None = None
    login_home: str = ""
    login_user: str | None = None
    home_exists: bool = False
    jar_exists: bool = False
    jar_readable: bool = False  # by the login user: every check of a jar's sha256 reads it so
    jar_sha256: str | None = None
    jar_bytes: int | None = None
    not_executable: tuple[str, ...] = ()  # start-synchrony.sh or stop-synchrony.sh
    free_mb: int | None = None  # in the Synchrony home
    staging_free_mb: int | None = None  # in the login user's home, where the jar lands first
    running: bool = False  # synchrony.pid names a live process
    sudo_denied: tuple[str, ...] = ()
    heartbeat: str = ""  # what its heartbeat URL answered (from this machine)
    heartbeat_ok: bool = False

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Archive:
    path: Path
    version: str
    sha256: str
    size: int
    stock_files: dict[str, str]  # relative path in the installation -> text, for the plan's diffs


@dataclass(frozen=True)
class BalancerFacts:
    """The load balancer as the probe read it: each node's server state, by node name, and how each change
    would be made by hand. `problems`: why it cannot be used (unreachable, a node not in it)."""

    kind: str
    states: Mapping[str, ServerState] = field(default_factory=dict)
    commands: Mapping[str, Mapping[AdminState, str]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    addition: str | None = None  # add-node: how confluo adds the new node's server (None: it cannot, or it is there)
    addition_refused: str | None = None  # add-node: why this load balancer cannot have it added by confluo


@dataclass(frozen=True)
class Facts:
    """Everything the read-only probes found."""

    nodes: tuple[NodeFacts, ...]
    cluster: ClusterInfo | None
    cluster_error: str | None
    archive: Archive | None
    archive_error: str | None
    resumable_from: str | None = None  # a confluo run from this machine started an upgrade to this target
    base_archive: Archive | None = None  # customizations.base_archive: the running release's stock files
    base_archive_error: str | None = None
    resolved: dict[tuple[str, str], str] = field(default_factory=dict)  # resolved files' text, by (node, file)
    resolve_errors: dict[tuple[str, str], str] = field(default_factory=dict)
    balancer: BalancerFacts | None = None  # None: the inventory has no load balancer
    synchrony: tuple[SynchronyFacts, ...] = ()
    jar_readable: dict[str, bool] = field(default_factory=dict)  # node -> its local home's jar, by the login user

    def for_node(self, name: str) -> NodeFacts:
        return next(facts for facts in self.nodes if facts.node == name)

    def for_synchrony(self, name: str) -> SynchronyFacts:
        return next(facts for facts in self.synchrony if facts.node == name)
