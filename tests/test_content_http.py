"""HttpContentApi against a real HTTP server on loopback that answers as it is told: what is sent, what is asked
again and what never is, and how each answer reads."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fakes import FakeClock

from confluo.api.base import ApiAuth
from confluo.api.content import ContentError
from confluo.api.content_http import HttpContentApi

PAGE = {"id": "65601", "type": "page", "status": "current", "title": "T", "space": {"key": "LAB"}}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Confluence:
    """Answers each request with the next of `answers` (status, JSON body), the last one over and over."""

    answers: list[tuple[int, Any]] = field(default_factory=lambda: [(200, {})])
    seen: list[Seen] = field(default_factory=list)

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        confluence = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                confluence.seen.append(Seen(self.command, url.path, parse_qs(url.query), dict(self.headers),
                                            json.loads(raw) if raw else None))  # fmt: skip
                status, body = confluence.answers.pop(0) if len(confluence.answers) > 1 else confluence.answers[0]
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *_: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def confluence() -> Iterator[tuple[Confluence, str]]:
    fake = Confluence()
    server, url = fake.serve()
    yield fake, url
    server.shutdown()
    server.server_close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def api(clock: FakeClock, *, bearer: bool = False) -> HttpContentApi:
    auth = ApiAuth(None, "pat-123", bearer=True) if bearer else ApiAuth("admin", "s3cret", bearer=False)
    return HttpContentApi(auth, timeout=5, clock=clock)


def test_a_create_sends_confluences_payload_with_the_credentials(
    confluence: tuple[Confluence, str], clock: FakeClock
) -> None:
    fake, url = confluence
    fake.answers = [(200, PAGE)]
    page = api(clock).create_page(url, "LAB", "T", "<p>x</p>")
    (seen,) = fake.seen
    assert (page.id, page.space_key, seen.method, seen.path) == ("65601", "LAB", "POST", "/rest/api/content")
    assert seen.body == {"type": "page", "title": "T", "space": {"key": "LAB"},
                         "body": {"storage": {"value": "<p>x</p>", "representation": "storage"}}}  # fmt: skip
    assert seen.headers["Authorization"].startswith("Basic ") and seen.headers["X-Atlassian-Token"] == "no-check"


def test_a_create_is_never_sent_twice_and_a_gateway_error_may_have_taken_effect(
    confluence: tuple[Confluence, str], clock: FakeClock
) -> None:
    fake, url = confluence
    fake.answers = [(503, {"message": "busy"})]
    with pytest.raises(ContentError) as failed:
        api(clock).create_page(url, "LAB", "T", "")
    assert len(fake.seen) == 1 and failed.value.status == 503 and failed.value.ambiguous and not failed.value.final


def test_lookups_and_deletes_are_asked_again_after_a_gateway_error(
    confluence: tuple[Confluence, str], clock: FakeClock
) -> None:
    fake, url = confluence
    fake.answers = [(502, None), (503, None), (200, {"key": "OPS", "name": "Ops"})]
    space = api(clock).space(url, "OPS")
    assert space is not None and (space.key, len(fake.seen), clock.slept) == ("OPS", 3, pytest.approx(0.9))
    fake.seen.clear()
    fake.answers = [(504, None), (204, None)]
    assert api(clock).delete_page(url, "65601", trashed=True) is True
    assert [s.query for s in fake.seen] == [{"status": ["trashed"]}] * 2


def test_a_read_and_a_search_are_asked_once_their_caller_polls(
    confluence: tuple[Confluence, str], clock: FakeClock
) -> None:
    fake, url = confluence
    fake.answers = [(404, {"statusCode": 404, "message": "No content found with id: ContentId{id=1}"})]
    assert api(clock).read_page(url, "1") is None
    fake.answers = [(500, None)]
    with pytest.raises(ContentError, match="HTTP 500"):
        api(clock).search(url, 'title ~ "x"')
    fake.answers = [(200, {"results": [{"content": PAGE}], "size": 1, "totalSize": 1})]
    assert api(clock).search(url, 'space = "LAB" AND title ~ "x"') == ["65601"]
    assert fake.seen[-1].query["cql"] == ['space = "LAB" AND title ~ "x"'] and clock.slept == 0


def test_refusals_are_final_and_say_why(confluence: tuple[Confluence, str], clock: FakeClock) -> None:
    fake, url = confluence
    fake.answers = [(401, {"statusCode": 401, "message": "Client must be authenticated"})]
    with pytest.raises(ContentError, match="credentials are refused") as refused:
        api(clock, bearer=True).read_page(url, "1")
    assert refused.value.final and fake.seen[0].headers["Authorization"] == "Bearer pat-123"
    fake.answers = [(400, {"statusCode": 400, "message": "Could not parse cql : title ~"})]
    with pytest.raises(ContentError, match="HTTP 400: Could not parse cql : title ~"):
        api(clock).search(url, "title ~")


def test_a_node_that_refuses_connections_was_never_sent_anything(clock: FakeClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # bound, not listening: refused
        with pytest.raises(ContentError) as refused:
            api(clock).create_page(url, "LAB", "T", "")
    assert not refused.value.sent and not refused.value.ambiguous and refused.value.status is None
