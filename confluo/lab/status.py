"""`confluo lab status`: the lab's record, the cluster database and every node's /status, in one document
(its format is in docs/lab.md)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from confluo.lab import hosts, spares
from confluo.lab import synchrony as synchrony_hosts
from confluo.lab.hosts import LabError
from confluo.lab.model import ADMIN_USER, Lab, Node, load
from confluo.lab.node.cluster_state import cluster_view


def status(lab_dir: Path) -> dict[str, Any]:
    """The lab as `confluo lab status --json` shows it."""
    lab = load(lab_dir)
    try:
        view = cluster_view(lab.db_file)
    except Exception as error:
        raise LabError(f"cannot read the cluster database {lab.db_file}: {error}") from None
    rows = {row["name"]: row for row in view["nodes"]}
    http = _http_states([n.url for n in lab.nodes])
    lb = lab.balancer
    return {
        "dir": str(lab.dir),
        "mode": lab.mode,
        "inventory": str(lab.inventory),
        "next_version": lab.next_version,
        "next_archive": str(lab.next_archive),
        "api": {"url": lab.nodes[0].url, "username": ADMIN_USER, "password": lab.admin_password},
        "lb": {
            "kind": lab.lb,
            "url": lb.url if lb else None,
            "socket": str(lb.socket) if lb and lb.socket else None,
        },
        "cluster": {
            "state": view["state"],
            "upgrade_mode": view["upgrade_mode"],
            "version": view["version"],
            "index_journal": view["index_journal"],
        },
        "nodes": [_node_status(lab, node, rows, http[node.url]) for node in lab.nodes] + _unknown_rows(lab, rows),
        "synchrony": [synchrony_hosts.status(lab, host) for host in lab.synchrony],
        "spare_hosts": spares.status(lab),
    }


def _node_status(lab: Lab, node: Node, rows: dict[str, dict[str, Any]], http_status: str) -> dict[str, Any]:
    row = rows.get(node.name, {})
    entry: dict[str, Any] = {
        "name": node.name,
        "id": row.get("id"),
        "url": node.url,
        "address": node.address,
        "state": row.get("state", "ABSENT"),
        "status": http_status,
        "version": row.get("version"),
        "install_dir": str(node.current),
        "home": str(node.home),
        "pid": row.get("pid"),
        "index_position": row.get("index_position"),
        "problems": _problems(lab, node, row, rows),
    }
    if node.user is not None:
        entry["ssh"] = {
            "host": node.address,
            "port": hosts.SSH_PORT,
            "user": node.user,
            "key": str(lab.client_key),
            "known_hosts": str(lab.known_hosts),
        }
    return entry


def _problems(lab: Lab, node: Node, row: dict[str, Any], rows: dict[str, dict[str, Any]]) -> list[str]:
    problems = [row["problem"]] if row.get("problem") else []
    if not row:
        problems.append("never joined the cluster")
    for other_name, other in rows.items():
        impostor = other_name not in lab.node_names and other.get("address") == node.address
        if impostor and other.get("state") != "OFFLINE":
            problems.append(f"runs as {other_name!r}: -Dconfluence.cluster.node.name is missing from bin/setenv.sh")
    if node.user is not None and node.sshd.pid() is None:
        problems.append("sshd is down")
    return problems


def _unknown_rows(lab: Lab, rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the cluster that are none of the lab's nodes (e.g. "Not configured")."""
    return [
        {
            "name": name,
            "id": row.get("id"),
            "address": row.get("address"),
            "state": row.get("state"),
            "version": row.get("version"),
            "pid": row.get("pid"),
            "problems": [row["problem"]] if row.get("problem") else [],
        }
        for name, row in rows.items()
        if name not in lab.node_names
    ]


def _http_states(urls: list[str]) -> dict[str, str]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(urls, pool.map(http_status, urls), strict=True))


def http_status(url: str) -> str:
    """The `state` that GET /status reports, or what went wrong (UNREACHABLE, HTTP 500, ...)."""
    try:
        with urllib.request.urlopen(f"{url}/status", timeout=2) as response:  # noqa: S310 - lab http URLs
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
        with contextlib.suppress(ValueError, AttributeError):
            return str(json.loads(body)["state"])
        return f"HTTP {error.code}"
    except OSError:
        return "UNREACHABLE"
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(json.loads(body)["state"])
    return "UNKNOWN"
