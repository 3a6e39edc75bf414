"""The Confluence rolling-upgrade (ZDU) REST API and the per-node /status endpoint.

Parsers are pure functions over decoded JSON; `ClusterApi` is the only place that speaks HTTP to the cluster.
Unknown enum strings map to UNKNOWN rather than failing: a newer Confluence may add states.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from confluo.errors import ConfluoError, ExitCode

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
class NodeInfo:
    id: str
    name: str
    ip_address: str
    state: NodeState
    version: str
    build_number: str
    tasks: int
    active_users: int

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
    )


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

    def header(self) -> str:
        if self.bearer:
            return f"Bearer {self.secret}"
        return httpx.BasicAuth(self.username or "", self.secret)._auth_header


class ClusterApi:
    """The ZDU REST API of one cluster (usually reached through the load balancer)."""

    def __init__(self, base_url: str, auth: ApiAuth, *, verify_tls: bool = True, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.verify_tls = verify_tls  # the nodes' own URLs are checked the same way
        self._client = httpx.Client(
            base_url=self.base_url,
            verify=verify_tls,
            timeout=timeout,
            headers={
                "Authorization": auth.header(),
                "Accept": "application/json",
                # Non-browser clients skip Atlassian's XSRF check with this header.
                "X-Atlassian-Token": "no-check",
            },
        )

    def close(self) -> None:
        self._client.close()

    def _send(self, method: str, url: str) -> httpx.Response:
        """GETs are retried briefly: behind a load balancer, the node answering may be the one going down."""
        attempts = GET_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                headers = {"Content-Type": "application/json"} if method == "POST" else None
                response = self._client.request(method, url, headers=headers)
            except httpx.HTTPError as exc:
                if attempt == attempts:
                    raise ApiError(f"cluster API {method} {self.base_url}{url}: {exc}") from exc
            else:
                if response.status_code not in RETRYABLE_STATUS or attempt == attempts:
                    return response
            time.sleep(RETRY_PAUSE_SECONDS * attempt)
        raise AssertionError("unreachable")

    def cluster(self) -> ClusterInfo:
        return parse_cluster(self._call("GET", "/cluster"))

    def state(self) -> ClusterState:
        return ClusterState.parse(self._call("GET", "/state").get("state"))

    def start_upgrade(self) -> ClusterInfo:
        return parse_cluster(self._call("POST", "/start"))

    def cancel_upgrade(self) -> ClusterInfo:
        return parse_cluster(self._call("POST", "/cancel"))

    def approve_upgrade(self) -> ClusterInfo:
        return parse_cluster(self._call("POST", "/approve"))

    def _call(self, method: str, path: str) -> dict[str, Any]:
        url = ZDU_BASE + path
        response = self._send(method, url)
        if response.status_code == 409:
            raise InvalidTransition(f"cluster API {method} {url}: 409, the cluster's state does not allow it now")
        if response.status_code in (401, 403):
            raise ApiError(
                f"cluster API {method} {url}: {response.status_code}; the credentials are not a system administrator's",
            )
        if response.status_code >= 400:
            raise ApiError(f"cluster API {method} {url}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(f"cluster API {method} {url}: the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise ApiError(f"cluster API {method} {url}: expected a JSON object")
        return body


# A node behind the load balancer that is failing or going down answers these until the LB notices.
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
GET_ATTEMPTS = 4
RETRY_PAUSE_SECONDS = 0.3


def node_status(url: str, *, timeout: float = 5.0, verify_tls: bool = True) -> StatusState:
    """GET <node>/status. HTTP 200 alone is not enough: the body must say RUNNING."""
    try:
        response = httpx.get(url.rstrip("/") + "/status", timeout=timeout, verify=verify_tls)
    except httpx.HTTPError:
        return StatusState.UNREACHABLE
    try:
        body = response.json()
    except ValueError:
        return StatusState.UNKNOWN
    state = StatusState.parse(body.get("state") if isinstance(body, dict) else None)
    if state is StatusState.RUNNING and response.status_code != 200:
        return StatusState.UNKNOWN
    return state
