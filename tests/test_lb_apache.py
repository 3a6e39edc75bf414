"""The Apache adapter against a real httpd with mod_proxy_balancer and its balancer-manager."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from lbkit import Pool, Running, apache, held_request, send, workdir

from confluo.loadbalancer.apache import ApacheBalancer, shown
from confluo.loadbalancer.base import AdminState, ChangeNotApplied, LoadBalancerError
from confluo.waits import SYSTEM_CLOCK, Deadline, poll


@pytest.fixture
def lb(pool: Pool) -> Iterator[Running]:
    with workdir() as directory, apache(directory, pool) as running:
        yield running


@pytest.fixture
def manager(lb: Running) -> Iterator[ApacheBalancer]:
    adapter = ApacheBalancer(lb.url + "/balancer-manager", "confluence")
    try:
        yield adapter
    finally:
        adapter.close()


def routed(pool: Pool, lb: Running, count: int = 15) -> dict[str, int]:
    pool.reset()
    send(lb.url, count)
    return pool.hits()


def test_drain_maint_and_ready_change_where_requests_go(pool: Pool, lb: Running, manager: ApacheBalancer) -> None:
    assert all(hits > 0 for hits in routed(pool, lb).values())

    manager.drain("n2")  # by route
    state = manager.state("n2")
    assert (state.admin, state.healthy, state.detail) == (AdminState.DRAIN, True, "Init Drn Ok")
    hits = routed(pool, lb)
    assert hits["n2"] == 0 and hits["n1"] > 0 and hits["n3"] > 0

    manager.maint(f"http://{pool['n2'].address}")  # by worker URL
    assert manager.state("n2").admin is AdminState.MAINT
    assert routed(pool, lb)["n2"] == 0

    manager.ready("n2")
    assert manager.state("n2").detail == "Init Ok"
    assert routed(pool, lb)["n2"] > 0


def test_the_nonce_and_the_referer_are_what_make_a_change(
    pool: Pool, lb: Running, manager: ApacheBalancer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = lb.url + "/balancer-manager"
    form = {"b": "confluence", "w": f"http://{pool['n1'].address}", "w_status_D": "1"}
    # Both answered 200 and both ignored: a wrong nonce, and the right nonce from another site (no Referer).
    assert httpx.post(url, data={**form, "nonce": "wrong"}, headers={"Referer": url}).status_code == 200
    nonce = manager._read().nonce
    assert httpx.post(url, data={**form, "nonce": nonce}).status_code == 200
    assert manager.state("n1").admin is AdminState.READY

    # A nonce gone stale between reading and posting (Apache restarted): the POST is ignored, the read-back says so.
    real_read = manager._read
    first = iter([replace(real_read(), nonce="stale")])
    monkeypatch.setattr(manager, "_read", lambda: next(first, None) or real_read())
    with pytest.raises(ChangeNotApplied, match=r"server n1 is ready \(Init Ok\) after the change, expected maint"):
        manager.maint("n1")
    assert routed(pool, lb)["n1"] > 0
    assert "nonce=NONCE" in manager.describe("n1", AdminState.MAINT)

    monkeypatch.undo()
    manager.client.headers.pop("Referer")
    with pytest.raises(LoadBalancerError, match=r"not the manager's XML .*without a Referer"):
        manager.state("n1")


def test_busy_requests_are_counted_on_a_drained_worker(pool: Pool, lb: Running, manager: ApacheBalancer) -> None:
    with held_request(pool, lb) as holder:
        manager.drain(holder)
        assert manager.state(holder).sessions == 1
        assert routed(pool, lb, 9)[holder] == 0
        pool[holder].release.set()
        poll(
            lambda: manager.state(holder).sessions,
            until=lambda busy: busy == 0,
            deadline=Deadline.after(SYSTEM_CLOCK, 10),
            interval=0.05,
        )


def test_unknown_worker_or_balancer_is_a_clear_error(lb: Running, manager: ApacheBalancer) -> None:
    with pytest.raises(LoadBalancerError, match=r"no worker with URL or route 'n9' \(its workers: http://"):
        manager.drain("n9")
    other = ApacheBalancer(lb.url + "/balancer-manager", "nope")
    with pytest.raises(LoadBalancerError, match="the manager has no balancer://nope"):
        other.state("n1")
    other.close()


def test_restarts_that_would_undo_changes_are_warned_about(manager: ApacheBalancer) -> None:
    (warning,) = manager.warnings()
    assert "not persisted" in warning


def test_credentials_never_reach_a_message() -> None:
    assert shown("https://admin:s3cret@lb.example.com:8443/balancer-manager") == (
        "https://lb.example.com:8443/balancer-manager"
    )
    unreachable = ApacheBalancer("http://admin:s3cret@127.0.0.1:9/balancer-manager", "confluence", timeout=2)
    with pytest.raises(LoadBalancerError) as caught:
        unreachable.state("n1")
    unreachable.close()
    assert "s3cret" not in caught.value.message and "admin" not in caught.value.message


def test_a_balancer_without_stickysession_is_warned_about(pool: Pool) -> None:
    with workdir() as directory, apache(directory, pool, sticky=False) as running:
        manager = ApacheBalancer(running.url + "/balancer-manager", "confluence")
        warnings = manager.warnings()
        manager.close()
    assert len(warnings) == 2 and "balancer://confluence has no stickysession: Confluence needs sticky" in warnings[1]
