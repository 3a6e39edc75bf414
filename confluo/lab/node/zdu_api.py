"""The ZDU REST API under ``/rest/zdu``: its state transitions, its JSON, and its routes.

Read: ``cluster``, ``state``, ``nodes/{id}``; act: ``start``, ``cancel``, ``approve``, ``retryUpgrade`` (409 with
no entity when the cluster's state does not allow it). Every call needs the admin (Basic) or the token (Bearer).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .access import authenticated, unauthenticated
from .cluster_state import ClusterRecord, NodeRecord, read_cluster, read_cluster_in, settle_finalization
from .clusterdb import read_settings, transaction
from .install import NOT_CONFIGURED
from .pages import unavailable
from .routing import Reply, Request, error_reply, find, handler_for, json_reply, route
from .states import (
    ACTIVE,
    OFFLINE,
    READY_TO_RUN_UPGRADE_TASKS,
    READY_TO_UPGRADE,
    RUNNING_FINALIZE,
    STABLE,
    TASKS_FAILED,
    UPGRADE_TASKS_FAILED,
)
from .versions import parse_version

# --- transitions ----------------------------------------------------------------------------------------


def _start(conn: sqlite3.Connection, cluster: ClusterRecord, now: float) -> bool:
    if cluster.state() != STABLE:
        return False
    conn.execute("UPDATE zdu SET upgrade_mode = 1, original_version = ? WHERE id = 1", (cluster.version,))
    # The snapshot keeps a node that is stopped for its upgrade listed (as OFFLINE) until the end.
    conn.execute("UPDATE nodes SET in_snapshot = 0")
    live = [n.id for n in cluster.nodes if n.state != OFFLINE]
    conn.executemany("UPDATE nodes SET in_snapshot = 1 WHERE id = ?", [(i,) for i in live])
    return True


def _end_upgrade_mode(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE zdu SET upgrade_mode = 0, original_version = NULL WHERE id = 1")
    conn.execute("UPDATE nodes SET in_snapshot = 0")


def _cancel(conn: sqlite3.Connection, cluster: ClusterRecord, now: float) -> bool:
    if cluster.state() != READY_TO_UPGRADE:
        return False
    _end_upgrade_mode(conn)
    return True


def _run_finalization(conn: sqlite3.Connection, node_ids: list[str], target: str, now: float) -> None:
    seconds = float(read_settings(conn).get("finalize_seconds", "1"))
    conn.execute(
        "UPDATE zdu SET finalization_pending = 1, target_version = ?, finalize_until = ? WHERE id = 1",
        (target, now + seconds),
    )
    conn.executemany(
        "UPDATE nodes SET state = ?, finalize_requested = ?, finalize_error = NULL WHERE id = ?",
        [(RUNNING_FINALIZE, now, i) for i in node_ids],
    )


def _approve(conn: sqlite3.Connection, cluster: ClusterRecord, now: float) -> bool:
    if cluster.state() != READY_TO_RUN_UPGRADE_TASKS:
        return False
    live = [n for n in cluster.listed() if n.state != OFFLINE]
    _end_upgrade_mode(conn)
    target = live[0].version if live else cluster.version
    if target != cluster.original_version:
        _run_finalization(conn, [n.id for n in live if n.state == ACTIVE], target, now)
    return True


def _retry(conn: sqlite3.Connection, cluster: ClusterRecord, now: float) -> bool:
    if cluster.state() != UPGRADE_TASKS_FAILED:
        return False
    live = [n for n in cluster.listed() if n.state in (ACTIVE, TASKS_FAILED)]
    newest = max((n.version for n in live), key=parse_version, default=cluster.version)
    target = cluster.target_version or newest
    _run_finalization(conn, [n.id for n in live], target, now)
    return True


_TRANSITIONS: dict[str, Callable[[sqlite3.Connection, ClusterRecord, float], bool]] = {
    "start": _start,
    "cancel": _cancel,
    "approve": _approve,
    "retryUpgrade": _retry,
}
ZDU_ACTIONS = tuple(_TRANSITIONS)


def zdu_transition(db_file: Path, action: str) -> bool:
    """Apply a ZDU action (start, cancel, approve, retryUpgrade); False when the state does not allow it."""
    settle_finalization(db_file)
    with transaction(db_file, write=True) as conn:
        now = time.time()
        return _TRANSITIONS[action](conn, read_cluster_in(conn, now), now)


# --- JSON -----------------------------------------------------------------------------------------------


def _finalization_json(node: NodeRecord, runs_cluster_tasks: bool) -> dict[str, Any] | None:
    if node.finalize_requested is None:
        return None
    errors = []
    if node.finalize_error:
        errors.append(
            {
                "clusterUpgradeTask": "LabFinalizationUpgradeTask",
                "errors": [node.finalize_error],
                "exceptionMessage": node.finalize_error,
            }
        )
    return {
        "lastRequested": int(node.finalize_requested * 1000),
        "runsClusterWideTasks": runs_cluster_tasks,
        "errors": errors,
    }


def node_json(node: NodeRecord, *, local_id: str | None, base_url: str, runs_cluster_tasks: bool) -> dict[str, Any]:
    return {
        "id": node.id,
        "name": node.name or NOT_CONFIGURED,
        "ipAddress": node.address,
        "state": node.state,
        "tasksTotal": node.tasks,
        "activeUserCount": node.users,
        "buildNumber": str(node.build_number),
        "version": node.version,
        "local": node.id == local_id,
        "finalization": _finalization_json(node, runs_cluster_tasks),
        "links": [{"rel": "self", "href": f"{base_url}/rest/zdu/nodes/{node.id}"}],
        "portNumber": node.port,
    }


def _nodes_json(cluster: ClusterRecord, local_id: str | None, base_url: str) -> list[dict[str, Any]]:
    listed = cluster.listed()
    leader = next((n.id for n in listed if n.finalize_requested is not None), None)
    return [
        node_json(node, local_id=local_id, base_url=base_url, runs_cluster_tasks=node.id == leader) for node in listed
    ]


def cluster_json(cluster: ClusterRecord, *, local_id: str | None, base_url: str) -> dict[str, Any]:
    state = cluster.state()
    allowed = {
        "start": state == STABLE,
        "cancel": state == READY_TO_UPGRADE,
        "approve": state == READY_TO_RUN_UPGRADE_TASKS,
        "retryUpgrade": state == UPGRADE_TASKS_FAILED,
    }
    links = [{"rel": "self", "href": f"{base_url}/rest/zdu/cluster"}]
    links += [{"rel": rel, "href": f"{base_url}/rest/zdu/{rel}"} for rel, ok in allowed.items() if ok]
    return {
        "upgradeModeEnabled": cluster.upgrade_mode,
        "hasFinalizationTasks": cluster.has_finalization_tasks(),
        "state": state,
        "originalVersion": cluster.original_version,
        "nodes": _nodes_json(cluster, local_id, base_url),
        "links": links,
    }


# --- routes ---------------------------------------------------------------------------------------------


def _db(request: Request) -> Path:
    db_file = request.node.db_file
    assert db_file is not None  # checked before routing
    return db_file


def _cluster(request: Request, _match: re.Match[str]) -> Reply:
    cluster = read_cluster(_db(request))
    return json_reply(200, cluster_json(cluster, local_id=request.node.node_id, base_url=request.base_url))


def _state(request: Request, _match: re.Match[str]) -> Reply:
    local_id = request.node.node_id
    cluster = read_cluster(_db(request))
    local = cluster.node(local_id or "")
    build_info = None
    if local is not None:
        build_info = node_json(local, local_id=local_id, base_url=request.base_url, runs_cluster_tasks=False)
    return json_reply(200, {"state": cluster.state(), "buildInfo": build_info})


def _node(request: Request, match: re.Match[str]) -> Reply:
    node = read_cluster(_db(request)).node(match["id"])
    if node is None:
        return error_reply(404, "Node not found")
    return json_reply(
        200, node_json(node, local_id=request.node.node_id, base_url=request.base_url, runs_cluster_tasks=False)
    )


def _transition(request: Request, match: re.Match[str]) -> Reply:
    if not zdu_transition(_db(request), match["action"]):
        return Reply(409)  # InvalidStateTransitionException: 409 with no entity
    return _cluster(request, match)


_ROUTES = (
    route(r"/cluster", GET=_cluster),
    route(r"/state", GET=_state),
    route(r"/nodes/(?P<id>.+)", GET=_node),
    route(r"/+(?P<action>" + "|".join(ZDU_ACTIONS) + ")", POST=_transition),
)


def _subpath(path: str) -> str:
    """The route below /rest/zdu; the admin docs' spelling /rest/zdu/cluster/zdu/... is accepted too."""
    sub = path[len("/rest/zdu") :]
    if sub.startswith("/cluster/zdu"):
        sub = sub[len("/cluster/zdu") :].rstrip("/") or "/cluster"
    return sub.rstrip("/")


def handle(request: Request, _match: re.Match[str]) -> Reply:
    """Everything under /rest/zdu: authentication first, then the ZDU routes."""
    if request.node.db_file is None:
        return unavailable(request, _match)
    if not authenticated(request):
        return unauthenticated()
    found = find(_ROUTES, _subpath(request.path))
    if found is None:
        return error_reply(404, f"No ZDU resource at {request.path}")
    zdu_route, match = found
    handler = handler_for(zdu_route, request.method)
    if handler is None:
        return Reply(405, headers={"Allow": ", ".join(zdu_route.methods)})
    return handler(request, match)
