"""Port 2, Confluence's content REST API (``/rest/api``): the spaces and pages `confluo verify` works with, their
pure parsers, and the ContentApi protocol. No I/O here: `content_http.py` speaks HTTP.

Every call names the base URL it goes to: the load balancer's (create, delete) or one node's own (read, search),
since the point of the cluster test is to ask each node itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from confluo.api.base import ApiError

CONTENT_BASE = "/rest/api"
FINAL_STATUS = frozenset({400, 401, 403, 405})  # asking the same again gets the same answer


@dataclass(frozen=True)
class Space:
    key: str
    name: str


@dataclass(frozen=True)
class Page:
    id: str
    title: str
    space_key: str
    status: str


class ContentError(ApiError):
    """A content API call that did not succeed. `status` is the HTTP status (None: no answer); `sent` is False
    when the request never left (the connection failed), so it cannot have taken effect."""

    def __init__(self, message: str, *, status: int | None = None, sent: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.sent = sent

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUS

    @property
    def ambiguous(self) -> bool:
        """Whether a write may have taken effect although it failed (sent, and no answer or a gateway's)."""
        return self.sent and (self.status is None or self.status >= 500)


class ContentApi(Protocol):
    def space(self, base: str, key: str) -> Space | None:
        """GET /rest/api/space/{key}; None when there is no such space (or the user may not see it)."""
        ...

    def first_space(self, base: str) -> Space | None:
        """The first global space the API lists (GET /rest/api/space?type=global&limit=1)."""
        ...

    def create_page(self, base: str, space_key: str, title: str, body: str) -> Page:
        """POST /rest/api/content; `body` in storage format."""
        ...

    def find_pages(self, base: str, space_key: str, title: str) -> list[Page]:
        """GET /rest/api/content?spaceKey=&title=: from the database, not the search index."""
        ...

    def read_page(self, base: str, page_id: str) -> Page | None:
        """GET /rest/api/content/{id}; None on 404."""
        ...

    def search(self, base: str, cql: str) -> list[str]:
        """GET /rest/api/search?cql=: the ids of the content found."""
        ...

    def delete_page(self, base: str, page_id: str, *, trashed: bool = False) -> bool:
        """DELETE /rest/api/content/{id}: a current page to the trash, or with `trashed` purge it from the trash.
        False on 404 (not there in that status)."""
        ...

    def close(self) -> None: ...


def cql_string(value: str) -> str:
    """A CQL string literal: double quotes, with quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def page_payload(space_key: str, title: str, body: str) -> dict[str, Any]:
    return {
        "type": "page",
        "title": title,
        "space": {"key": space_key},
        "body": {"storage": {"value": body, "representation": "storage"}},
    }


def parse_space(data: Mapping[str, Any]) -> Space:
    return Space(key=str(data.get("key") or ""), name=str(data.get("name") or ""))


def parse_page(data: Mapping[str, Any]) -> Page:
    space = data.get("space")
    return Page(
        id=str(data.get("id") or ""),
        title=str(data.get("title") or ""),
        space_key=str(space.get("key") or "") if isinstance(space, Mapping) else "",
        status=str(data.get("status") or "current"),
    )


def parse_results(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    results = data.get("results")
    return [r for r in results if isinstance(r, Mapping)] if isinstance(results, list) else []


def parse_search(data: Mapping[str, Any]) -> list[str]:
    """The content ids of a /rest/api/search answer (results that are not content are skipped)."""
    found = []
    for result in parse_results(data):
        content = result.get("content")
        if isinstance(content, Mapping) and content.get("id") is not None:
            found.append(str(content["id"]))
    return found
