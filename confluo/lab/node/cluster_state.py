"""The cluster as the ZDU plugin sees it: node records (a crashed node counts as OFFLINE), the cluster state
calculation, and finishing the finalization tasks once their time is up.

``cluster_view`` is what `confluo lab status` and the lab's tests read.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clusterdb import put_settings, read_settings, transaction
from .search_index import latest_entry
from .states import (
    ACTIVE,
    ERROR,
    MIXED,
    OFFLINE,
    READY_TO_RUN_UPGRADE_TASKS,
    READY_TO_UPGRADE,
    RUNNING_FINALIZE,
    RUNNING_UPGRADE_TASKS,
    STABLE,
    TASKS_FAILED,
    UPGRADE_TASKS_FAILED,
)
from .versions import build_number_for

STALE_SECONDS = 2.0  # a row older than this whose pid is gone is OFFLINE (the node crashed)


def pid_alive(pid: int | None) -> bool:
    """Whether a process exists and is not a zombie (a killed node may wait unreaped in a container)."""
    if not pid or pid <= 0:
        return False
    if Path("/proc/self").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class NodeRecord:
    """A node as the cluster sees it; ``state`` already accounts for crashed processes."""

    id: str
    name: str
    address: str
    port: int
    state: str
    version: str
    build_number: int
    tasks: int
    users: int
    pid: int | None
    problem: str | None
    in_snapshot: bool
    finalize_requested: float | None
    finalize_error: str | None
    index_position: int = 0  # the last index journal entry the node's search index took
    index_checked: float | None = None  # when the node last looked at the journal


def _effective_state(row: sqlite3.Row, now: float) -> str:
    state = str(row["state"])
    if state != OFFLINE and now - float(row["heartbeat"]) > STALE_SECONDS and not pid_alive(row["pid"]):
        return OFFLINE
    return state


def _node_record(row: sqlite3.Row, now: float) -> NodeRecord:
    return NodeRecord(
        id=str(row["id"]),
        name=str(row["name"]),
        address=str(row["address"]),
        port=int(row["port"]),
        state=_effective_state(row, now),
        version=str(row["version"]),
        build_number=int(row["build_number"]),
        tasks=int(row["tasks"]),
        users=int(row["users"]),
        pid=row["pid"],
        problem=row["problem"],
        in_snapshot=bool(row["in_snapshot"]),
        finalize_requested=row["finalize_requested"],
        finalize_error=row["finalize_error"],
        index_position=int(row["index_position"]),
        index_checked=row["index_checked"],
    )


def calculate_cluster_state(
    nodes: Sequence[tuple[str, str]],
    *,
    upgrade_mode: bool,
    original_version: str | None,
    has_finalization_tasks: bool,
) -> str:
    """The ZDU plugin's calculateClusterState over (state, version) pairs of the listed nodes."""
    states = {state for state, _ in nodes}
    if RUNNING_FINALIZE in states:
        return RUNNING_UPGRADE_TASKS
    if not upgrade_mode:
        return UPGRADE_TASKS_FAILED if TASKS_FAILED in states or has_finalization_tasks else STABLE
    if ERROR in states:
        return MIXED
    versions = {version for state, version in nodes if state != OFFLINE}
    if len(versions) > 1:
        return MIXED
    return READY_TO_UPGRADE if all(v == original_version for v in versions) else READY_TO_RUN_UPGRADE_TASKS


@dataclass(frozen=True)
class ClusterRecord:
    """One consistent reading of the cluster database."""

    version: str
    upgrade_mode: bool
    original_version: str | None
    finalization_pending: bool
    target_version: str | None
    nodes: tuple[NodeRecord, ...]

    def listed(self) -> list[NodeRecord]:
        """The nodes the ZDU API lists: live ones, plus the start snapshot while upgrade mode is on."""
        shown = [n for n in self.nodes if n.state != OFFLINE or (self.upgrade_mode and n.in_snapshot)]
        return sorted(shown, key=lambda n: (n.name, n.address))

    def state(self) -> str:
        return calculate_cluster_state(
            [(n.state, n.version) for n in self.listed()],
            upgrade_mode=self.upgrade_mode,
            original_version=self.original_version,
            has_finalization_tasks=self.finalization_pending,
        )

    def has_finalization_tasks(self) -> bool:
        if self.finalization_pending:
            return True
        live = {n.version for n in self.listed() if n.state != OFFLINE}
        return self.upgrade_mode and any(v != self.original_version for v in live)

    def node(self, node_id: str) -> NodeRecord | None:
        return next((n for n in self.nodes if n.id == node_id), None)


def read_cluster_in(conn: sqlite3.Connection, now: float) -> ClusterRecord:
    zdu = conn.execute("SELECT * FROM zdu WHERE id = 1").fetchone()
    rows = conn.execute("SELECT * FROM nodes").fetchall()
    return ClusterRecord(
        version=read_settings(conn).get("version", ""),
        upgrade_mode=bool(zdu["upgrade_mode"]),
        original_version=zdu["original_version"],
        finalization_pending=bool(zdu["finalization_pending"]),
        target_version=zdu["target_version"],
        nodes=tuple(_node_record(row, now) for row in rows),
    )


def finalization_due(conn: sqlite3.Connection, now: float) -> bool:
    until = conn.execute("SELECT finalize_until FROM zdu WHERE id = 1").fetchone()["finalize_until"]
    return until is not None and now >= float(until)


def settle_finalization(db_file: Path, *, known_due: bool = False) -> None:
    """Finish the finalization tasks once their time is up (any node or reader may do it; idempotent)."""
    now = time.time()
    if not known_due:
        with transaction(db_file, write=False) as conn:
            if not finalization_due(conn, now):
                return
    with transaction(db_file, write=True) as conn:
        if not finalization_due(conn, now):
            return  # another process settled it meanwhile
        if _mark_finalized_nodes(conn):
            _finish_finalization(conn)
        else:
            conn.execute("UPDATE zdu SET finalize_until = NULL WHERE id = 1")


def _mark_finalized_nodes(conn: sqlite3.Connection) -> bool:
    """Every finalizing node goes ACTIVE, or UPGRADE_TASKS_FAILED under finalize-fail; True if none failed."""
    failing = {str(row["node"]) for row in conn.execute("SELECT node FROM faults WHERE kind = 'finalize-fail'")}
    succeeded = True
    for row in conn.execute("SELECT id, name FROM nodes WHERE state = ?", (RUNNING_FINALIZE,)).fetchall():
        if row["name"] in failing:
            succeeded = False
            conn.execute(
                "UPDATE nodes SET state = ?, finalize_error = ? WHERE id = ?",
                (TASKS_FAILED, "fault injected: finalize-fail", row["id"]),
            )
        else:
            conn.execute("UPDATE nodes SET state = ?, finalize_error = NULL WHERE id = ?", (ACTIVE, row["id"]))
    return succeeded


def _finish_finalization(conn: sqlite3.Connection) -> None:
    """The cluster now runs the target version."""
    target = str(conn.execute("SELECT target_version FROM zdu WHERE id = 1").fetchone()["target_version"])
    put_settings(conn, {"version": target, "build_number": str(build_number_for(target))})
    conn.execute("UPDATE zdu SET finalize_until = NULL, target_version = NULL, finalization_pending = 0 WHERE id = 1")


def read_cluster(db_file: Path) -> ClusterRecord:
    """The cluster as every node and reader sees it (finishing due finalization first)."""
    settle_finalization(db_file)
    with transaction(db_file, write=False) as conn:
        return read_cluster_in(conn, time.time())


def cluster_view(db_file: Path) -> dict[str, Any]:
    """The cluster for `confluo lab status`: every node row (also unlisted ones) and the ZDU state."""
    cluster = read_cluster(db_file)
    listed = {n.id for n in cluster.listed()}
    with transaction(db_file, write=False) as conn:
        journal = latest_entry(conn)
    return {
        "state": cluster.state(),
        "upgrade_mode": cluster.upgrade_mode,
        "original_version": cluster.original_version,
        "version": cluster.version,
        "has_finalization_tasks": cluster.has_finalization_tasks(),
        "index_journal": journal,
        "nodes": [_view_row(n, n.id in listed) for n in sorted(cluster.nodes, key=lambda n: (n.name, n.address))],
    }


def _view_row(node: NodeRecord, listed: bool) -> dict[str, Any]:
    return {
        "id": node.id,
        "name": node.name,
        "address": node.address,
        "port": node.port,
        "state": node.state,
        "version": node.version,
        "build_number": node.build_number,
        "tasks": node.tasks,
        "users": node.users,
        "pid": node.pid,
        "problem": node.problem,
        "listed": listed,
        "index_position": node.index_position,
        "index_checked": node.index_checked,
    }
