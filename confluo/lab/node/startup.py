"""A node's start-up, in Confluence's order of checks, ending in a Verdict: FIRST_RUN, ERROR, or STARTING
(joined the cluster). The node's row is written here, with the problem that keeps it from serving, if any.

1. no ``confluence.home`` or no completed ``confluence.cfg.xml``: FIRST_RUN (it never joins the cluster);
2. a MySQL URL without the MySQL driver, or 3. a Connector address that is not the host's: ERROR;
4. a version the cluster does not accept, or a home finalized on a newer build (a downgrade): ERROR.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .clusterdb import fault_in, read_settings, transaction
from .home import CFG_XML, HomeInfo, ensure_node_id, read_home
from .install import INIT_PROPERTIES, NOT_CONFIGURED, SETENV_SH, WEBAPP_LIB, ConfigError, InstallInfo
from .log import NodeLog
from .states import ERROR, FIRST_RUN, STARTING
from .versions import version_refusal


@dataclass(frozen=True)
class Verdict:
    """How the start-up ended; everything but ``state`` is set only as far as the node got."""

    state: str  # STARTING, ERROR or FIRST_RUN
    home: HomeInfo | None = None
    db_file: Path | None = None
    node_id: str | None = None
    hang_start: bool = False  # the hang-start fault: the node never leaves STARTING
    start_seconds: float = math.inf  # how long STARTING lasts
    upgraded: bool = False  # the home's build number is older: this start completes an upgrade


def start_up(install: InstallInfo, log: NodeLog, attempts: int = 5) -> Verdict:
    """Run the checks; retry a database error (another node's process may be creating the database's
    -wal/-shm files that very moment), as registering twice is harmless."""
    failure: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return _check(install, log)
        except sqlite3.Error as exc:
            failure = exc
            if attempt < attempts:
                time.sleep(0.2 * attempt)
        except (ConfigError, OSError) as exc:
            failure = exc
            break
    log.write("ERROR", "confluence.lifecycle", f"Confluence will not start up: {failure}")
    return Verdict(ERROR)


def _check(install: InstallInfo, log: NodeLog) -> Verdict:
    if install.home is not None:
        log.add_home(install.home)
    log.write("INFO", "confluence.lifecycle", f"Starting Confluence {install.shown_version} from {install.path}")
    if install.home is None:
        return _first_run(log, "confluence.home is not set in " + str(INIT_PROPERTIES))
    home = read_home(install.home)
    if home is None or not home.setup_complete:
        return _first_run(log, f"{install.home} has no completed {CFG_XML}: setup is needed")
    if home.db_file is None or not home.db_file.is_file():
        message = f"cannot connect to the database: lab.database.file {home.db_file} does not exist"
        log.write("ERROR", "confluence.lifecycle", message)
        return Verdict(ERROR, home=home)
    node_id = ensure_node_id(home)
    if install.node_name is None:
        # A different node: Confluence derives the cluster identity from the configured name.
        node_id = hashlib.sha256(f"{node_id}/{NOT_CONFIGURED}".encode()).hexdigest()[:8]
    return _join(install, home, home.db_file, node_id, log)


def _first_run(log: NodeLog, reason: str) -> Verdict:
    log.write("WARN", "confluence.setup", f"{reason}; serving the setup wizard (FIRST_RUN)")
    return Verdict(FIRST_RUN)


def _join(install: InstallInfo, home: HomeInfo, db_file: Path, node_id: str, log: NodeLog) -> Verdict:
    """Register the node's row, STARTING or ERROR, in one transaction with the checks that decide it."""
    with transaction(db_file, write=True) as conn:
        settings = read_settings(conn)
        fault = fault_in(conn, install.shown_name)
        problem = _static_problem(install, home) or _version_problem(conn, settings, install, home)
        if problem is None and fault == "fail-start":
            problem = "fault injected: fail-start"
        problems = [p for p in (problem, _name_problem(install)) if p]
        state = ERROR if problem else STARTING
        _write_row(conn, install, node_id, state, "; ".join(problems) or None)
    for text in problems:
        log.write("ERROR" if text == problem else "WARN", "confluence.cluster", text)
    if problem:
        name = install.shown_name
        log.write("ERROR", "confluence.lifecycle", f"Confluence cluster node {name} will not start up: {problem}")
    else:
        log.write("INFO", "confluence.cluster", f"Joined the cluster as {install.shown_name}")
    return Verdict(
        state,
        home=home,
        db_file=db_file,
        node_id=node_id,
        hang_start=fault == "hang-start",
        start_seconds=float(settings.get("start_seconds", "1")),
        upgraded=home.build_number < install.build_number,
    )


def _static_problem(install: InstallInfo, home: HomeInfo) -> str | None:
    """Checks 2 and 3: the JDBC driver and the Connector's bind address."""
    if home.jdbc_url.startswith("jdbc:mysql:") and not install.has_mysql_driver:
        return f"driver not found: {home.jdbc_url} needs a MySQL JDBC driver ({WEBAPP_LIB}/mysql-connector-*.jar)"
    host = install.host
    if host and install.connector_address != host.address:
        bound = install.connector_address or "0.0.0.0"  # noqa: S104
        return f"binds {bound}:{install.port}, not {host.address}"
    return None


def _version_problem(
    conn: sqlite3.Connection, settings: dict[str, str], install: InstallInfo, home: HomeInfo
) -> str | None:
    """Check 4: the cluster must accept this version; the home must not be finalized on a newer build."""
    zdu = conn.execute("SELECT * FROM zdu WHERE id = 1").fetchone()
    refusal = version_refusal(
        install.shown_version,
        cluster_version=settings.get("version", ""),
        upgrade_mode=bool(zdu["upgrade_mode"]),
        original_version=zdu["original_version"],
        finalizing_version=zdu["target_version"],
    )
    if refusal:
        return refusal
    # A rolling upgrade moves the home's buildNumber to the new build but leaves finalizedBuildNumber on the old
    # one until finalize: before it, the old version starts again on that home (Atlassian's node rollback).
    finalized = home.finalized_build if home.finalized_build is not None else home.build_number
    if finalized > install.build_number:
        return (
            f"the home directory's finalized build number [{finalized}] is newer than the application "
            f"build number [{install.build_number}]: a downgrade"
        )
    return None


def _name_problem(install: InstallInfo) -> str | None:
    if install.node_name is not None:
        return None
    return f"node name not configured: -Dconfluence.cluster.node.name is missing from {SETENV_SH}"


def _write_row(conn: sqlite3.Connection, install: InstallInfo, node_id: str, state: str, problem: str | None) -> None:
    load = conn.execute("SELECT tasks, users FROM node_load WHERE node = ?", (install.shown_name,)).fetchone()
    conn.execute(
        "INSERT INTO nodes (id, name, address, port, state, version, build_number, tasks, users, "
        "pid, heartbeat, problem) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET name = excluded.name, address = excluded.address, "
        "port = excluded.port, state = excluded.state, version = excluded.version, "
        "build_number = excluded.build_number, tasks = excluded.tasks, users = excluded.users, "
        "pid = excluded.pid, heartbeat = excluded.heartbeat, problem = excluded.problem, "
        "finalize_error = NULL, index_position = 0, index_checked = NULL",
        (
            node_id,
            install.shown_name,
            install.listen_address,
            install.port,
            state,
            install.shown_version,
            install.build_number,
            int(load["tasks"]) if load else 0,
            int(load["users"]) if load else 0,
            os.getpid(),
            time.time(),
            problem,
        ),
    )
