"""The node's HTTP server (``http.server``: the node has only python3) and its top-level route table.

``/status`` always answers; every other path needs a serving node, and ``/rest/zdu/`` answers 500 under the
api-500 fault; under pages-broken every page and every content read answers 500. A database that is busy or
briefly unwritable gives 503, which a client may retry.
"""

from __future__ import annotations

import secrets
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from . import content_api, pages, zdu_api
from .clusterdb import fault_for
from .routing import Reply, Request, ServedNode, compact, error_reply, find, handler_for, route

ROUTES = (
    route(r"/rest/zdu(?:/.*)?", ANY=zdu_api.handle),
    route(r"/rest/api/.*", ANY=content_api.handle),
    route(r"/|/index\.action", GET=pages.home_page),
)


def respond(request: Request) -> Reply:
    if request.path == "/status":
        code, state = request.node.status()
        return Reply(code, compact({"state": state}), session=False)
    if not request.node.serving:
        return pages.unavailable(request)
    fault = _fault(request)
    if request.path.startswith("/rest/zdu/") and fault == "api-500":
        return error_reply(500, "fault injected: api-500")
    if fault == "pages-broken" and _a_page(request.path):
        return error_reply(500, "fault injected: pages-broken (com.atlassian.confluence.content.render: no renderer)")
    found = find(ROUTES, request.path)
    handler = handler_for(found[0], request.method) if found else None
    if found is None or handler is None:
        return error_reply(404, f"No resource at {request.path}")
    return handler(request, found[1])


def _a_page(path: str) -> bool:
    """What a broken renderer breaks: every page a browser opens, and content read through the REST API."""
    return path.startswith("/rest/api/content") or not path.startswith("/rest/")


def _fault(request: Request) -> str | None:
    db_file = request.node.db_file
    return fault_for(db_file, request.node.name) if db_file else None


class NodeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, node: ServedNode) -> None:
        self.node = node
        super().__init__((node.listen_address, node.port), NodeRequestHandler)


class NodeRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # close idle keep-alive connections (a load balancer may hold many)
    server_version = "Apache-Coyote/1.1"
    sys_version = ""

    @property
    def node(self) -> ServedNode:
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

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        request = Request(
            method=method,
            path=url.path,
            body=self._read_body(),
            authorization=self.headers.get("Authorization", ""),
            base_url=self._base_url(),
            node=self.node,
            query=dict(reversed(parse_qsl(url.query, keep_blank_values=True))),  # the first value wins
        )
        try:
            reply = respond(request)
        except sqlite3.Error as exc:  # a locked or momentarily unwritable database: the client may retry
            reply = error_reply(503, f"database unavailable: {exc}")
        self._send(reply)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _base_url(self) -> str:
        host = self.headers.get("Host") or f"{self.node.listen_address}:{self.node.port}"
        return f"http://{host}"

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.code)
        if reply.body:
            self.send_header("Content-Type", reply.content_type + ";charset=UTF-8")
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("X-Confluence-Node", self.node.name)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        if reply.session and "JSESSIONID=" not in self.headers.get("Cookie", ""):
            self.send_header("Set-Cookie", f"JSESSIONID={secrets.token_hex(16).upper()}; Path=/; HttpOnly")
        self.end_headers()
        self.wfile.write(reply.body)
