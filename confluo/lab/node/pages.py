"""What a node shows besides the ZDU API: the dashboard, the setup wizard, "not serving", and a tiny content
API (create a page, read it back from any node) over the pages table of the cluster database."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from .clusterdb import transaction
from .routing import Reply, Request, error_reply, find, handler_for, html_reply, json_reply, route
from .states import ERROR, FIRST_RUN

# --- the pages table ------------------------------------------------------------------------------------


def create_page(db_file: Path, title: str, body: str, node_name: str) -> int:
    with transaction(db_file, write=True) as conn:
        cursor = conn.execute(
            "INSERT INTO pages (title, body, created_by, created) VALUES (?, ?, ?, ?)",
            (title, body, node_name, time.time()),
        )
        return int(cursor.lastrowid or 0)


def read_page(db_file: Path, page_id: int) -> dict[str, Any] | None:
    with transaction(db_file, write=False) as conn:
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


# --- pages of a node ------------------------------------------------------------------------------------


def home_page(request: Request, _match: re.Match[str]) -> Reply:
    node = request.node
    return html_reply(
        f"<!DOCTYPE html><html><head><title>Dashboard - Confluence</title></head><body>"
        f"<h1>Confluence {node.version}</h1><p>Served by node <b>{xml_escape(node.name)}</b> "
        f"({node.listen_address}, id {node.node_id})</p></body></html>"
    )


def unavailable(request: Request, _match: re.Match[str] | None = None) -> Reply:
    """A node that does not serve: the setup wizard on a first run, otherwise 503 (or 500 in ERROR)."""
    _code, state = request.node.status()
    if state == FIRST_RUN and not request.path.startswith("/rest/"):  # the setup wizard; no API yet
        return html_reply(
            f"<html><body><h1>Confluence setup</h1><p>{request.node.name}: set up needed</p></body></html>"
        )
    code = 500 if state == ERROR else 503
    return error_reply(code, f"Confluence is not serving: {state}")


# --- the content API ------------------------------------------------------------------------------------


def _db(request: Request) -> Path:
    db_file = request.node.db_file
    assert db_file is not None  # a serving node has joined the cluster
    return db_file


def _create(request: Request, _match: re.Match[str]) -> Reply:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("title"), str) or not data["title"]:
        return error_reply(400, 'expected JSON {"title": "...", "body": ...}')
    text = data.get("body", "")
    text = text if isinstance(text, str) else json.dumps(text)
    name = request.node.name
    page_id = create_page(_db(request), data["title"], text, name)
    page = {"id": str(page_id), "type": "page", "title": data["title"], "body": text, "createdBy": name}
    return json_reply(200, {**page, "servedBy": name})


def _read(request: Request, match: re.Match[str]) -> Reply:
    page = read_page(_db(request), int(match["id"]))
    if page is None:
        return error_reply(404, f"No content with id {match['id']}")
    return json_reply(200, {**page, "servedBy": request.node.name})


_ROUTES = (
    route(r"/rest/api/content/*", POST=_create),
    route(r"/rest/api/content/(?P<id>\d+)", GET=_read),
)


def content(request: Request, _match: re.Match[str]) -> Reply:
    """Everything under /rest/api/content."""
    found = find(_ROUTES, request.path)
    handler = handler_for(found[0], request.method) if found else None
    if found is None or handler is None:
        # The body says 405 for an unknown path too: kept as the lab has always answered.
        code = 405 if found else 404
        return json_reply(code, {"statusCode": 405, "message": f"{request.method} not supported on {request.path}"})
    return handler(request, found[1])
