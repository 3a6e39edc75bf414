"""The cluster API when `api_url` does not answer: the nodes' own URLs stand in (real HTTP servers on loopback)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fakes import FakeClock

from confluo.api.base import ApiAuth, ApiError
from confluo.api.zdu import HttpClusterApi

CLUSTER = {"state": "MIXED", "upgradeModeEnabled": True, "originalVersion": "9.2.13", "nodes": []}


class _Node:
    """A node's ZDU API that answers `status` to everything and counts the requests it got."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[str] = []
        node = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                node.requests.append(f"{self.command} {self.path}")
                body = json.dumps(CLUSTER).encode()
                self.send_response(node.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def nodes() -> Iterator[list[_Node]]:
    started = [_Node(), _Node()]
    yield started
    for node in started:
        node.close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket is closed


def _api(base: str, fallbacks: list[str]) -> HttpClusterApi:
    clock = FakeClock()
    return HttpClusterApi(base, ApiAuth("admin", "pw", bearer=False), timeout=2.0, clock=clock, fallback_urls=fallbacks)


def test_a_stopped_api_url_is_replaced_by_a_node_that_answers_and_stays_replaced(nodes: list[_Node]) -> None:
    down = _closed_port_url()
    api = _api(down, [down, nodes[0].url, nodes[1].url])
    assert api.cluster().state.value == "MIXED"
    assert api.current_url == nodes[0].url
    api.cluster()
    assert len(nodes[0].requests) == 2 and nodes[1].requests == []  # sticky: the dead URL is not tried first again


def test_a_node_answering_500_is_passed_over_for_reads(nodes: list[_Node]) -> None:
    nodes[0].status = 500
    api = _api(nodes[0].url, [nodes[1].url])
    assert api.cluster().upgrade_mode is True
    assert api.current_url == nodes[1].url
    assert len(nodes[0].requests) == 4  # the read was retried on the first before moving on


def test_a_post_goes_elsewhere_only_when_it_could_not_be_sent(nodes: list[_Node]) -> None:
    down = _closed_port_url()
    assert _api(down, [nodes[0].url]).cancel_upgrade().upgrade_mode is True
    assert nodes[0].requests == ["POST /rest/zdu/cancel"]
    nodes[0].status = 500  # it reached a node, which may have acted on it: never sent a second time elsewhere
    with pytest.raises(ApiError, match="HTTP 500"):
        _api(nodes[0].url, [nodes[1].url]).approve_upgrade()
    assert nodes[1].requests == []


def test_a_post_answered_503_was_not_acted_on_so_it_goes_to_a_node_that_serves(nodes: list[_Node]) -> None:
    nodes[0].status = 503  # the load balancer with every server failing its checks, or a node still starting
    assert _api(nodes[0].url, [nodes[1].url]).approve_upgrade().upgrade_mode is True
    assert nodes[0].requests == ["POST /rest/zdu/approve"] and nodes[1].requests == ["POST /rest/zdu/approve"]


def test_without_any_answer_the_error_names_the_last_url_tried() -> None:
    first, second = _closed_port_url(), _closed_port_url()
    with pytest.raises(ApiError, match=second.split("//")[1]):
        _api(first, [second]).cluster()
