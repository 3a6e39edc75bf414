"""Proof with real load balancers: a full `confluo upgrade` of a lab behind HAProxy, nginx and Apache, configured
as production is (no retry on another server), under ~20 requests/s of logged-in users reading and creating pages,
loses no request, because confluo takes each node out of the pool first. And a node an interrupted run left in
maintenance is put back by the next run."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from labkit import LabHandle
from loadkit import Load
from test_upgrade import NEXT, confluo

from confluo.lab import balancer

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("kind", ["haproxy", "nginx", "apache"])
def test_a_full_upgrade_under_load_loses_no_request(lab_factory: Callable[..., LabHandle], kind: str) -> None:
    lab = lab_factory(nodes=3, lb=kind)
    _, user, password = lab.api
    with Load(lab.lb_url, (user, password), users=4, rps=20) as load:
        result = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", NEXT)] * 3
    assert load.sent > 100, load.sent
    assert load.failed == 0, load.errors


def test_a_node_left_in_maintenance_is_put_back_by_the_next_run(lab_factory: Callable[..., LabHandle]) -> None:
    lab = lab_factory(nodes=2)
    socket_path = lab.record.balancer.socket  # type: ignore[union-attr]
    assert socket_path is not None
    balancer.set_haproxy_server_state(socket_path, "node2", "maint")  # as an interrupted run leaves it
    status = confluo("lb", "status", "-i", str(lab.inventory))
    assert "node2 (server node2): maint" in status.stdout, status.stdout + status.stderr
    plan = confluo("plan", "-i", str(lab.inventory), "--to", NEXT)
    assert "earlier run left out of the pool\n-- node2: back in load balancer" in plan.stdout
    result = confluo("upgrade", "-i", str(lab.inventory), "--to", NEXT, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert balancer.haproxy_server_states(socket_path) == {"node1": "UP", "node2": "UP"}


def test_the_preflight_refuses_a_load_balancer_that_is_down(lab_factory: Callable[..., LabHandle]) -> None:
    lab = lab_factory(nodes=2, lb="nginx")
    text = lab.inventory.read_text().replace("lb_server: 127.0", "lb_server: 127.9")
    lab.inventory.write_text(text)
    result = confluo("plan", "-i", str(lab.inventory), "--to", NEXT)
    assert result.returncode == 3 and "the nginx load balancer" in result.stderr, result.stderr
