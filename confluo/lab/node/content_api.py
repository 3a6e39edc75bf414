"""The content REST API under ``/rest/api``, as far as a cluster test needs it, with Confluence's JSON and codes:

    POST   /rest/api/content                       create a page: {"type": "page", "title", "space": {"key"},
                                                   "body": {"storage": {"value", "representation": "storage"}}}
    GET    /rest/api/content?spaceKey=K&title=T    pages by space and exact title (from the database)
    GET    /rest/api/content/{id}[?expand=body.storage][&status=trashed]
    DELETE /rest/api/content/{id}                  to the trash (204); with ?status=trashed: purged (204)
    GET    /rest/api/search?cql=...                CQL search in this node's own index (cql.py)
    GET    /rest/api/content/search?cql=...        the same, as content
    GET    /rest/api/space[?spaceKey=K][&type=global]   and   GET /rest/api/space/{key}

Reads and writes go to the shared database, so every node answers them alike at once; searches go to the node's
own index, which follows the database a little later (search_index.py). Every call needs the admin or the token.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from . import content_store as store
from .access import admin_user, authenticated, unauthenticated
from .content_json import api_error, content_json, page_of, search_result_json, space_json
from .cql import CqlError, parse
from .routing import Reply, Request, find, handler_for, json_reply, route

MAX_LIMIT = 1000


def _db(request: Request) -> Path:
    db_file = request.node.db_file
    assert db_file is not None  # a serving node has joined the cluster
    return db_file


def _window(request: Request, default: int = 25) -> tuple[int, int]:
    try:
        start = max(0, int(request.query.get("start", "0")))
        limit = min(MAX_LIMIT, max(0, int(request.query.get("limit", str(default)))))
    except ValueError:
        return 0, default
    return start, limit


def _expanded(request: Request, what: str) -> bool:
    """Whether ?expand= (a comma-separated list) asks for `what`."""
    return what in request.query.get("expand", "").split(",")


def _spaces_by_key(request: Request) -> dict[str, store.Space]:
    return {space.key: space for space in store.spaces(_db(request))}


# --- content -------------------------------------------------------------------------------------------


def _create(request: Request, _match: re.Match[str]) -> Reply:
    try:
        data = json.loads(request.body or b"null")
    except ValueError:
        return api_error(400, "Unable to parse the request body as JSON content")
    problem = _create_problem(data)
    if problem:
        return api_error(400, problem)
    storage = ((data.get("body") or {}).get("storage") or {}).get("value", "")
    try:
        page = store.create_page(
            _db(request), space_key=data["space"]["key"], title=data["title"], body=storage, user=admin_user(request)
        )
    except store.Refused as refused:
        return api_error(400, str(refused))
    space = _spaces_by_key(request).get(page.space_key)
    return json_reply(200, content_json(page, space, request.base_url, body=True))


def _create_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "Expected a JSON object describing the content"
    if data.get("type") != "page":
        return f"Unsupported content type: {data.get('type')}"
    if not isinstance(data.get("title"), str) or not data["title"].strip():
        return "Cannot create content with an empty title"
    if not isinstance(data.get("space"), dict) or not isinstance(data["space"].get("key"), str):
        return 'Content must have a space: {"space": {"key": "KEY"}}'
    body = data.get("body", {})
    storage = body.get("storage") if isinstance(body, dict) else None
    if body and (not isinstance(storage, dict) or not isinstance(storage.get("value", ""), str)):
        return 'The body must be given as {"storage": {"value": ..., "representation": "storage"}}'
    if storage and storage.get("representation", "storage") != "storage":
        return f"Unsupported representation: {storage.get('representation')}"
    return None


def _list(request: Request, _match: re.Match[str]) -> Reply:
    start, limit = _window(request)
    status = request.query.get("status", store.CURRENT)
    pages = store.find_pages(
        _db(request), space_key=request.query.get("spaceKey"), title=request.query.get("title"), status=status
    )
    spaces = _spaces_by_key(request)
    body, view = _expanded(request, "body.storage"), _expanded(request, "body.view")
    results = [content_json(p, spaces.get(p.space_key), request.base_url, body=body, view=view) for p in pages]
    return json_reply(200, page_of(results[start : start + limit], start=start, limit=limit, base=request.base_url))


def _read(request: Request, match: re.Match[str]) -> Reply:
    page = store.read_page(_db(request), int(match["id"]))
    if page is None or page.status != request.query.get("status", store.CURRENT):
        return _not_found(match["id"])
    space = _spaces_by_key(request).get(page.space_key)
    body, view = _expanded(request, "body.storage"), _expanded(request, "body.view")
    return json_reply(200, content_json(page, space, request.base_url, body=body, view=view))


def _delete(request: Request, match: re.Match[str]) -> Reply:
    status = request.query.get("status", store.CURRENT)
    known = status in (store.CURRENT, store.TRASHED)
    if not known or not store.delete_page(_db(request), int(match["id"]), status=status):
        return _not_found(match["id"])
    return Reply(204)


def _not_found(content_id: str) -> Reply:
    return api_error(404, f"No content found with id: ContentId{{id={content_id}}}")


# --- search --------------------------------------------------------------------------------------------


def _search(request: Request, _match: re.Match[str], *, as_content: bool = False) -> Reply:
    cql = request.query.get("cql", "")
    if not cql.strip():
        return api_error(400, "The CQL query parameter 'cql' is required")
    began = time.monotonic()
    try:
        query = parse(cql)
    except CqlError as error:
        return api_error(400, str(error))
    found = request.node.search_index.search(query)
    start, limit = _window(request)
    shown = found[start : start + limit]
    spaces = _spaces_by_key(request)
    base = request.base_url
    if as_content:
        pages = [store.read_page(_db(request), doc.id) for doc in shown]
        results = [content_json(p, spaces.get(p.space_key), base, body=False) for p in pages if p is not None]
        return json_reply(200, page_of(results, start=start, limit=limit, base=base))
    results = [search_result_json(doc, spaces.get(doc.space_key), base) for doc in shown]
    took = int((time.monotonic() - began) * 1000)
    return json_reply(
        200, page_of(results, start=start, limit=limit, base=base, totalSize=len(found), cqlQuery=cql,
                     searchDuration=took),
    )  # fmt: skip


def _content_search(request: Request, match: re.Match[str]) -> Reply:
    return _search(request, match, as_content=True)


# --- spaces --------------------------------------------------------------------------------------------


def _spaces(request: Request, _match: re.Match[str]) -> Reply:
    start, limit = _window(request)
    found = store.spaces(_db(request), key=request.query.get("spaceKey"), kind=request.query.get("type"))
    results = [_space_json(request, space) for space in found[start : start + limit]]
    return json_reply(200, page_of(results, start=start, limit=limit, base=request.base_url))


def _space(request: Request, match: re.Match[str]) -> Reply:
    found = store.spaces(_db(request), key=match["key"])
    if not found:
        return api_error(404, f"No space with key : {match['key']}")
    return json_reply(200, _space_json(request, found[0]))


def _space_json(request: Request, space: store.Space) -> dict[str, Any]:
    """A space; with ?expand=homepage its home page (the space's first page, as the one it was made with)."""
    if not _expanded(request, "homepage"):
        return space_json(space, request.base_url)
    pages = store.find_pages(_db(request), space_key=space.key, title=None)
    home = content_json(pages[0], space, request.base_url, body=False) if pages else None
    return space_json(space, request.base_url, homepage=home)


_ROUTES = (
    route(r"/rest/api/content/?", GET=_list, POST=_create),
    route(r"/rest/api/content/search/?", GET=_content_search),
    route(r"/rest/api/content/(?P<id>\d+)/?", GET=_read, DELETE=_delete),
    route(r"/rest/api/search/?", GET=_search),
    route(r"/rest/api/space/?", GET=_spaces),
    route(r"/rest/api/space/(?P<key>[^/]+)/?", GET=_space),
)


def handle(request: Request, _match: re.Match[str]) -> Reply:
    """Everything under /rest/api: authentication first, then the routes (405 for a method a route lacks)."""
    if not authenticated(request):
        return unauthenticated()
    found = find(_ROUTES, request.path)
    if found is None:
        return api_error(404, f"No resource at {request.path}")
    handler = handler_for(found[0], request.method)
    if handler is None:
        return Reply(405, headers={"Allow": ", ".join(found[0].methods)})
    return handler(request, found[1])
