"""Each node's own search index, and the cluster's index journal it follows.

As in Confluence Data Center, a change to content is written to the shared database together with an entry in the
journal (``journal``, name ``main_index``); every node keeps its own index and, every ``index_seconds``, takes the
journal entries it has not seen yet. So a page is readable on every node at once, but each node finds it in a
search only once it has caught up: a search right after the page was created can miss it. Under the fault
``index-broken`` a node still looks at the journal but takes nothing, and its index falls behind.

The lab keeps the index in memory: a node that starts rebuilds it from the whole journal.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable

from .cql import Document, Query

JOURNAL = "main_index"
INDEX_BROKEN = "index-broken"
DEFAULT_INDEX_SECONDS = 1.0
BATCH = 500  # journal entries taken in one go


def record_change(conn: sqlite3.Connection, content_id: int, kind: str, now: float) -> None:
    """The journal entry of a change, written in the transaction that makes the change."""
    conn.execute(
        "INSERT INTO journal (journal_name, content_id, type, created) VALUES (?, ?, ?, ?)",
        (JOURNAL, content_id, kind, now),
    )


def latest_entry(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(entry_id) AS latest FROM journal WHERE journal_name = ?", (JOURNAL,)).fetchone()
    return int(row["latest"] or 0)


def entries_after(conn: sqlite3.Connection, position: int) -> list[tuple[int, int, Document | None]]:
    """(entry id, content id, the content as it is now or None when it is gone or trashed), oldest first."""
    rows = conn.execute(
        "SELECT j.entry_id, j.content_id, p.id, p.type, p.space_key, p.title, p.body, p.created FROM journal j "
        "LEFT JOIN pages p ON p.id = j.content_id AND p.status = 'current' "
        "WHERE j.journal_name = ? AND j.entry_id > ? ORDER BY j.entry_id LIMIT ?",
        (JOURNAL, position, BATCH),
    ).fetchall()
    return [(int(row[0]), int(row[1]), _document(row) if row[2] is not None else None) for row in rows]


def _document(row: sqlite3.Row) -> Document:
    return Document(
        id=int(row[2]), type=str(row[3]), space_key=str(row[4]), title=str(row[5]), body=str(row[6]),
        created=float(row[7]),
    )  # fmt: skip


class SearchIndex:
    """One node's index: the documents it has taken, and the last journal entry it took."""

    def __init__(self) -> None:
        self._documents: dict[int, Document] = {}
        self._position = 0
        self._lock = threading.Lock()  # searches run in the HTTP threads, catching up in the main loop

    @property
    def position(self) -> int:
        return self._position

    def take(self, entries: Iterable[tuple[int, int, Document | None]]) -> None:
        with self._lock:
            for entry_id, content_id, document in entries:
                if document is None:
                    self._documents.pop(content_id, None)
                else:
                    self._documents[content_id] = document
                self._position = max(self._position, entry_id)

    def search(self, query: Query) -> list[Document]:
        with self._lock:
            documents = list(self._documents.values())
        return query.run(documents)
