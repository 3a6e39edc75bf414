"""The lab's node program: a stand-in for one Confluence Data Center node.

Shipped inside every lab archive as ``lib/confluence_node.py`` and started by ``bin/start-confluence.sh``
as ``python3 lib/confluence_node.py --install <install_dir>``. It reads its configuration the way Confluence
does (server.xml, setenv.sh, confluence-init.properties, the home's confluence.cfg.xml), refuses badly
installed nodes the way Confluence would, and serves ``/status``, a few pages and the ZDU REST API from a
SQLite "cluster database" shared by every node of the lab.

This module also owns that database: the lab's orchestration calls ``init_database``, ``set_node_load``,
``set_fault``, ``set_timings`` and ``cluster_view``.

Standard library only: a node has nothing but python3, so this file must not import confluo or any
third-party package.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import signal
import sqlite3
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

# --- names and paths ------------------------------------------------------------------------------------

NOT_CONFIGURED = "Not configured"  # what Confluence shows for a node without a configured name
SERVER_XML = Path("conf/server.xml")
SETENV_SH = Path("bin/setenv.sh")
INIT_PROPERTIES = Path("confluence/WEB-INF/classes/confluence-init.properties")
WEBAPP_LIB = Path("confluence/WEB-INF/lib")
POM_PROPERTIES = Path("confluence/META-INF/maven/com.atlassian.confluence/confluence-webapp/pom.properties")
HOST_MARKER = Path("etc/lab-host.json")
CFG_XML = "confluence.cfg.xml"
NODE_ID_PROPERTY = "confluence.cluster.node.id"

# --- node and cluster states (the ZDU plugin's enums) ---------------------------------------------------

STARTING = "STARTING"
ACTIVE = "ACTIVE"
DRAINING = "DRAINING"
TERMINATING = "TERMINATING"
OFFLINE = "OFFLINE"
ERROR = "ERROR"
RUNNING_FINALIZE = "RUNNING_FINALIZE_UPGRADE_TASKS"
TASKS_FAILED = "UPGRADE_TASKS_FAILED"
FIRST_RUN = "FIRST_RUN"  # a /status state only: such a node never joins the cluster

STABLE = "STABLE"
READY_TO_UPGRADE = "READY_TO_UPGRADE"
MIXED = "MIXED"
READY_TO_RUN_UPGRADE_TASKS = "READY_TO_RUN_UPGRADE_TASKS"
RUNNING_UPGRADE_TASKS = "RUNNING_UPGRADE_TASKS"
UPGRADE_TASKS_FAILED = "UPGRADE_TASKS_FAILED"

# Faults the lab can inject. The node program acts on the first six; "crash" and "ssh-down" are carried
# out by the orchestration (it kills processes) and are accepted here only so they can be recorded.
FAULT_KINDS = (
    "fail-start",
    "hang-start",
    "hang-stop",
    "slow-stop",
    "api-500",
    "finalize-fail",
    "crash",
    "ssh-down",
)

HEARTBEAT_SECONDS = 0.3
STALE_SECONDS = 2.0  # a row older than this whose pid is gone is OFFLINE (the node crashed)
TICK_SECONDS = 0.1
SECONDS_PER_TASK = 0.1  # a graceful stop waits this long per running task
SLOW_STOP_FACTOR = 10
STOP_RECORD_ATTEMPTS = 10  # a busy or briefly unwritable database must not turn a fault into a normal stop
HASH_ITERATIONS = 20_000


class ConfigError(Exception):
    """The installation cannot even be read (the node exits instead of serving)."""


# --- versions -------------------------------------------------------------------------------------------


def parse_version(text: str) -> tuple[int, int, int]:
    """'9.2.13' -> (9, 2, 13); a missing bug-fix part counts as 0."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        raise ValueError(f"not a Confluence version: {text!r}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def build_number_for(version: str) -> int:
    """A deterministic build number that grows with the version (minor < 100, bug-fix < 1000)."""
    major, minor, patch = parse_version(version)
    return major * 100_000 + minor * 1_000 + patch


def rolling_step_allowed(original: str, target: str) -> bool:
    """Whether a cluster on ``original`` may take ``target`` without downtime (Atlassian's table)."""
    try:
        old, new = parse_version(original), parse_version(target)
    except ValueError:
        return False
    if new <= old or new[0] != old[0]:  # no downgrade, never a platform release
        return False
    if new[1] == old[1]:
        return old[:2] >= (7, 9)  # bug-fix releases, since ZDU exists
    if new[1] == old[1] + 1:
        return old[:2] >= (7, 14)  # the next feature release, from 7.14 on
    return False


def version_refusal(
    candidate: str,
    *,
    cluster_version: str,
    upgrade_mode: bool,
    original_version: str | None,
    finalizing_version: str | None = None,
) -> str | None:
    """Why the cluster refuses a node running ``candidate``, or None when it is accepted."""
    if candidate in (cluster_version, finalizing_version):
        return None
    if not upgrade_mode:
        return (
            f"version {candidate} is not accepted by the cluster: upgrade mode is off and the cluster "
            f"runs {cluster_version}"
        )
    original = original_version or cluster_version
    if rolling_step_allowed(original, candidate):
        return None
    return (
        f"version {candidate} is not accepted by the cluster: {original} -> {candidate} is not an "
        "allowed rolling upgrade (a higher bug-fix release, or the next feature release from 7.14; never a "
        "platform release)"
    )


# --- reading an installation like Confluence does -------------------------------------------------------


def _parse_xml(path: Path) -> ET.Element:
    try:
        # The files are the node's own configuration, written by its administrator: not untrusted input.
        return ET.parse(path).getroot()  # noqa: S314
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def read_connector(server_xml: Path) -> tuple[str | None, int]:
    """The HTTP Connector's ``address`` (None: Tomcat binds every address) and ``port``."""
    for connector in _parse_xml(server_xml).iter("Connector"):
        if "AJP" in connector.get("protocol", "").upper():
            continue
        try:
            return connector.get("address"), int(connector.get("port", "8080"))
        except ValueError as exc:
            raise ConfigError(f"{server_xml}: bad Connector port: {exc}") from exc
    raise ConfigError(f"{server_xml} has no HTTP <Connector>")


def _uncommented_lines(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def read_node_name(setenv: Path) -> str | None:
    """The ``-Dconfluence.cluster.node.name=`` JVM option set in setenv.sh (the last one wins)."""
    names = [
        match[1] or match[2]
        for line in _uncommented_lines(setenv)
        for match in re.finditer(r"-Dconfluence\.cluster\.node\.name=(?:'([^']*)'|([^\s\"']+))", line)
    ]
    return names[-1] if names and names[-1] else None


def read_confluence_home(init_properties: Path) -> Path | None:
    """``confluence.home`` from confluence-init.properties: the last uncommented line, spaces allowed."""
    home: str | None = None
    for line in _uncommented_lines(init_properties):
        match = re.fullmatch(r"confluence\.home\s*[=:]\s*(.*)", line)
        if match:
            home = match[1].strip()
    return Path(home) if home else None


def read_webapp_version(pom_properties: Path) -> str | None:
    for line in _uncommented_lines(pom_properties):
        key, _, value = line.partition("=")
        if key.strip() == "version":
            return value.strip()
    return None


@dataclass(frozen=True)
class HostMarker:
    """What ``etc/lab-host.json`` says about the host a node runs on."""

    name: str
    address: str
    http_port: int


def find_host_marker(install: Path) -> HostMarker | None:
    """Walk up from the installation directory to the host's ``etc/lab-host.json``."""
    start = install.absolute()
    for directory in (start, *start.parents, *install.resolve().parents):
        marker = directory / HOST_MARKER
        if marker.is_file():
            try:
                data = json.loads(marker.read_text(encoding="utf-8"))
                return HostMarker(str(data["name"]), str(data["address"]), int(data["http_port"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"cannot read {marker}: {exc}") from exc
    return None


@dataclass(frozen=True)
class InstallInfo:
    """Everything a node reads from its installation directory."""

    path: Path
    version: str | None
    connector_address: str | None
    port: int
    node_name: str | None
    home: Path | None
    has_mysql_driver: bool
    host: HostMarker | None


def read_install(install: Path) -> InstallInfo:
    address, port = read_connector(install / SERVER_XML)
    return InstallInfo(
        path=install,
        version=read_webapp_version(install / POM_PROPERTIES),
        connector_address=address,
        port=port,
        node_name=read_node_name(install / SETENV_SH),
        home=read_confluence_home(install / INIT_PROPERTIES),
        has_mysql_driver=any((install / WEBAPP_LIB).glob("mysql-connector-*.jar")),
        host=find_host_marker(install),
    )


@dataclass(frozen=True)
class HomeInfo:
    """What a node reads from ``<home>/confluence.cfg.xml``."""

    path: Path
    setup_complete: bool
    build_number: int
    jdbc_url: str
    shared_home: str
    db_file: Path | None
    node_id: str | None
    finalized_build: int | None


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def read_home(home: Path) -> HomeInfo | None:
    """The local home's configuration, or None when the home has not been set up (a first run)."""
    cfg = home / CFG_XML
    if not cfg.is_file():
        return None
    root = _parse_xml(cfg)
    props = {p.get("name", ""): (p.text or "").strip() for p in root.iter("property")}
    db_file = props.get("lab.database.file")
    return HomeInfo(
        path=home,
        setup_complete=(root.findtext("setupStep") or "").strip() == "complete",
        build_number=_int_or_none((root.findtext("buildNumber") or "").strip()) or 0,
        jdbc_url=props.get("hibernate.connection.url", ""),
        shared_home=props.get("confluence.cluster.home", ""),
        db_file=Path(db_file) if db_file else None,
        node_id=props.get(NODE_ID_PROPERTY) or None,
        finalized_build=_int_or_none(props.get("finalizedBuildNumber")),
    )


def _with_property(text: str, name: str, value: str) -> str:
    element = f'<property name="{xml_escape(name)}">{xml_escape(value)}</property>'
    pattern = re.compile(r'<property name="' + re.escape(xml_escape(name)) + r'">[^<]*</property>')
    if pattern.search(text):
        return pattern.sub(lambda _match: element, text)
    return text.replace("</properties>", f"  {element}\n  </properties>", 1)


def update_cfg_xml(
    cfg: Path,
    *,
    build_number: int | None = None,
    properties: dict[str, str] | None = None,
) -> None:
    """Edit confluence.cfg.xml in place (text edits keep the admin's layout), atomically."""
    text = cfg.read_text(encoding="utf-8")
    if build_number is not None:
        text = re.sub(r"<buildNumber>[^<]*</buildNumber>", f"<buildNumber>{build_number}</buildNumber>", text)
    for name, value in (properties or {}).items():
        text = _with_property(text, name, value)
    temporary = cfg.with_name(f".{cfg.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, cfg)


def ensure_node_id(home: HomeInfo) -> str:
    """The node id lives in the local home so that it survives a reinstall of the application."""
    if home.node_id:
        return home.node_id
    node_id = secrets.token_hex(4)
    update_cfg_xml(home.path / CFG_XML, properties={NODE_ID_PROPERTY: node_id})
    return node_id


# --- secrets --------------------------------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, HASH_ITERATIONS)
    return f"pbkdf2_sha256${HASH_ITERATIONS}${salt.hex()}${digest.hex()}"


@functools.lru_cache(maxsize=64)  # the API is polled: don't pay the key derivation on every request
def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, expected = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(digest.hex(), expected)


# --- the cluster database -------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS zdu (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    upgrade_mode INTEGER NOT NULL DEFAULT 0,
    original_version TEXT,
    finalize_until REAL,
    target_version TEXT,
    finalization_pending INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    port INTEGER NOT NULL,
    state TEXT NOT NULL,
    version TEXT NOT NULL,
    build_number INTEGER NOT NULL,
    tasks INTEGER NOT NULL DEFAULT 0,
    users INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    heartbeat REAL NOT NULL,
    problem TEXT,
    in_snapshot INTEGER NOT NULL DEFAULT 0,
    finalize_requested REAL,
    finalize_error TEXT
);
CREATE TABLE IF NOT EXISTS node_load (node TEXT PRIMARY KEY, tasks INTEGER NOT NULL, users INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS faults (node TEXT PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created REAL NOT NULL
);
INSERT OR IGNORE INTO zdu (id) VALUES (1);
"""


def _connect(db_file: Path) -> sqlite3.Connection:
    # isolation_level=None: we open transactions ourselves, so every read-modify-write is one BEGIN IMMEDIATE.
    conn = sqlite3.connect(str(db_file), timeout=15.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 15000")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL makes this safe; a heartbeat needs no fsync
    return conn


@contextlib.contextmanager
def _transaction(db_file: Path, *, write: bool) -> Iterator[sqlite3.Connection]:
    """One consistent snapshot (read) or one serialized read-modify-write (write) across all nodes."""
    conn = _connect(db_file)
    try:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        _share_wal_files(db_file)
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def _share_wal_files(db_file: Path) -> None:
    """SQLite deletes -wal/-shm when the last connection closes, and whoever opens next creates them again with
    its own umask: a root process (the lab's CLI) would leave them unwritable for the node users. Whoever owns
    them opens them to the group again."""
    for suffix in ("-wal", "-shm"):
        path = Path(f"{db_file}{suffix}")
        with contextlib.suppress(OSError):
            if path.stat().st_uid == os.geteuid() and path.stat().st_mode & 0o060 != 0o060:
                path.chmod(0o660)


def _put_settings(conn: sqlite3.Connection, values: dict[str, str]) -> None:
    conn.executemany(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )


def _settings(conn: sqlite3.Connection) -> dict[str, str]:
    return {str(row["key"]): str(row["value"]) for row in conn.execute("SELECT key, value FROM settings")}


def init_database(
    db_file: Path,
    *,
    version: str,
    admin_user: str,
    admin_password: str,
    token: str | None,
    start_seconds: float,
    stop_seconds: float,
    finalize_seconds: float,
) -> None:
    """Create the cluster database, or reset the settings of an existing one.

    Only salted hashes of the password and the token are stored.
    """
    db_file.parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(db_file)
    try:
        conn.execute("PRAGMA journal_mode = WAL")  # persistent: every later connection uses WAL
        conn.executescript(_SCHEMA)
        with _transaction(db_file, write=True) as txn:
            _put_settings(
                txn,
                {
                    "version": version,
                    "build_number": str(build_number_for(version)),
                    "start_seconds": repr(float(start_seconds)),
                    "stop_seconds": repr(float(stop_seconds)),
                    "finalize_seconds": repr(float(finalize_seconds)),
                    "admin_user": admin_user,
                    "admin_password_hash": hash_secret(admin_password),
                    "token_hash": hash_secret(token) if token else "",
                },
            )
    finally:
        conn.close()
    # Nodes run as different users of one group; SQLite gives the -wal/-shm files the same mode.
    with contextlib.suppress(OSError):
        db_file.chmod(0o660)


def set_timings(
    db_file: Path,
    *,
    start_seconds: float | None = None,
    stop_seconds: float | None = None,
    finalize_seconds: float | None = None,
) -> None:
    """Change the lifecycle timings; nodes read them at their next start, stop or approve."""
    values = {
        key: repr(float(value))
        for key, value in (
            ("start_seconds", start_seconds),
            ("stop_seconds", stop_seconds),
            ("finalize_seconds", finalize_seconds),
        )
        if value is not None
    }
    with _transaction(db_file, write=True) as conn:
        _put_settings(conn, values)


def set_node_load(
    db_file: Path,
    node_name: str,
    *,
    tasks: int | None = None,
    users: int | None = None,
) -> None:
    """Set a node's running tasks and active users (kept across restarts; None leaves a value as it is)."""
    with _transaction(db_file, write=True) as conn:
        row = conn.execute("SELECT tasks, users FROM node_load WHERE node = ?", (node_name,)).fetchone()
        new_tasks = tasks if tasks is not None else (int(row["tasks"]) if row else 0)
        new_users = users if users is not None else (int(row["users"]) if row else 0)
        conn.execute(
            "INSERT INTO node_load (node, tasks, users) VALUES (?, ?, ?) ON CONFLICT(node) "
            "DO UPDATE SET tasks = excluded.tasks, users = excluded.users",
            (node_name, new_tasks, new_users),
        )
        conn.execute("UPDATE nodes SET tasks = ?, users = ? WHERE name = ?", (new_tasks, new_users, node_name))


def set_fault(db_file: Path, node_name: str, kind: str | None) -> None:
    """Inject a fault into a node (by name), or clear it with None."""
    if kind is not None and kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    with _transaction(db_file, write=True) as conn:
        if kind is None:
            conn.execute("DELETE FROM faults WHERE node = ?", (node_name,))
        else:
            conn.execute(
                "INSERT INTO faults (node, kind) VALUES (?, ?) ON CONFLICT(node) DO UPDATE SET kind = excluded.kind",
                (node_name, kind),
            )


def fault_for(db_file: Path, node_name: str) -> str | None:
    with _transaction(db_file, write=False) as conn:
        row = conn.execute("SELECT kind FROM faults WHERE node = ?", (node_name,)).fetchone()
    return str(row["kind"]) if row else None


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


def _read_cluster(conn: sqlite3.Connection, now: float) -> ClusterRecord:
    zdu = conn.execute("SELECT * FROM zdu WHERE id = 1").fetchone()
    rows = conn.execute("SELECT * FROM nodes").fetchall()
    return ClusterRecord(
        version=_settings(conn).get("version", ""),
        upgrade_mode=bool(zdu["upgrade_mode"]),
        original_version=zdu["original_version"],
        finalization_pending=bool(zdu["finalization_pending"]),
        target_version=zdu["target_version"],
        nodes=tuple(_node_record(row, now) for row in rows),
    )


def _finalization_due(conn: sqlite3.Connection, now: float) -> bool:
    until = conn.execute("SELECT finalize_until FROM zdu WHERE id = 1").fetchone()["finalize_until"]
    return until is not None and now >= float(until)


def _settle_finalization(db_file: Path, *, known_due: bool = False) -> None:
    """Finish the finalization tasks once their time is up (any node or reader may do it; idempotent)."""
    now = time.time()
    if not known_due:
        with _transaction(db_file, write=False) as conn:
            if not _finalization_due(conn, now):
                return
    with _transaction(db_file, write=True) as conn:
        if not _finalization_due(conn, now):
            return  # another process settled it meanwhile
        zdu = conn.execute("SELECT * FROM zdu WHERE id = 1").fetchone()
        faults = conn.execute("SELECT node FROM faults WHERE kind = 'finalize-fail'")
        failing = {str(row["node"]) for row in faults}
        failed = False
        for row in conn.execute("SELECT id, name FROM nodes WHERE state = ?", (RUNNING_FINALIZE,)).fetchall():
            if row["name"] in failing:
                failed = True
                conn.execute(
                    "UPDATE nodes SET state = ?, finalize_error = ? WHERE id = ?",
                    (TASKS_FAILED, "fault injected: finalize-fail", row["id"]),
                )
            else:
                conn.execute("UPDATE nodes SET state = ?, finalize_error = NULL WHERE id = ?", (ACTIVE, row["id"]))
        if failed:
            conn.execute("UPDATE zdu SET finalize_until = NULL WHERE id = 1")
            return
        target = str(zdu["target_version"])
        _put_settings(conn, {"version": target, "build_number": str(build_number_for(target))})
        conn.execute(
            "UPDATE zdu SET finalize_until = NULL, target_version = NULL, finalization_pending = 0 WHERE id = 1"
        )


def read_cluster(db_file: Path) -> ClusterRecord:
    """The cluster as every node and reader sees it (finishing due finalization first)."""
    _settle_finalization(db_file)
    with _transaction(db_file, write=False) as conn:
        return _read_cluster(conn, time.time())


def cluster_view(db_file: Path) -> dict[str, Any]:
    """The cluster for `confluo lab status`: every node row (also unlisted ones) and the ZDU state."""
    cluster = read_cluster(db_file)
    listed = {n.id for n in cluster.listed()}
    return {
        "state": cluster.state(),
        "upgrade_mode": cluster.upgrade_mode,
        "original_version": cluster.original_version,
        "version": cluster.version,
        "has_finalization_tasks": cluster.has_finalization_tasks(),
        "nodes": [
            {
                "id": n.id,
                "name": n.name,
                "address": n.address,
                "port": n.port,
                "state": n.state,
                "version": n.version,
                "build_number": n.build_number,
                "tasks": n.tasks,
                "users": n.users,
                "pid": n.pid,
                "problem": n.problem,
                "listed": n.id in listed,
            }
            for n in sorted(cluster.nodes, key=lambda n: (n.name, n.address))
        ],
    }


# --- ZDU transitions ------------------------------------------------------------------------------------


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
    seconds = float(_settings(conn).get("finalize_seconds", "1"))
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


_TRANSITIONS = {"start": _start, "cancel": _cancel, "approve": _approve, "retryUpgrade": _retry}
ZDU_ACTIONS = tuple(_TRANSITIONS)


def zdu_transition(db_file: Path, action: str) -> bool:
    """Apply a ZDU action (start, cancel, approve, retryUpgrade); False when the state does not allow it."""
    _settle_finalization(db_file)
    with _transaction(db_file, write=True) as conn:
        now = time.time()
        return _TRANSITIONS[action](conn, _read_cluster(conn, now), now)


# --- pages ----------------------------------------------------------------------------------------------


def create_page(db_file: Path, title: str, body: str, node_name: str) -> int:
    with _transaction(db_file, write=True) as conn:
        cursor = conn.execute(
            "INSERT INTO pages (title, body, created_by, created) VALUES (?, ?, ?, ?)",
            (title, body, node_name, time.time()),
        )
        return int(cursor.lastrowid or 0)


def read_page(db_file: Path, page_id: int) -> dict[str, Any] | None:
    with _transaction(db_file, write=False) as conn:
        row = conn.execute("SELECT * FROM pages WHERE id = ?", (page_id,)).fetchone()
    if row is None:
        return None
    return {
        "id": str(row["id"]),
        "type": "page",
        "title": row["title"],
        "body": row["body"],
        "createdBy": row["created_by"],
    }


# --- JSON of the ZDU API --------------------------------------------------------------------------------


def node_json(
    node: NodeRecord,
    *,
    local_id: str | None,
    base_url: str,
    runs_cluster_tasks: bool,
) -> dict[str, Any]:
    finalization: dict[str, Any] | None = None
    if node.finalize_requested is not None:
        errors = (
            []
            if not node.finalize_error
            else [
                {
                    "clusterUpgradeTask": "LabFinalizationUpgradeTask",
                    "errors": [node.finalize_error],
                    "exceptionMessage": node.finalize_error,
                }
            ]
        )
        finalization = {
            "lastRequested": int(node.finalize_requested * 1000),
            "runsClusterWideTasks": runs_cluster_tasks,
            "errors": errors,
        }
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
        "finalization": finalization,
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


# --- the node process -----------------------------------------------------------------------------------

_STATUS = {  # node state -> what /status answers
    STARTING: (503, "STARTING"),
    ACTIVE: (200, "RUNNING"),
    RUNNING_FINALIZE: (200, "RUNNING"),
    TASKS_FAILED: (200, "RUNNING"),
    DRAINING: (200, "RUNNING"),
    TERMINATING: (503, "STOPPING"),
    OFFLINE: (503, "STOPPING"),
    ERROR: (500, "ERROR"),
    FIRST_RUN: (200, "FIRST_RUN"),
}
_SERVING = {ACTIVE, RUNNING_FINALIZE, TASKS_FAILED, DRAINING, TERMINATING}


class NodeLog:
    """Appends Confluence-style lines to logs/catalina.out and <home>/logs/atlassian-confluence.log."""

    def __init__(self, install: Path) -> None:
        self._files = [install / "logs" / "catalina.out"]
        self._lock = threading.Lock()

    def add_home(self, home: Path) -> None:
        log = home / "logs" / "atlassian-confluence.log"
        if log in self._files:
            return
        with contextlib.suppress(OSError):
            log.parent.mkdir(parents=True, exist_ok=True)
        self._files.append(log)

    def write(self, level: str, logger: str, message: str) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now * 1000) % 1000:03d}"
        line = f"{stamp} {level} [{threading.current_thread().name}] [{logger}] {message}\n"
        with self._lock:
            for path in self._files:
                with contextlib.suppress(OSError), path.open("a", encoding="utf-8") as handle:
                    handle.write(line)


class NodeProgram:
    """One node: reads the installation, joins the cluster (or refuses to), serves HTTP until SIGTERM."""

    def __init__(self, install: InstallInfo) -> None:
        self.install = install
        self.log = NodeLog(install.path)
        self.state = STARTING
        self.name = install.node_name or NOT_CONFIGURED
        self.node_id: str | None = None
        self.db_file: Path | None = None
        self.home: HomeInfo | None = None
        self.version = install.version or "unknown"
        self.build_number = build_number_for(self.version) if install.version else 0
        self._stop = threading.Event()
        self._hang_start = False
        self._ready_at = math.inf
        self._upgraded = False
        self._finalized_build: int | None = None

    @property
    def listen_address(self) -> str:
        # The lab checks the bind address itself; the node always listens where its host lives.
        if self.install.host:
            return self.install.host.address
        return self.install.connector_address or "0.0.0.0"  # noqa: S104 - Tomcat's default without `address`

    @property
    def serving(self) -> bool:
        return self.state in _SERVING

    def status(self) -> tuple[int, str]:
        return _STATUS.get(self.state, (503, "STARTING"))

    # start-up checks, in Confluence's order

    def prepare(self) -> None:
        if self.install.home is not None:
            self.log.add_home(self.install.home)
        self.log.write("INFO", "confluence.lifecycle", f"Starting Confluence {self.version} from {self.install.path}")
        if self.install.home is None:
            self._refuse_first_run("confluence.home is not set in " + str(INIT_PROPERTIES))
            return
        home = read_home(self.install.home)
        if home is None or not home.setup_complete:
            self._refuse_first_run(f"{self.install.home} has no completed {CFG_XML}: setup is needed")
            return
        self.home = home
        self._finalized_build = home.finalized_build
        if home.db_file is None or not home.db_file.is_file():
            self.state = ERROR
            self.log.write(
                "ERROR",
                "confluence.lifecycle",
                f"cannot connect to the database: lab.database.file {home.db_file} does not exist",
            )
            return
        self.db_file = home.db_file
        self.node_id = ensure_node_id(home)
        if self.install.node_name is None:
            # A different node: Confluence derives the cluster identity from the configured name.
            self.node_id = hashlib.sha256(f"{self.node_id}/{NOT_CONFIGURED}".encode()).hexdigest()[:8]
        self._register(home, self.db_file)

    def _refuse_first_run(self, reason: str) -> None:
        self.state = FIRST_RUN
        self.log.write("WARN", "confluence.setup", f"{reason}; serving the setup wizard (FIRST_RUN)")

    def _static_problem(self, home: HomeInfo) -> str | None:
        """Checks 2 and 3: the JDBC driver and the Connector's bind address."""
        if home.jdbc_url.startswith("jdbc:mysql:") and not self.install.has_mysql_driver:
            return f"driver not found: {home.jdbc_url} needs a MySQL JDBC driver ({WEBAPP_LIB}/mysql-connector-*.jar)"
        host = self.install.host
        if host and self.install.connector_address != host.address:
            bound = self.install.connector_address or "0.0.0.0"  # noqa: S104
            return f"binds {bound}:{self.install.port}, not {host.address}"
        return None

    def _version_problem(self, conn: sqlite3.Connection, home: HomeInfo) -> str | None:
        """Check 4: the cluster must accept this version; the home must not be newer than the application."""
        settings = _settings(conn)
        zdu = conn.execute("SELECT * FROM zdu WHERE id = 1").fetchone()
        refusal = version_refusal(
            self.version,
            cluster_version=settings.get("version", ""),
            upgrade_mode=bool(zdu["upgrade_mode"]),
            original_version=zdu["original_version"],
            finalizing_version=zdu["target_version"],
        )
        if refusal:
            return refusal
        if home.build_number > self.build_number:
            return (
                f"the home directory build number [{home.build_number}] is newer than the application "
                f"build number [{self.build_number}]: a downgrade"
            )
        return None

    def _register(self, home: HomeInfo, db_file: Path) -> None:
        with _transaction(db_file, write=True) as conn:
            settings = _settings(conn)
            fault_row = conn.execute("SELECT kind FROM faults WHERE node = ?", (self.name,)).fetchone()
            fault = str(fault_row["kind"]) if fault_row else None
            problem = self._static_problem(home) or self._version_problem(conn, home)
            if problem is None and fault == "fail-start":
                problem = "fault injected: fail-start"
            problems = [p for p in (problem, self._name_problem()) if p]
            self.state = ERROR if problem else STARTING
            load = conn.execute("SELECT tasks, users FROM node_load WHERE node = ?", (self.name,)).fetchone()
            conn.execute(
                "INSERT INTO nodes (id, name, address, port, state, version, build_number, tasks, users, "
                "pid, heartbeat, problem) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name = excluded.name, address = excluded.address, "
                "port = excluded.port, state = excluded.state, version = excluded.version, "
                "build_number = excluded.build_number, tasks = excluded.tasks, users = excluded.users, "
                "pid = excluded.pid, heartbeat = excluded.heartbeat, problem = excluded.problem, "
                "finalize_error = NULL",
                (
                    self.node_id,
                    self.name,
                    self.listen_address,
                    self.install.port,
                    self.state,
                    self.version,
                    self.build_number,
                    int(load["tasks"]) if load else 0,
                    int(load["users"]) if load else 0,
                    os.getpid(),
                    time.time(),
                    "; ".join(problems) or None,
                ),
            )
        self._hang_start = fault == "hang-start"
        self._ready_at = time.monotonic() + float(settings.get("start_seconds", "1"))
        self._upgraded = home.build_number < self.build_number
        for text in problems:
            self.log.write("ERROR" if text == problem else "WARN", "confluence.cluster", text)
        if problem:
            self.log.write(
                "ERROR", "confluence.lifecycle", f"Confluence cluster node {self.name} will not start up: {problem}"
            )
        else:
            self.log.write("INFO", "confluence.cluster", f"Joined the cluster as {self.name}")

    def _name_problem(self) -> str | None:
        if self.install.node_name is not None:
            return None
        return f"node name not configured: -Dconfluence.cluster.node.name is missing from {SETENV_SH}"

    # the running node

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, server: ThreadingHTTPServer) -> int:
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http-nio", daemon=True
        ).start()
        self.log.write(
            "INFO",
            "catalina.Connector",
            f'Starting ProtocolHandler ["http-nio-{self.listen_address}-{self.install.port}"]',
        )
        next_heartbeat = 0.0
        stop_at: float | None = None
        while stop_at is None or time.monotonic() < stop_at:
            if stop_at is None and self._stop.is_set():
                stop_at = time.monotonic() + self._begin_stop()
            if self.db_file is not None:
                with contextlib.suppress(sqlite3.Error):  # a busy database must not kill the node
                    if time.monotonic() >= next_heartbeat:
                        self._heartbeat(self.db_file)
                        next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
                    self._tick(self.db_file)
            if stop_at is None:
                self._stop.wait(TICK_SECONDS)  # wakes at once on SIGTERM
            else:
                time.sleep(max(0.0, min(TICK_SECONDS, stop_at - time.monotonic())))
        self._finish(server)
        return 0

    def _heartbeat(self, db_file: Path) -> None:
        with _transaction(db_file, write=True) as conn:
            conn.execute(
                "UPDATE nodes SET heartbeat = ?, pid = ? WHERE id = ?", (time.time(), os.getpid(), self.node_id)
            )

    def _tick(self, db_file: Path) -> None:
        if self.state == STARTING and not self._hang_start and time.monotonic() >= self._ready_at:
            self._become_active(db_file)
        with _transaction(db_file, write=False) as conn:  # one read per tick keeps idle nodes cheap
            due = _finalization_due(conn, time.time())
            row = conn.execute("SELECT state, pid FROM nodes WHERE id = ?", (self.node_id,)).fetchone()
            cluster_version = _settings(conn).get("version")
        if due:
            _settle_finalization(db_file, known_due=True)
            return  # the rows have just changed: look again at the next tick
        mine = row is not None and row["pid"] == os.getpid()  # never adopt a row another process owns
        previous, self.state = self.state, str(row["state"]) if mine else self.state
        if previous == RUNNING_FINALIZE and self.state == TASKS_FAILED:
            self.log.write("ERROR", "confluence.upgrade", "Finalization upgrade tasks failed")
        finalized = cluster_version == self.version
        if self.state == ACTIVE and finalized and self._finalized_build != self.build_number:
            self._record_finalized()

    def _become_active(self, db_file: Path) -> None:
        with _transaction(db_file, write=True) as conn:
            conn.execute("UPDATE nodes SET state = ? WHERE id = ? AND state = ?", (ACTIVE, self.node_id, STARTING))
        if self._upgraded and self.home is not None:
            with contextlib.suppress(OSError):
                update_cfg_xml(self.home.path / CFG_XML, build_number=self.build_number)
            self._upgraded = False
            upgrades = "atlassian.confluence.upgrade.AbstractUpgradeManager"
            self.log.write("INFO", upgrades, "initialUpgradeFinished Upgrade initial stage completed successfully")
            self.log.write("INFO", upgrades, "entireUpgradeFinished Upgrade completed successfully")
        self.log.write("INFO", "confluence.lifecycle", f"Confluence is ready to serve ({self.name}, {self.version})")

    def _record_finalized(self) -> None:
        """The cluster finalized this node's version: the home's finalizedBuildNumber follows."""
        self._finalized_build = self.build_number
        if self.home is None:
            return
        with contextlib.suppress(OSError):
            update_cfg_xml(self.home.path / CFG_XML, properties={"finalizedBuildNumber": str(self.build_number)})
            self.log.write("INFO", "confluence.upgrade", f"Finalized build number is {self.build_number}")

    def _begin_stop(self) -> float:
        """Go TERMINATING; return how long the graceful stop takes."""
        self.log.write("INFO", "confluence.lifecycle", "Received SIGTERM: shutting down gracefully")
        if self.db_file is None or self.state == FIRST_RUN:
            self.state = TERMINATING
            return 0.0
        seconds, tasks, fault = 1.0, 0, None  # if the database cannot be reached: stop, with the default grace
        for attempt in range(STOP_RECORD_ATTEMPTS):
            try:
                seconds, tasks, fault = self._mark_terminating(self.db_file)
                break
            except sqlite3.Error as exc:
                self.log.write("WARN", "confluence.lifecycle", f"cannot record TERMINATING ({attempt + 1}): {exc}")
                time.sleep(0.2)
        self.state = TERMINATING  # after the row: /status never runs ahead of the cluster's view
        if fault == "hang-stop":
            self.log.write("WARN", "confluence.lifecycle", "fault injected: hang-stop; shutdown never ends")
            return math.inf
        if fault == "slow-stop":
            seconds *= SLOW_STOP_FACTOR
        return seconds + SECONDS_PER_TASK * tasks

    def _mark_terminating(self, db_file: Path) -> tuple[float, int, str | None]:
        """Record TERMINATING; return the stop timing, the running tasks and the node's fault."""
        with _transaction(db_file, write=True) as conn:
            conn.execute("UPDATE nodes SET state = ? WHERE id = ?", (TERMINATING, self.node_id))
            row = conn.execute("SELECT tasks FROM nodes WHERE id = ?", (self.node_id,)).fetchone()
            fault = conn.execute("SELECT kind FROM faults WHERE node = ?", (self.name,)).fetchone()
            seconds = float(_settings(conn).get("stop_seconds", "1"))
        return seconds, int(row["tasks"]) if row else 0, str(fault["kind"]) if fault else None

    def _finish(self, server: ThreadingHTTPServer) -> None:
        if self.db_file is not None:
            with contextlib.suppress(sqlite3.Error), _transaction(self.db_file, write=True) as conn:
                conn.execute(
                    "UPDATE nodes SET state = ?, heartbeat = ? WHERE id = ? AND pid = ?",
                    (OFFLINE, time.time(), self.node_id, os.getpid()),
                )
        server.shutdown()
        server.server_close()
        pid_file = self.install.path / "work" / "catalina.pid"
        with contextlib.suppress(OSError):
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
        self.log.write("INFO", "catalina.Connector", "Destroying ProtocolHandler; Confluence stopped")


# --- HTTP -----------------------------------------------------------------------------------------------


class NodeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, node: NodeProgram) -> None:
        self.node = node
        super().__init__((node.listen_address, node.install.port), NodeRequestHandler)


def _compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class NodeRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # close idle keep-alive connections (a load balancer may hold many)
    server_version = "Apache-Coyote/1.1"
    sys_version = ""

    @property
    def node(self) -> NodeProgram:
        return cast(NodeServer, self.server).node

    def log_message(self, format: str, *args: Any) -> None:
        """Keep catalina.out for the node's own story, not one line per health check."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # responses

    def _send(
        self,
        code: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        session: bool = True,
    ) -> None:
        self.send_response(code)
        if body:
            self.send_header("Content-Type", content_type + ";charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Confluence-Node", self.node.name)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if session and "JSESSIONID=" not in self.headers.get("Cookie", ""):
            self.send_header("Set-Cookie", f"JSESSIONID={secrets.token_hex(16).upper()}; Path=/; HttpOnly")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: object) -> None:
        self._send(code, _compact(obj))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    @property
    def _base_url(self) -> str:
        host = self.headers.get("Host") or f"{self.node.listen_address}:{self.node.install.port}"
        return f"http://{host}"

    # routing

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        try:
            self._route(method, path, body)
        except sqlite3.Error as exc:  # a locked or momentarily unwritable database: the client may retry
            self._json(503, {"statusCode": 503, "message": f"database unavailable: {exc}"})

    def _route(self, method: str, path: str, body: bytes) -> None:
        if path == "/status":
            code, state = self.node.status()
            self._send(code, _compact({"state": state}), session=False)
        elif not self.node.serving:
            self._unavailable(path)
        elif path.startswith("/rest/") and self._fault() == "api-500":
            self._json(500, {"statusCode": 500, "message": "fault injected: api-500"})
        elif path == "/rest/zdu" or path.startswith("/rest/zdu/"):
            self._zdu(method, path)
        elif path.startswith("/rest/api/content"):
            self._content(method, path, body)
        elif path in ("/", "/index.action") and method == "GET":
            self._home_page()
        else:
            self._json(404, {"statusCode": 404, "message": f"No resource at {path}"})

    def _fault(self) -> str | None:
        db_file = self.node.db_file
        return fault_for(db_file, self.node.name) if db_file else None

    def _unavailable(self, path: str) -> None:
        code, state = self.node.status()
        if state == "FIRST_RUN" and not path.startswith("/rest/"):  # the setup wizard; no API yet
            page = f"<html><body><h1>Confluence setup</h1><p>{self.node.name}: set up needed</p></body></html>"
            self._send(200, page.encode(), "text/html")
            return
        code = 500 if state == "ERROR" else 503
        self._json(code, {"statusCode": code, "message": f"Confluence is not serving: {state}"})

    def _home_page(self) -> None:
        node = self.node
        page = (
            f"<!DOCTYPE html><html><head><title>Dashboard - Confluence</title></head><body>"
            f"<h1>Confluence {node.version}</h1><p>Served by node <b>{xml_escape(node.name)}</b> "
            f"({node.listen_address}, id {node.node_id})</p></body></html>"
        )
        self._send(200, page.encode(), "text/html")

    def _authorized(self) -> bool:
        db_file = self.node.db_file
        header = self.headers.get("Authorization", "")
        if db_file is None or not header:
            return False
        with _transaction(db_file, write=False) as conn:
            settings = _settings(conn)
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            stored = settings.get("token_hash", "")
            return bool(stored) and verify_secret(credentials.strip(), stored)
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        stored = settings.get("admin_password_hash", "")
        return user == settings.get("admin_user") and verify_secret(password, stored)

    def _zdu(self, method: str, path: str) -> None:
        db_file = self.node.db_file
        if db_file is None:
            self._unavailable(path)
            return
        if not self._authorized():
            message = "Client must be authenticated as a system administrator"
            self._send(
                401,
                _compact({"statusCode": 401, "message": message}),
                headers={"WWW-Authenticate": 'Basic realm="Confluence"'},
            )
            return
        route = path[len("/rest/zdu") :]
        if route.startswith("/cluster/zdu"):  # the path printed in the Confluence admin docs
            route = route[len("/cluster/zdu") :].rstrip("/") or "/cluster"
        route = route.rstrip("/")
        reads = {"/cluster", "/state"}
        if route in reads or route.startswith("/nodes/"):
            if method != "GET":
                self._send(405, headers={"Allow": "GET"})
            else:
                self._zdu_read(db_file, route)
        elif route.lstrip("/") in ZDU_ACTIONS:
            if method != "POST":
                self._send(405, headers={"Allow": "POST"})
            elif zdu_transition(db_file, route.lstrip("/")):
                self._json(
                    200, cluster_json(read_cluster(db_file), local_id=self.node.node_id, base_url=self._base_url)
                )
            else:
                self._send(409)  # InvalidStateTransitionException: 409 with no entity
        else:
            self._json(404, {"statusCode": 404, "message": f"No ZDU resource at {path}"})

    def _zdu_read(self, db_file: Path, route: str) -> None:
        cluster = read_cluster(db_file)
        local_id, base = self.node.node_id, self._base_url
        if route == "/cluster":
            self._json(200, cluster_json(cluster, local_id=local_id, base_url=base))
            return
        if route == "/state":
            local = cluster.node(local_id or "")
            build_info = None
            if local is not None:
                build_info = node_json(local, local_id=local_id, base_url=base, runs_cluster_tasks=False)
            self._json(200, {"state": cluster.state(), "buildInfo": build_info})
            return
        node = cluster.node(route[len("/nodes/") :])
        if node is None:
            self._json(404, {"statusCode": 404, "message": "Node not found"})
            return
        self._json(200, node_json(node, local_id=local_id, base_url=base, runs_cluster_tasks=False))

    def _content(self, method: str, path: str, body: bytes) -> None:
        db_file = self.node.db_file
        assert db_file is not None  # a serving node has joined the cluster
        if path.rstrip("/") == "/rest/api/content" and method == "POST":
            self._create_page(db_file, body)
            return
        match = re.fullmatch(r"/rest/api/content/(\d+)", path)
        if match and method == "GET":
            page = read_page(db_file, int(match[1]))
            if page is None:
                self._json(404, {"statusCode": 404, "message": f"No content with id {match[1]}"})
            else:
                self._json(200, {**page, "servedBy": self.node.name})
            return
        self._json(
            405 if match or path.rstrip("/") == "/rest/api/content" else 404,
            {"statusCode": 405, "message": f"{method} not supported on {path}"},
        )

    def _create_page(self, db_file: Path, body: bytes) -> None:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("title"), str) or not data["title"]:
            self._json(400, {"statusCode": 400, "message": 'expected JSON {"title": "...", "body": ...}'})
            return
        text = data.get("body", "")
        text = text if isinstance(text, str) else json.dumps(text)
        page_id = create_page(db_file, data["title"], text, self.node.name)
        self._json(
            200,
            {
                "id": str(page_id),
                "type": "page",
                "title": data["title"],
                "body": text,
                "createdBy": self.node.name,
                "servedBy": self.node.name,
            },
        )


# --- entry point ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The lab's simulated Confluence node.")
    parser.add_argument(
        "--install",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the installation directory (default: the parent of lib/)",
    )
    args = parser.parse_args(argv)
    os.umask(0o007)  # the database and shared home are shared by the node users' group
    install = Path(args.install).absolute()
    try:
        node = NodeProgram(read_install(install))
    except ConfigError as exc:
        NodeLog(install).write("ERROR", "confluence.lifecycle", f"Cannot start: {exc}")
        return 1
    signal.signal(signal.SIGTERM, node.request_stop)
    signal.signal(signal.SIGINT, node.request_stop)
    try:
        server = NodeServer(node)
    except OSError as exc:
        node.log.write(
            "ERROR", "catalina.Connector", f"Failed to bind {node.listen_address}:{node.install.port}: {exc}"
        )
        return 1
    _prepare(node)
    return node.run(server)


def _prepare(node: NodeProgram, attempts: int = 5) -> None:
    """Run the start-up checks; retry a database error (another node's process may be creating the
    database's -wal/-shm files that very moment), as registering twice is harmless."""
    for attempt in range(1, attempts + 1):
        try:
            node.prepare()
            return
        except sqlite3.Error as exc:
            if attempt == attempts:
                node.state = ERROR
                node.log.write("ERROR", "confluence.lifecycle", f"Confluence will not start up: {exc}")
            time.sleep(0.2 * attempt)
        except (ConfigError, OSError) as exc:
            node.state = ERROR
            node.log.write("ERROR", "confluence.lifecycle", f"Confluence will not start up: {exc}")
            return


if __name__ == "__main__":
    sys.exit(main())
