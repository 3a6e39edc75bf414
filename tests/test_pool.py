"""The load balancer in the upgrade, with the typed fakes: drain, the wait for sessions, maint, ready and UP
around every node; halt at the drain deadline; a change that does not take effect; the preflight; a rollback;
reconciliation of a node an interrupted run left out; the capacity guard."""

from __future__ import annotations

import io
import json
from typing import Any

from click.testing import CliRunner
from fakes import SOURCE, TARGET, FakeLoadBalancer, FakeSite

from confluo.api.base import ClusterInfo, ClusterState, NodeInfo, NodeState, StatusState
from confluo.cli.env import Env
from confluo.cli.main import cli
from confluo.errors import ExitCode
from confluo.inventory import load_inventory
from confluo.loadbalancer.base import AdminState
from confluo.plan.order import Pick, Snapshot, Wait, next_node


def confluo(site: FakeSite, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout (the events' stream included) and stderr."""
    stream = io.StringIO()
    env = Env(stdin_isatty=False, stdout_isatty=False, stdout=stream, ports=site.ports())
    result = CliRunner().invoke(cli, [*args, "-i", str(site.inventory)], obj=env)
    return result.exit_code, stream.getvalue() + result.stdout, result.stderr


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def steps_done(out: str) -> list[tuple[str, str]]:
    return [(e["node"], e["step"]) for e in events(out) if e["event"] == "phase_done" and e.get("node")]


def test_every_node_leaves_the_pool_before_its_stop_and_is_back_and_up_before_the_next(site: FakeSite) -> None:
    lb = site.with_balancer()
    code, out, err = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    assert set(site.versions().values()) == {TARGET}
    assert lb.out_of_pool() == set()
    done = [(node, step) for node, step in steps_done(out) if step in ("drain", "maint", "stop", "start", "ready")]
    order = list(dict.fromkeys(node for node, _ in done))
    assert sorted(order) == ["node1", "node2", "node3"]
    # One node at a time, each: drain, maint, stop, start, ready, before the next node's drain.
    assert done == [(node, step) for node in order for step in ("drain", "maint", "stop", "start", "ready")]
    assert lb.changes == [(node, what) for node in order for what in ("drain", "maint", "ready")]


def test_the_plan_shows_the_load_balancer_steps_and_the_rollback_puts_the_node_back(site: FakeSite) -> None:
    site.with_balancer()
    code, out, _ = confluo(site, "plan")
    assert code == ExitCode.SUCCESS
    assert "load balancer (command): node1 ready UP, node2 ready UP, node3 ready UP" in out
    assert "-- node1: drain in load balancer\n   $ fakelb drain node1" in out
    assert "no sessions left on node1 in the load balancer" in out
    assert "$ fakelb maint node1" in out and "$ fakelb ready node1" in out
    rollback = next(
        line for line in out.splitlines() if line.startswith("-- node2: out of load balancer (") and "->" in line
    )
    assert rollback.endswith("back in load balancer (fakelb ready node2)")
    code, out, _ = confluo(site, "plan", "--json")
    plan = json.loads(out)
    assert plan["load_balancer"]["servers"]["node1"] == {"server": "node1", "admin": "ready", "healthy": True,
                                                         "sessions": 0}  # fmt: skip
    assert next(s["step"] for s in plan["rollback"]["node1"]) == "out of load balancer"


def test_without_a_load_balancer_there_is_no_pool_step(site: FakeSite) -> None:
    code, out, _ = confluo(site, "plan")
    assert code == ExitCode.SUCCESS and "load balancer" not in out


def test_the_drain_waits_for_the_sessions_to_leave(site: FakeSite) -> None:
    lb = site.with_balancer()
    lb.sessions, lb.leave_seconds = {"node1": 3, "node2": 3, "node3": 3}, 20.0
    before = site.clock.monotonic()
    code, out, err = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    waits = [e["message"] for e in events(out) if e["event"] == "waiting" and "drained" in e["message"]]
    assert any("3 sessions in the load balancer" in w for w in waits)
    assert site.clock.monotonic() - before >= 3 * 20.0


def test_users_still_on_a_drained_node_at_the_deadline_halt_the_run_before_its_stop(site: FakeSite) -> None:
    lb = site.with_balancer(drain_seconds=30)
    site.users = {"node1": 2, "node2": 2, "node3": 2}
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES
    assert "still 2 active users in the cluster 30 s after the drain" in err
    assert "confluo lb ready node1" in err and "on_drain_timeout: continue" in err
    assert set(site.versions().values()) == {SOURCE}, "nobody was stopped"
    assert lb.admin == {"node1": AdminState.DRAIN}, "the node stays drained and serving, as the message says"


def test_on_drain_timeout_continue_goes_on_and_says_so(site: FakeSite) -> None:
    site.with_balancer(drain_seconds=5, on_drain_timeout="continue")
    site.users = {"node1": 1}
    code, out, err = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    assert any("drain deadline passed with 1 active user" in e["message"] for e in events(out))


def test_a_change_the_load_balancer_does_not_take_halts_before_the_node_stops(site: FakeSite) -> None:
    lb = site.with_balancer()
    lb.deaf = {"node1", "node2", "node3"}
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES
    assert "is ready (ready UP) after the change, expected drain" in err
    assert set(site.versions().values()) == {SOURCE}


def test_an_unreachable_load_balancer_is_refused_before_anything_changes(site: FakeSite) -> None:
    lb = site.with_balancer()
    lb.unreachable = True
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.REFUSED
    assert "node1: the command load balancer: fake load balancer: connection refused" in err
    assert site.api.calls == [] and lb.changes == []


def test_a_node_unknown_to_the_load_balancer_is_refused(site: FakeSite) -> None:
    site.with_balancer()
    document_nodes = load_inventory(site.inventory).nodes
    assert document_nodes[1].balancer_server == "node2"
    text = site.inventory.read_text().replace("name: node2\n", "lb_server: web2\n  name: node2\n")
    site.inventory.write_text(text)
    code, _, err = confluo(site, "plan")
    assert code == ExitCode.REFUSED and "no server 'web2'" in err


def test_a_node_that_fails_is_rolled_back_and_put_back_in_the_pool(site: FakeSite) -> None:
    lb = site.with_balancer()
    site.fail_start("node1")
    code, _, err = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.ROLLED_BACK, err
    assert site.versions()["node1"] == SOURCE
    assert lb.out_of_pool() == set()
    assert lb.changes[-1] == ("node1", "ready")


def test_a_node_left_out_of_the_pool_by_an_interrupted_run_is_put_back_first(site: FakeSite) -> None:
    lb = site.with_balancer()
    lb.admin = {"node2": AdminState.MAINT}
    code, out, _ = confluo(site, "plan")
    assert "== load balancer: nodes an earlier run left out of the pool\n-- node2: back in load balancer" in out
    code, out, err = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, err
    assert lb.changes[0] == ("node2", "ready")
    assert lb.out_of_pool() == set()


def test_a_stopped_node_left_out_is_not_put_back_until_it_serves(site: FakeSite) -> None:
    lb = site.with_balancer()
    lb.admin = {"node2": AdminState.MAINT}
    site.host("node2").kill()
    code, out, _ = confluo(site, "plan")
    assert code == ExitCode.SUCCESS, out
    assert "earlier run left out" not in out


def _cluster(*states: NodeState) -> ClusterInfo:
    nodes = tuple(
        NodeInfo(f"id{i}", f"node{i}", f"10.0.0.{i}", state, SOURCE, "1", 0, 0) for i, state in enumerate(states, 1)
    )
    return ClusterInfo(ClusterState.READY_TO_UPGRADE, True, SOURCE, False, nodes)


def test_the_capacity_guard_counts_a_node_as_serving_only_when_the_load_balancer_sends_it_traffic(
    site: FakeSite,
) -> None:
    nodes = load_inventory(site.inventory).nodes
    running = {node.name: StatusState.RUNNING for node in nodes}
    cluster = _cluster(NodeState.ACTIVE, NodeState.ACTIVE, NodeState.ACTIVE)
    everyone = {"node1": True, "node2": True, "node3": True}
    assert next_node(nodes[:1], nodes, Snapshot(cluster, running, everyone)) == Pick("node1")
    out_of_pool = Snapshot(cluster, running, {**everyone, "node2": False})
    assert next_node(nodes[:1], nodes, out_of_pool) == Wait("node1", ("node2",))
    # A node out of the pool serves nobody: taking it first costs no capacity.
    assert next_node(nodes[1:2], nodes, out_of_pool) == Pick("node2")


def test_fake_load_balancer_reads_health_from_the_host(site: FakeSite) -> None:
    lb = FakeLoadBalancer(site)
    assert lb.state("node1").healthy is True
    site.host("node1").kill()
    assert lb.state("node1").healthy is False


def test_lb_status_and_lb_ready_for_the_administrator(site: FakeSite) -> None:
    lb = site.with_balancer()
    lb.admin = {"node2": AdminState.MAINT}
    code, out, _ = confluo(site, "lb", "status", "--json")
    assert code == ExitCode.SUCCESS
    report = json.loads(out)
    assert [(n["name"], n["shown"]) for n in report["nodes"]] == [
        ("node1", "ready UP"), ("node2", "maint UP"), ("node3", "ready UP"),
    ]  # fmt: skip
    code, out, _ = confluo(site, "status", "--json")
    assert {row["name"]: row["lb"] for row in json.loads(out)["nodes"]}["node2"] == "maint UP"
    site.host("node2").kill()
    code, _, err = confluo(site, "lb", "ready", "node2")
    assert code == ExitCode.REFUSED and "not RUNNING" in err and lb.admin["node2"] is AdminState.MAINT
    site.start_all()
    code, out, _ = confluo(site, "lb", "ready", "node2")
    assert code == ExitCode.SUCCESS and "node2: ready UP in the load balancer" in out, err
    code, _, err = confluo(site, "lb", "ready", "node9")
    assert code == ExitCode.REFUSED and "no node 'node9'" in err


def test_lb_commands_without_a_load_balancer_say_so(site: FakeSite) -> None:
    code, _, err = confluo(site, "lb", "status")
    assert code == ExitCode.REFUSED and "has no load_balancer section" in err
