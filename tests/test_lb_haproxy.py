"""The HAProxy adapter against a real HAProxy in front of real backends; routing is judged by the backends' hits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lbkit import Pool, Running, haproxy, held_request, send, workdir

from confluo.loadbalancer.base import AdminState, ChangeNotApplied, LoadBalancerError, wait_until_idle
from confluo.loadbalancer.haproxy import HAProxy, LocalSocket, SocatOverTransport, state_file_warnings
from confluo.loadbalancer.haproxy_grow import GrowableHAProxy
from confluo.loadbalancer.host_files import HostFiles
from confluo.transport.local import LocalTransport
from confluo.waits import SYSTEM_CLOCK, Deadline, poll


@pytest.fixture
def lb(pool: Pool) -> Iterator[Running]:
    with workdir() as directory, haproxy(directory, pool) as running:
        yield running


def adapter(lb: Running) -> HAProxy:
    return HAProxy(LocalSocket(lb.extra["socket"]), "app", config_path=lb.extra["config"])


def wait_healthy(haproxy_lb: HAProxy, server: str) -> None:
    poll(lambda: haproxy_lb.state(server), until=lambda s: bool(s.healthy), deadline=Deadline.after(SYSTEM_CLOCK, 10))


def routed(pool: Pool, lb: Running, count: int = 15) -> dict[str, int]:
    pool.reset()
    send(lb.url, count)
    return pool.hits()


def test_drain_maint_and_ready_change_where_requests_go(pool: Pool, lb: Running) -> None:
    haproxy_lb = adapter(lb)
    for server in ("n1", "n2", "n3"):
        wait_healthy(haproxy_lb, server)
    assert all(hits > 0 for hits in routed(pool, lb).values())

    haproxy_lb.drain("n2")
    state = haproxy_lb.state("n2")
    assert (state.admin, state.healthy, state.detail) == (AdminState.DRAIN, True, "DRAIN")
    hits = routed(pool, lb)
    assert hits["n2"] == 0 and hits["n1"] > 0 and hits["n3"] > 0

    haproxy_lb.maint("n2")
    state = haproxy_lb.state("n2")
    assert (state.admin, state.healthy) == (AdminState.MAINT, None), "no checks in maintenance: health unknown"
    assert routed(pool, lb)["n2"] == 0

    haproxy_lb.ready("n2")
    assert haproxy_lb.state("n2").admin is AdminState.READY
    wait_healthy(haproxy_lb, "n2")  # maint stopped the checks; the first passing one brings it UP
    assert routed(pool, lb)["n2"] > 0


def test_the_same_through_a_transport_and_socat(pool: Pool, lb: Running) -> None:
    channel = SocatOverTransport(LocalTransport("lb1"), lb.extra["socket"])
    haproxy_lb = HAProxy(channel, "app", config_path=lb.extra["config"])
    haproxy_lb.maint("n1")
    assert haproxy_lb.state("n1").admin is AdminState.MAINT
    assert routed(pool, lb)["n1"] == 0
    assert haproxy_lb.warnings() == ()  # the test's configuration keeps states across reloads
    line = haproxy_lb.describe("n1", AdminState.DRAIN)
    assert line.startswith("echo 'set server app/n1 state drain' | socat stdio unix-connect:")
    haproxy_lb.ready("n1")
    assert haproxy_lb.state("n1").admin is AdminState.READY


def test_unknown_server_backend_or_socket_is_a_clear_error(lb: Running) -> None:
    with pytest.raises(LoadBalancerError, match=r"backend 'app' has no server 'n9' \(its servers: n1, n2, n3\)"):
        adapter(lb).drain("n9")
    with pytest.raises(LoadBalancerError, match="no backend 'nope'"):
        HAProxy(LocalSocket(lb.extra["socket"]), "nope").state("n1")
    with pytest.raises(LoadBalancerError, match=r"unix:/nonexistent.sock: cannot use the runtime API"):
        HAProxy(LocalSocket("/nonexistent.sock"), "app").state("n1")
    with pytest.raises(LoadBalancerError, match="invalid HAProxy server name"):
        adapter(lb).drain("n1; set server app/n2 state maint")


def test_a_socket_without_admin_level_refuses_and_nothing_changes(pool: Pool) -> None:
    with workdir() as directory, haproxy(directory, pool, level="user") as running:
        with pytest.raises(LoadBalancerError, match="HAProxy refused `set server app/n1 state drain`: Permission"):
            adapter(running).drain("n1")
        assert routed(pool, running)["n1"] > 0


def test_a_change_that_does_not_take_effect_is_detected(pool: Pool) -> None:
    """n3 tracks n1: while n1 is in maintenance, n3 inherits it and `ready` on n3 is accepted but changes nothing."""
    with workdir() as directory, haproxy(directory, pool, track={"n3": "n1"}) as running:
        haproxy_lb = adapter(running)
        haproxy_lb.maint("n1")
        assert haproxy_lb.state("n3").admin is AdminState.MAINT
        with pytest.raises(ChangeNotApplied, match=r"server n3 is maint \(MAINT \(via app/n1\)\).*expected ready"):
            haproxy_lb.ready("n3")
        assert routed(pool, running)["n3"] == 0


def test_sessions_are_counted_while_a_drained_server_finishes(pool: Pool, lb: Running) -> None:
    haproxy_lb = adapter(lb)
    for server in ("n1", "n2", "n3"):
        wait_healthy(haproxy_lb, server)
    with held_request(pool, lb) as holder:
        haproxy_lb.drain(holder)
        assert haproxy_lb.state(holder).sessions == 1
        assert routed(pool, lb, 12)[holder] == 0
        with pytest.raises(Exception, match="not reached"):
            wait_until_idle(haproxy_lb, holder, Deadline.after(SYSTEM_CLOCK, 0.3), interval=0.1)
        pool[holder].release.set()
        idle = wait_until_idle(haproxy_lb, holder, Deadline.after(SYSTEM_CLOCK, 10), interval=0.05)
        assert (idle.sessions, idle.admin) == (0, AdminState.DRAIN)


def test_weight_is_set_read_back_and_ramped(pool: Pool, lb: Running) -> None:
    class CountingClock:
        def __init__(self) -> None:
            self.pauses: list[float] = []

        def monotonic(self) -> float:
            return 0.0

        def sleep(self, seconds: float) -> None:
            self.pauses.append(seconds)

    clock = CountingClock()
    haproxy_lb = HAProxy(LocalSocket(lb.extra["socket"]), "app", clock=clock)
    haproxy_lb.weight("n1", 0)
    assert routed(pool, lb)["n1"] == 0  # weight 0: HAProxy sends it nothing, though it stays ready
    haproxy_lb.ramp("n1", (25, 100), pause=3.0)
    assert clock.pauses == [3.0]
    assert routed(pool, lb)["n1"] > 0
    with pytest.raises(ValueError, match=r"0\.\.100"):
        haproxy_lb.weight("n1", 150)


def test_a_configuration_without_server_state_file_gets_a_warning(pool: Pool) -> None:
    with workdir() as directory, haproxy(directory, pool, state_file=False) as running:
        (warning,) = adapter(running).warnings()
        assert "no server-state-file" in warning and "reload" in warning
    assert HAProxy(LocalSocket("/x.sock"), "app").warnings()[0].endswith("(server-state-file)")
    commented = "global\n  # server-state-file /x\ndefaults\n  load-server-state-from-file global\n"
    assert len(state_file_warnings(commented, "h.cfg")) == 1
    agent = "global\n server-state-file /x\ndefaults\n load-server-state-from-file local\n server a b agent-check\n"
    (only,) = state_file_warnings(agent, "h.cfg")
    assert "agent-check" in only


def growable(lb: Running, **commands: list[str]) -> GrowableHAProxy:
    return GrowableHAProxy(
        LocalSocket(lb.extra["socket"]), "app", config_path=lb.extra["config"],
        files=HostFiles(LocalTransport("lb1"), sudo=False, where="lb1"), addresses={"n4": "127.0.0.1:9"},
        test_command=commands.get("test", ["haproxy", "-c", "-q", "-f", lb.extra["config"]]),
        reload_command=commands.get("reload", ["true"]), reload_seconds=1.0,
    )  # fmt: skip


def test_a_server_addition_that_is_refused_or_not_reloaded_leaves_the_configuration_as_it_was(
    pool: Pool, lb: Running
) -> None:
    config = Path(lb.extra["config"])
    before = config.read_text()
    with pytest.raises(LoadBalancerError, match="refused the configuration"):
        growable(lb, test=["false"]).add_server("n4", like="n1")
    assert config.read_text() == before
    with pytest.raises(LoadBalancerError, match=r"exited 1"):
        growable(lb, reload=["false"]).add_server("n4", like="n1")
    assert config.read_text() == before
    with pytest.raises(ChangeNotApplied, match="does not list server app/n4 1 s after `true`"):
        growable(lb).add_server("n4", like="n1")  # a reload command that reloads nothing
    assert config.read_text() == before and sorted(p.name for p in config.parent.glob("*.confluo-*")) == []
    assert routed(pool, lb)["n1"] > 0, "HAProxy serves on, untouched"
