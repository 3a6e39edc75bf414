"""The JSON of Confluence's content REST API (``/rest/api``): content, spaces, users, search results, errors.

The shapes follow Confluence Data Center's: ids are strings, a content's default expansions are ``space``,
``history`` and ``version`` (``body.storage`` only when asked for, and in the answer to a create), every entity
has ``_links``, and an error is ``{"statusCode", "data", "message", "reason"}``.
"""

from __future__ import annotations

import hashlib
import time
from http import HTTPStatus
from typing import Any

from .content_store import Page, Space
from .cql import Document
from .routing import Reply, json_reply


def iso_time(seconds: float) -> str:
    """Confluence's timestamps: 2024-06-01T12:00:00.000Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def api_error(code: int, message: str) -> Reply:
    data = {"authorized": code not in (401, 403), "valid": code != 400, "allowedInReadOnlyMode": True,
            "errors": [], "successful": False}  # fmt: skip
    return json_reply(code, {"statusCode": code, "data": data, "message": message, "reason": HTTPStatus(code).phrase})


def user_json(username: str, base: str) -> dict[str, Any]:
    return {
        "type": "known",
        "username": username,
        "userKey": hashlib.sha1(username.encode(), usedforsecurity=False).hexdigest()[:32],
        "displayName": username,
        "_links": {"self": f"{base}/rest/api/user?username={username}"},
        "_expandable": {"status": ""},
    }


def space_json(space: Space, base: str, *, homepage: dict[str, Any] | None = None) -> dict[str, Any]:
    """`homepage`: the home page's content, for ?expand=homepage (left expandable otherwise)."""
    found: dict[str, Any] = {
        "id": space.id,
        "key": space.key,
        "name": space.name,
        "type": space.type,
        "status": "current",
        "_links": {"webui": f"/display/{space.key}", "self": f"{base}/rest/api/space/{space.key}"},
        "_expandable": {"metadata": "", "icon": "", "description": "", "homepage": ""},
    }
    if homepage is not None:
        found["homepage"] = homepage
        del found["_expandable"]["homepage"]
    return found


def _links(content_id: int, base: str) -> dict[str, str]:
    return {
        "webui": f"/pages/viewpage.action?pageId={content_id}",
        "edit": f"/pages/resumedraft.action?draftId={content_id}",
        "collection": "/rest/api/content",
        "base": base,
        "context": "",
        "self": f"{base}/rest/api/content/{content_id}",
    }


def content_json(page: Page, space: Space | None, base: str, *, body: bool, view: bool = False) -> dict[str, Any]:
    author = user_json(page.created_by, base)
    expandable = {"children": "", "descendants": "", "ancestors": "", "container": ""}
    content: dict[str, Any] = {
        "id": str(page.id),
        "type": page.type,
        "status": page.status,
        "title": page.title,
        "space": space_json(space, base) if space else {"key": page.space_key},
        "history": {"latest": True, "createdBy": author, "createdDate": iso_time(page.created)},
        "version": {"by": author, "when": iso_time(page.created), "number": 1, "minorEdit": False, "message": ""},
        "_links": _links(page.id, base),
        "_expandable": {**expandable, "body": ""} if not (body or view) else expandable,
    }
    bodies = {}
    if body:
        bodies["storage"] = {"value": page.body, "representation": "storage"}
    if view:  # rendered: the lab's storage format has no macros, so the page as it is, in its wrapper
        bodies["view"] = {"value": f'<div class="wiki-content">{page.body}</div>', "representation": "view"}
    if bodies:
        content["body"] = bodies
    return content


def search_result_json(doc: Document, space: Space | None, base: str) -> dict[str, Any]:
    """One entry of GET /rest/api/search: the content (no expansions) and what the search shows of it."""
    links = _links(doc.id, base)
    return {
        "content": {"id": str(doc.id), "type": doc.type, "status": "current", "title": doc.title,
                    "restrictions": {}, "_links": {k: links[k] for k in ("webui", "self", "tinyui") if k in links},
                    "_expandable": {"container": "", "space": f"/rest/api/space/{doc.space_key}"}},
        "title": doc.title,
        "excerpt": doc.text[:200],
        "url": links["webui"],
        "resultGlobalContainer": {"title": space.name if space else doc.space_key,
                                  "displayUrl": f"/display/{doc.space_key}"},
        "entityType": "content",
        "iconCssClass": f"aui-icon content-type-{doc.type}",
        "lastModified": iso_time(doc.created),
        "friendlyLastModified": "just now",
    }  # fmt: skip


def page_of(results: list[dict[str, Any]], *, start: int, limit: int, base: str, **extra: Any) -> dict[str, Any]:
    """A PageResponse: results, start, limit, size, and whatever the endpoint adds (totalSize, cqlQuery, ...)."""
    return {"results": results, "start": start, "limit": limit, "size": len(results), **extra,
            "_links": {"base": base, "context": ""}}  # fmt: skip
