"""The load balancer in the ways back and in the runs that upgrade nothing, with the typed fakes: `confluo rollback`'s
plan drains each node before its stop and puts it back once it serves; cancel, finalize and an upgrade with
nothing left to do still put back a node an interrupted run left out of the pool; the summary's figures."""

from __future__ import annotations

import json

import pytest
import yaml
from fakes import SOURCE, TARGET, FakeSite
from test_pool import confluo, events

from confluo import app
from confluo.errors import ExitCode, RefusedError
from confluo.loadbalancer.base import AdminState


def _halt_on_failure(site: FakeSite) -> None:
    document = yaml.safe_load(site.inventory.read_text())
    document["on_failure"] = "halt"
    site.inventory.write_text(yaml.safe_dump(document))


def _half_upgraded(site: FakeSite) -> None:
    """node1 upgraded; node2 failed on the new release and left as it is (halt), out of the pool."""
    _halt_on_failure(site)
    site.fail_start("node2")
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES, err
    assert site.versions() == {"node1": TARGET, "node2": TARGET, "node3": SOURCE}
    site.failing.clear()


def test_a_rollback_drains_each_node_before_its_stop_and_puts_it_back_once_it_serves(site: FakeSite) -> None:
    lb = site.with_balancer()
    _half_upgraded(site)
    assert lb.out_of_pool() == {"node2"}, "halted: the failed node stays out of the pool"
    session = app.open_session(site.inventory, ports=site.ports())
    try:
        plan = app.rollback_plan(session, node=None)
        steps = [(work.node, step.name) for work in plan.rolling for step in work.steps]
        assert [name for node, name in steps if node == "node1"] == [
            "drain in load balancer", "out of load balancer", "stop", "repoint service", "start",
            "back in load balancer",
        ]  # fmt: skip
        lb.changes.clear()
        app.run_plan(session, plan)
    finally:
        session.close()
    assert set(site.versions().values()) == {SOURCE}
    assert lb.out_of_pool() == set()
    for node in ("node1", "node2"):
        assert [what for server, what in lb.changes if server == node][-1] == "ready"
    assert ("node1", "drain") in lb.changes and ("node3", "drain") not in lb.changes


def test_a_rollback_is_refused_while_the_load_balancer_cannot_be_reached(site: FakeSite) -> None:
    lb = site.with_balancer()
    _half_upgraded(site)
    lb.unreachable = True
    session = app.open_session(site.inventory, ports=site.ports())
    try:
        with pytest.raises(RefusedError) as refused:
            app.rollback_plan(session, node=None)
    finally:
        session.close()
    assert any("the command load balancer: fake load balancer: connection refused" in r for r in refused.value.reasons)


def test_an_upgrade_with_nothing_else_to_do_still_puts_a_node_back(site: FakeSite) -> None:
    lb = site.with_balancer()
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.SUCCESS, err
    lb.admin["node3"] = AdminState.MAINT  # as a run killed between node3's start and its ready leaves it
    code, out, err = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    assert lb.out_of_pool() == set() and lb.changes[-1] == ("node3", "ready")
    lb.changes.clear()
    code, out, _ = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.SUCCESS and "nothing to do" in out and lb.changes == []


def test_cancel_and_finalize_put_back_a_node_left_out_of_the_pool_first(site: FakeSite) -> None:
    lb = site.with_balancer()
    site.api.start_upgrade()  # upgrade mode on, as a run interrupted before any node was stopped leaves it
    lb.admin["node1"] = AdminState.DRAIN
    code, out, err = confluo(site, "cancel", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    assert lb.changes == [("node1", "ready")] and not site.api.upgrade_mode
    site.finalize_fails = True  # every node upgraded, then the upgrade tasks fail: all that is left is finalize
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES and set(site.versions().values()) == {TARGET}, err
    site.finalize_fails = False
    lb.changes.clear()
    lb.admin["node2"] = AdminState.MAINT
    code, out, err = confluo(site, "finalize", "--retry", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    assert lb.changes == [("node2", "ready")] and not site.api.upgrade_mode
    phases = [e.get("phase") for e in events(out) if e["event"] == "phase_done"]
    assert phases.index("load balancer") < phases.index("finalize")


def test_an_upgrade_that_only_runs_failed_upgrade_tasks_again_puts_a_node_back_first(site: FakeSite) -> None:
    lb = site.with_balancer()
    site.finalize_fails = True
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES and set(site.versions().values()) == {TARGET}, err
    site.finalize_fails = False
    lb.changes.clear()
    lb.admin["node3"] = AdminState.DRAIN  # left so by a run killed mid-way, or by hand
    code, out, err = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    assert lb.changes == [("node3", "ready")]
    phases = [e.get("phase") for e in events(out) if e["event"] == "phase_done"]
    assert phases.index("load balancer") < phases.index("finalize")


def test_the_summary_has_each_nodes_time_out_of_the_pool_and_its_drain(site: FakeSite) -> None:
    lb = site.with_balancer()
    lb.sessions, lb.leave_seconds = {"node1": 2, "node2": 2, "node3": 2}, 4.0
    code, out, err = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    summary = next(json.loads(line) for line in out.splitlines() if '"event":"summary"' in line)
    for node in ("node1", "node2", "node3"):
        assert summary["drain_seconds"][node] >= 4.0  # on the fake clock, as every step's seconds are
        # Events carry the wall clock: out of the pool from its drain to its ready, around its stop and start.
        assert summary["out_of_pool_seconds"][node] >= summary["out_of_service_seconds"][node] > 0


def test_what_could_undo_a_drain_is_told_in_the_plan_and_in_the_run(site: FakeSite) -> None:
    lb = site.with_balancer()
    lb.warned = ("a reload of HAProxy would put drained and maintenance servers back in the pool",)
    code, out, _ = confluo(site, "plan")
    assert code == ExitCode.SUCCESS
    assert "note: load balancer: a reload of HAProxy would put drained" in out
    code, out, err = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    notes = [e["message"] for e in events(out) if e["event"] == "note"]
    assert any("a reload of HAProxy would put drained" in note for note in notes)


def test_a_rolling_restart_takes_each_node_out_of_the_pool_and_puts_it_back(site: FakeSite) -> None:
    lb = site.with_balancer()
    lb.admin["node3"] = AdminState.MAINT  # left out by an interrupted run: put back before anything else
    code, out, err = confluo(site, "restart", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    done = [(e["node"], e["step"]) for e in events(out) if e["event"] == "phase_done" and e.get("node")]
    assert done[0] == ("node3", "ready")
    order = list(dict.fromkeys(node for node, step in done[1:]))
    assert done[1:] == [(node, step) for node in order for step in ("drain", "maint", "stop", "start", "ready")]
    assert sorted(order) == ["node1", "node2", "node3"] and lb.out_of_pool() == set()
