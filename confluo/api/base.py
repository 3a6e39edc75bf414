"""Port 2, Confluence over HTTP: the values of the rolling-upgrade (ZDU) REST API and of each node's /status,
their pure parsers, and the ClusterApi protocol. No I/O here: `zdu.py` speaks HTTP.

Unknown enum strings map to UNKNOWN rather than failing: a newer Confluence may add states.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from confluo.errors import ConfluoError, ExitCode
from confluo.inventory import Node

ZDU_BASE = "/rest/zdu"

E = TypeVar("E", bound="_Lenient")


class _Lenient(enum.Enum):
    """An enum of strings from the API; a value it does not know reads as UNKNOWN."""

    @classmethod
    def parse(cls: type[E], value: object) -> E:
        try:
            return cls(value)
        except ValueError:
            return cls("UNKNOWN")


class ClusterState(_Lenient):
    STABLE = "STABLE"
    READY_TO_UPGRADE = "READY_TO_UPGRADE"
    MIXED = "MIXED"
    READY_TO_RUN_UPGRADE_TASKS = "READY_TO_RUN_UPGRADE_TASKS"
    RUNNING_UPGRADE_TASKS = "RUNNING_UPGRADE_TASKS"
    UPGRADE_TASKS_FAILED = "UPGRADE_TASKS_FAILED"
    UNKNOWN = "UNKNOWN"


class NodeState(_Lenient):
    STARTING = "STARTING"
    ACTIVE = "ACTIVE"
    DRAINING = "DRAINING"
    TERMINATING = "TERMINATING"
    OFFLINE = "OFFLINE"
    ERROR = "ERROR"
    RUNNING_FINALIZE_UPGRADE_TASKS = "RUNNING_FINALIZE_UPGRADE_TASKS"
    UPGRADE_TASKS_FAILED = "UPGRADE_TASKS_FAILED"
    UNKNOWN = "UNKNOWN"


class StatusState(_Lenient):
    """The body of GET /status. Only RUNNING (with HTTP 200) means the node serves."""

    RUNNING = "RUNNING"
    STARTING = "STARTING"
    STOPPING = "STOPPING"
    FIRST_RUN = "FIRST_RUN"
    ERROR = "ERROR"
    MAINTENANCE = "MAINTENANCE"
    UNREACHABLE = "UNREACHABLE"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Heartbeat:
    """A standalone Synchrony node's GET <heartbeat_url>: it serves only when that answers 200 "OK"."""

    ok: bool
    seen: str  # what was seen, for messages: OK, HTTP 503, unreachable, ...


@dataclass(frozen=True)
class PageView:
    """A node's own answer to an authenticated page read with its rendered body: Atlassian's "confirm that you can
    log in and view pages" after each start, which /status (liveness only) and the cluster's ACTIVE do not show."""

    ok: bool
    seen: str  # for messages: page 98306 viewed, HTTP 500, unreachable, ...


# Two reads that cost little on any site: the first space with its home page, then that page rendered.
SPACE_HOME_PATH = "/rest/api/space?limit=1&expand=homepage"
PAGE_VIEW_PATH = "/rest/api/content/{id}?expand=body.view"


def _refused(status_code: int) -> PageView | None:
    if status_code in (401, 403):
        return PageView(False, f"HTTP {status_code}: the API user cannot log in on this node")
    return PageView(False, f"HTTP {status_code}") if status_code != 200 else None


def home_page_of(status_code: int, body: Any) -> str | PageView:
    """The id of the first space's home page in GET SPACE_HOME_PATH's answer; or the verdict when there is none to
    read (no space, or a space without a home page, is still a login that worked)."""
    if (refused := _refused(status_code)) is not None:
        return refused
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        return PageView(False, "a space list without results")
    if not results or not isinstance(results[0], dict):
        return PageView(True, "logged in; no space to view yet")
    home = results[0].get("homepage")
    page_id = home.get("id") if isinstance(home, dict) else None
    if not isinstance(page_id, str | int) or not str(page_id).isdigit():
        return PageView(True, f"logged in; space {results[0].get('key')} has no home page to view")
    return str(page_id)


def page_view_of(status_code: int, body: Any) -> PageView:
    """What GET PAGE_VIEW_PATH answered: the page with its rendered body, or why not."""
    if (refused := _refused(status_code)) is not None:
        return refused
    view = (((body.get("body") or {}).get("view") or {}).get("value")) if isinstance(body, dict) else None
    if not isinstance(view, str):
        return PageView(False, "the page came without its rendered body")
    return PageView(True, f"page {body.get('id')} viewed")


@dataclass(frozen=True)
class NodeInfo:
    id: str
    name: str
    ip_address: str
    state: NodeState
    version: str
    build_number: str
    tasks: int
    active_users: int
    finalization_errors: tuple[str, ...] = ()  # what the node's failed upgrade tasks reported

    @property
    def load(self) -> int:
        """Atlassian's advice: upgrade the node with the fewest running tasks and active users first."""
        return self.tasks + self.active_users


@dataclass(frozen=True)
class ClusterInfo:
    state: ClusterState
    upgrade_mode: bool
    original_version: str | None
    has_finalization_tasks: bool
    nodes: tuple[NodeInfo, ...]

    def find(self, name: str, node_id: str | None = None, address: str | None = None) -> NodeInfo | None:
        """The cluster's entry for a node: by id when known, else by a name only it has, else by its address.

        Clusters whose nodes were never named list them all as "Not configured": the address tells them apart.
        """
        for matches in (
            [n for n in self.nodes if node_id is not None and n.id == node_id],
            [n for n in self.nodes if n.name == name],
            [n for n in self.nodes if address is not None and n.ip_address == address],
        ):
            if len(matches) == 1:
                return matches[0]
        return None


def parse_node(data: Mapping[str, Any]) -> NodeInfo:
    return NodeInfo(
        id=str(data.get("id", "")),
        name=str(data.get("name") or "Not configured"),
        ip_address=str(data.get("ipAddress") or ""),
        state=NodeState.parse(data.get("state")),
        version=str(data.get("version") or ""),
        build_number=str(data.get("buildNumber") or ""),
        tasks=int(data.get("tasksTotal") or 0),
        active_users=int(data.get("activeUserCount") or 0),
        finalization_errors=_finalization_errors(data.get("finalization")),
    )


def _finalization_errors(finalization: Any) -> tuple[str, ...]:
    """`finalization.errors[]`: {clusterUpgradeTask, errors[], exceptionMessage}, each as one line."""
    if not isinstance(finalization, Mapping):
        return ()
    lines = []
    for error in finalization.get("errors") or ():
        if not isinstance(error, Mapping):
            continue
        details = [str(e) for e in error.get("errors") or () if e] or [str(error.get("exceptionMessage") or "")]
        lines.append(f"{error.get('clusterUpgradeTask') or 'an upgrade task'}: {'; '.join(d for d in details if d)}")
    return tuple(lines)


def finalization_failures(cluster: ClusterInfo) -> list[str]:
    """Every node's failed upgrade tasks, as `node: task: error` lines."""
    return [f"{node.name}: {error}" for node in cluster.nodes for error in node.finalization_errors]


def parse_cluster(data: Mapping[str, Any]) -> ClusterInfo:
    return ClusterInfo(
        state=ClusterState.parse(data.get("state")),
        upgrade_mode=bool(data.get("upgradeModeEnabled")),
        original_version=data.get("originalVersion"),
        has_finalization_tasks=bool(data.get("hasFinalizationTasks")),
        nodes=tuple(parse_node(node) for node in data.get("nodes") or ()),
    )


class ApiError(ConfluoError):
    """The cluster's REST API could not be used."""

    exit_code = ExitCode.FAILED_AFTER_CHANGES


class InvalidTransition(ApiError):
    """409: the cluster's state does not allow this call now."""


@dataclass(frozen=True)
class ApiAuth:
    """Basic auth for a sysadmin, or a personal access token (Bearer)."""

    username: str | None
    secret: str
    bearer: bool


class ClusterApi(Protocol):
    """The ZDU REST API of one cluster, and each node's /status."""

    verify_tls: bool

    def cluster(self) -> ClusterInfo: ...

    def start_upgrade(self) -> ClusterInfo: ...

    def cancel_upgrade(self) -> ClusterInfo: ...

    def approve_upgrade(self) -> ClusterInfo: ...

    def retry_upgrade(self) -> ClusterInfo: ...

    def node_status(self, url: str, *, timeout: float = 5.0) -> StatusState:
        """GET <node>/status. HTTP 200 alone is not enough: the body must say RUNNING."""
        ...

    def heartbeat(self, url: str, *, timeout: float = 5.0) -> Heartbeat:
        """GET a Synchrony node's heartbeat URL (no credentials)."""
        ...

    def view_page(self, url: str) -> PageView:
        """A page read and rendered on the node's own URL, with the API credentials (page_view_of); each read
        within cluster.timeout_seconds, as every API call."""
        ...

    def close(self) -> None: ...


def cluster_entry(cluster: ClusterInfo, node: Node) -> NodeInfo | None:
    """The node as the cluster lists it (see ClusterInfo.find)."""
    return cluster.find(node.name, node.cluster_id, node.host)
