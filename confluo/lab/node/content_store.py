"""Spaces and pages in the cluster database: what every node reads at once, whichever node wrote it.

A page is ``current``, then ``trashed`` (in its space's trash), then purged (gone). Each change is written with
its entry in the index journal, in one transaction, so every node's search index follows (``search_index.py``).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .clusterdb import transaction
from .search_index import record_change

CURRENT, TRASHED = "current", "trashed"
ADD_CHANGE, DELETE = "ADD_CHANGE_DOCUMENT", "DELETE_CHANGE_DOCUMENTS"


class Refused(Exception):
    """The change is not allowed (an unknown space, a title taken): the API answers 400."""


@dataclass(frozen=True)
class Space:
    id: int
    key: str
    name: str
    type: str


@dataclass(frozen=True)
class Page:
    id: int
    type: str
    space_key: str
    title: str
    body: str
    status: str
    created_by: str
    created: float


def _space(row: sqlite3.Row) -> Space:
    return Space(int(row["id"]), str(row["key"]), str(row["name"]), str(row["type"]))


def _page(row: sqlite3.Row) -> Page:
    return Page(
        id=int(row["id"]), type=str(row["type"]), space_key=str(row["space_key"]), title=str(row["title"]),
        body=str(row["body"]), status=str(row["status"]), created_by=str(row["created_by"]),
        created=float(row["created"]),
    )  # fmt: skip


def spaces(db_file: Path, *, key: str | None = None, kind: str | None = None) -> list[Space]:
    """Spaces by key: all of them, or the one with `key` (case-insensitive, as Confluence's keys), of `kind`."""
    with transaction(db_file, write=False) as conn:
        rows = conn.execute("SELECT * FROM spaces ORDER BY key").fetchall()
    found = [_space(row) for row in rows]
    return [s for s in found if (key is None or s.key.upper() == key.upper()) and kind in (None, s.type)]


def _space_key(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT key FROM spaces WHERE upper(key) = upper(?)", (key,)).fetchone()
    if row is None:
        raise Refused(f"No space with key : {key}")
    return str(row["key"])


def create_page(db_file: Path, *, space_key: str, title: str, body: str, user: str) -> Page:
    with transaction(db_file, write=True) as conn:
        key = _space_key(conn, space_key)
        taken = conn.execute(
            "SELECT 1 FROM pages WHERE space_key = ? AND lower(title) = lower(?) AND status = ?", (key, title, CURRENT)
        ).fetchone()
        if taken:
            raise Refused(f"A page with this title already exists: A page already exists with the title {title} "
                          f"in the space with key {key}")  # fmt: skip
        now = time.time()
        cursor = conn.execute(
            "INSERT INTO pages (type, space_key, title, body, status, created_by, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("page", key, title, body, CURRENT, user, now),
        )
        page_id = int(cursor.lastrowid or 0)
        record_change(conn, page_id, ADD_CHANGE, now)
        row = conn.execute("SELECT * FROM pages WHERE id = ?", (page_id,)).fetchone()
    return _page(row)


def read_page(db_file: Path, page_id: int) -> Page | None:
    with transaction(db_file, write=False) as conn:
        row = conn.execute("SELECT * FROM pages WHERE id = ?", (page_id,)).fetchone()
    return _page(row) if row is not None else None


def find_pages(db_file: Path, *, space_key: str | None, title: str | None, status: str = CURRENT) -> list[Page]:
    """Pages by space and exact title, from the database (no index): GET /rest/api/content?spaceKey=&title=."""
    sql, values = "SELECT * FROM pages WHERE status = ?", [status]
    if space_key is not None:
        sql, values = sql + " AND upper(space_key) = upper(?)", [*values, space_key]
    if title is not None:
        sql, values = sql + " AND title = ?", [*values, title]
    with transaction(db_file, write=False) as conn:
        rows = conn.execute(sql + " ORDER BY id", values).fetchall()
    return [_page(row) for row in rows]


def delete_page(db_file: Path, page_id: int, *, status: str) -> bool:
    """DELETE /rest/api/content/{id}: a current page goes to the trash; with status=trashed a trashed one is
    purged. False when there is no such page in that status."""
    with transaction(db_file, write=True) as conn:
        row = conn.execute("SELECT status FROM pages WHERE id = ?", (page_id,)).fetchone()
        if row is None or row["status"] != status:
            return False
        if status == CURRENT:
            conn.execute("UPDATE pages SET status = ? WHERE id = ?", (TRASHED, page_id))
            record_change(conn, page_id, DELETE, time.time())
        else:
            conn.execute("DELETE FROM pages WHERE id = ?", (page_id,))
    return True
