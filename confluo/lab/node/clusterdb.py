"""The cluster database: one SQLite file (WAL) shared by every node of the lab, and the lab's levers on it.

It holds the cluster's settings (version, timings, the admin's hashed credentials), the ZDU row, one row per
node, each node's load and fault, the spaces and pages, and the index journal every node's search index
follows. The lab's orchestration calls ``init_database``,
``set_timings``, ``set_node_load`` and ``set_fault``; the nodes read and write it in short transactions.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from .credentials import hash_secret
from .search_index import DEFAULT_INDEX_SECONDS
from .states import FAULT_KINDS
from .versions import build_number_for

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
    finalize_error TEXT,
    index_position INTEGER NOT NULL DEFAULT 0,
    index_checked REAL
);
CREATE TABLE IF NOT EXISTS node_load (node TEXT PRIMARY KEY, tasks INTEGER NOT NULL, users INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS faults (node TEXT PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spaces (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'global'
);
CREATE TABLE IF NOT EXISTS pages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL DEFAULT 'page',
    space_key TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'current',
    created_by TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
    journal_name TEXT NOT NULL,
    content_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    created REAL NOT NULL
);
INSERT OR IGNORE INTO zdu (id) VALUES (1);
INSERT OR IGNORE INTO spaces (id, key, name) VALUES (98305, 'LAB', 'Lab');
INSERT OR IGNORE INTO pages (id, space_key, title, body, created_by, created)
    VALUES (98306, 'LAB', 'Lab Home', '<p>The home page of the lab''s space, as every space has one.</p>', 'admin', 0);
"""


def _connect(db_file: Path) -> sqlite3.Connection:
    # isolation_level=None: we open transactions ourselves, so every read-modify-write is one BEGIN IMMEDIATE.
    conn = sqlite3.connect(str(db_file), timeout=15.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 15000")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL makes this safe; a heartbeat needs no fsync
    return conn


@contextlib.contextmanager
def transaction(db_file: Path, *, write: bool) -> Iterator[sqlite3.Connection]:
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


def put_settings(conn: sqlite3.Connection, values: dict[str, str]) -> None:
    conn.executemany(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )


def read_settings(conn: sqlite3.Connection) -> dict[str, str]:
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
    index_seconds: float = DEFAULT_INDEX_SECONDS,
) -> None:
    """Create the cluster database (with one space, LAB), or reset the settings of an existing one.

    Only salted hashes of the password and the token are stored.
    """
    db_file.parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(db_file)
    try:
        conn.execute("PRAGMA journal_mode = WAL")  # persistent: every later connection uses WAL
        conn.executescript(_SCHEMA)
        with transaction(db_file, write=True) as txn:
            put_settings(
                txn,
                {
                    "version": version,
                    "build_number": str(build_number_for(version)),
                    "start_seconds": repr(float(start_seconds)),
                    "stop_seconds": repr(float(stop_seconds)),
                    "finalize_seconds": repr(float(finalize_seconds)),
                    "index_seconds": repr(float(index_seconds)),
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
    index_seconds: float | None = None,
) -> None:
    """Change the timings; nodes read them at their next start, stop or approve (the index interval at once)."""
    values = {
        key: repr(float(value))
        for key, value in (
            ("start_seconds", start_seconds),
            ("stop_seconds", stop_seconds),
            ("finalize_seconds", finalize_seconds),
            ("index_seconds", index_seconds),
        )
        if value is not None
    }
    with transaction(db_file, write=True) as conn:
        put_settings(conn, values)


def set_node_load(
    db_file: Path,
    node_name: str,
    *,
    tasks: int | None = None,
    users: int | None = None,
) -> None:
    """Set a node's running tasks and active users (kept across restarts; None leaves a value as it is)."""
    with transaction(db_file, write=True) as conn:
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
    with transaction(db_file, write=True) as conn:
        if kind is None:
            conn.execute("DELETE FROM faults WHERE node = ?", (node_name,))
        else:
            conn.execute(
                "INSERT INTO faults (node, kind) VALUES (?, ?) ON CONFLICT(node) DO UPDATE SET kind = excluded.kind",
                (node_name, kind),
            )


def fault_in(conn: sqlite3.Connection, node_name: str) -> str | None:
    row = conn.execute("SELECT kind FROM faults WHERE node = ?", (node_name,)).fetchone()
    return str(row["kind"]) if row else None


def fault_for(db_file: Path, node_name: str) -> str | None:
    with transaction(db_file, write=False) as conn:
        return fault_in(conn, node_name)
