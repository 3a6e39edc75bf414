"""The node's HTTP in plain values: a Request in, a Reply out, and a route table that maps paths to handlers.

Handlers never touch the socket; ``http.py`` turns a Reply into bytes on the wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .search_index import SearchIndex


class ServedNode(Protocol):
    """What the HTTP side needs to know of the running node."""

    @property
    def name(self) -> str: ...
    @property
    def node_id(self) -> str | None: ...
    @property
    def db_file(self) -> Path | None: ...
    @property
    def version(self) -> str: ...
    @property
    def listen_address(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def serving(self) -> bool: ...
    @property
    def search_index(self) -> SearchIndex: ...

    def status(self) -> tuple[int, str]: ...


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    body: bytes
    authorization: str
    base_url: str  # e.g. http://127.0.0.11:8090, from the Host header: links point where the client came from
    node: ServedNode
    query: Mapping[str, str] = field(default_factory=dict)  # the first value of each query parameter


@dataclass(frozen=True)
class Reply:
    code: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    session: bool = True  # hand out a JSESSIONID cookie if the client has none (as Tomcat does)


def compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_reply(code: int, obj: object) -> Reply:
    return Reply(code, compact(obj))


def html_reply(page: str) -> Reply:
    return Reply(200, page.encode(), "text/html")


def error_reply(code: int, message: str) -> Reply:
    return json_reply(code, {"statusCode": code, "message": message})


Handler = Callable[[Request, "re.Match[str]"], Reply]


@dataclass(frozen=True)
class Route:
    """Paths matching ``pattern`` (in full) go to ``methods[request.method]``; ``ANY`` takes every method."""

    pattern: re.Pattern[str]
    methods: Mapping[str, Handler]


def route(pattern: str, **methods: Handler) -> Route:
    return Route(re.compile(pattern), methods)


def find(routes: Sequence[Route], path: str) -> tuple[Route, re.Match[str]] | None:
    """The first route whose pattern matches the whole path."""
    for candidate in routes:
        if match := candidate.pattern.fullmatch(path):
            return candidate, match
    return None


def handler_for(found: Route, method: str) -> Handler | None:
    return found.methods.get(method) or found.methods.get("ANY")
