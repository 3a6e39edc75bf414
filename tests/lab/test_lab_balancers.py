"""The load balancer in front of the lab: traffic keeps flowing while a node stops."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from labkit import LabHandle, wait_until

from confluo.lab import balancer

pytestmark = pytest.mark.lab


class Traffic:
    """Requests through the load balancer, one after the other, in a thread, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(f"{self.url}/")
                    self.answers.append((response.status_code, response.headers.get("x-confluence-node", "?")))
                except httpx.HTTPError as error:
                    self.answers.append((0, type(error).__name__))

    def errors(self) -> list[tuple[int, str]]:
        return [answer for answer in self.answers if answer[0] != 200]

    def served_by(self) -> Counter[str]:
        return Counter(node for status, node in self.answers if status == 200)


def stop_node_under_traffic(lab: LabHandle, node: str | None = None) -> Traffic:
    """`node` stopped while traffic flows; None: the node the (sticky) traffic is on."""
    with Traffic(lab.lb_url) as traffic:
        wait_until(lambda: len(traffic.answers) >= 20, 10, "traffic to flow")
        node = node or traffic.served_by().most_common(1)[0][0]
        lab.stop_node(node)
        lab.wait_for_state(node, "OFFLINE")
        after_stop = len(traffic.answers)
        wait_until(lambda: len(traffic.answers) >= after_stop + 30, 10, "traffic after the stop")
    return traffic


def test_haproxy_without_retries_a_stop_without_drain_costs_users_503s(lab_factory: Callable[..., LabHandle]) -> None:
    """The lab is configured as production is: no redispatch, so a stopping node's 503s reach the users."""
    lab = lab_factory(nodes=3)
    socket_path = Path(lab.status()["lb"]["socket"])
    traffic = stop_node_under_traffic(lab, "node1")
    statuses = {status for status, _ in traffic.errors()}
    # 503 from the stopping node itself; 0: a connection it closed as it exited.
    assert 503 in statuses and statuses <= {0, 503}, traffic.errors()
    wait_until(lambda: balancer.haproxy_server_states(socket_path)["node1"] == "DOWN", 5, "node1 DOWN in HAProxy")
    tail = Counter(httpx.get(f"{lab.lb_url}/", timeout=5).headers["x-confluence-node"] for _ in range(9))
    assert set(tail) == {"node2", "node3"}
    lab.start_node("node1")
    lab.wait_for_state("node1", "ACTIVE")
    wait_until(lambda: balancer.haproxy_server_states(socket_path)["node1"] == "UP", 5, "node1 UP in HAProxy")


def test_haproxy_keeps_every_request_when_the_node_is_taken_out_first(lab_factory: Callable[..., LabHandle]) -> None:
    lab = lab_factory(nodes=2)
    socket_path = Path(lab.status()["lb"]["socket"])
    balancer.set_haproxy_server_state(socket_path, "node1", "maint")
    traffic = stop_node_under_traffic(lab, "node1")
    assert traffic.errors() == []
    assert set(traffic.served_by()) == {"node2"}


def test_haproxy_with_lb_retries_hides_a_stop(lab_factory: Callable[..., LabHandle]) -> None:
    lab = lab_factory(nodes=3, lb_retries=True)
    assert "option redispatch" in lab.record.balancer.config.read_text()  # type: ignore[union-attr]
    traffic = stop_node_under_traffic(lab, "node1")
    assert traffic.errors() == []
    assert set(traffic.served_by()) == {"node1", "node2", "node3"}


def test_haproxy_drain_and_maint_take_a_node_out_of_rotation(lab_factory: Callable[..., LabHandle]) -> None:
    lab = lab_factory(nodes=2)
    socket_path = Path(lab.status()["lb"]["socket"])
    balancer.set_haproxy_server_state(socket_path, "node1", "drain")
    assert balancer.haproxy_server_states(socket_path)["node1"] == "DRAIN"
    balancer.set_haproxy_server_state(socket_path, "node1", "maint")
    assert balancer.haproxy_server_states(socket_path)["node1"] == "MAINT"
    assert {httpx.get(f"{lab.lb_url}/", timeout=5).headers["x-confluence-node"] for _ in range(6)} == {"node2"}
    with pytest.raises(balancer.LabError, match="No such server"):
        balancer.set_haproxy_server_state(socket_path, "node9", "maint")
    balancer.set_haproxy_server_state(socket_path, "node1", "ready")
    assert balancer.haproxy_server_states(socket_path)["node1"] == "UP"


def test_nginx_passes_a_stopping_nodes_503_on_unless_told_to_retry(lab_factory: Callable[..., LabHandle]) -> None:
    lab = lab_factory(nodes=2, lb="nginx", db="postgresql")
    status = lab.status()
    assert status["lb"] == {"kind": "nginx", "url": lab.lb_url, "socket": None}
    assert httpx.get(f"{lab.lb_url}/", timeout=5).status_code == 200
    traffic = stop_node_under_traffic(lab)  # nginx hashes the session cookie: the node this client is on
    statuses = {status for status, _ in traffic.errors()}
    assert 503 in statuses and statuses <= {0, 502, 503}, traffic.errors()
    forgiving = lab_factory(nodes=2, lb="nginx", lb_retries=True)
    traffic = stop_node_under_traffic(forgiving)
    assert traffic.errors() == []
    assert set(traffic.served_by()) == {"node1", "node2"}, "the stopped node's requests went to the other"


def test_apache_balances_keeps_a_session_on_its_node_and_shows_its_workers(
    lab_factory: Callable[..., LabHandle],
) -> None:
    lab = lab_factory(nodes=2, lb="apache")
    answers = [httpx.get(f"{lab.lb_url}/", timeout=5) for _ in range(6)]
    assert {a.headers["x-confluence-node"] for a in answers} == {"node1", "node2"}
    with httpx.Client(timeout=5) as user:
        first = user.get(f"{lab.lb_url}/")
        assert "ROUTEID" in user.cookies
        assert {user.get(f"{lab.lb_url}/").headers["x-confluence-node"] for _ in range(6)} == {
            first.headers["x-confluence-node"]
        }
    manager = httpx.get(f"{lab.lb_url}/balancer-manager", params={"xml": "1"}, timeout=5,
                        headers={"Referer": f"{lab.lb_url}/balancer-manager"})  # fmt: skip
    assert manager.status_code == 200 and "balancer://confluence" in manager.text
    assert "route=node1" in lab.inventory.read_text() or "lb_server: node1" in lab.inventory.read_text()


def test_without_a_load_balancer_the_inventory_points_at_node1(lab_factory: Callable[..., LabHandle]) -> None:
    lab = lab_factory(nodes=1, lb="none")
    status = lab.status()
    assert status["lb"] == {"kind": "none", "url": None, "socket": None}
    assert lab.lb_url == status["nodes"][0]["url"]
    assert f"api_url: {status['nodes'][0]['url']}" in lab.inventory.read_text()


def test_haproxy_keeps_maint_across_a_reload_once_the_state_is_saved(lab_factory: Callable[..., LabHandle]) -> None:
    lab = lab_factory(nodes=2)
    lb = lab.record.balancer
    assert lb is not None and lb.socket is not None
    balancer.set_haproxy_server_state(lb.socket, "node2", "maint")
    balancer.save_haproxy_state(lb)
    old_pid = lb.pid()
    subprocess.run(["haproxy", "-D", "-q", "-f", str(lb.config), "-sf", str(old_pid)], check=True)
    wait_until(lambda: lb.pid() not in (None, old_pid), 5, "the new HAProxy to take over")
    assert balancer.haproxy_server_states(lb.socket)["node2"] == "MAINT"
