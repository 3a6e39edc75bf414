"""The next-node choice (a pure function of a snapshot) and the waits module on a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeClock
from test_plan_rules import cluster_node, inventory

from confluo.api.base import ClusterInfo, ClusterState, NodeState, StatusState
from confluo.plan.order import Pick, Snapshot, Wait, next_node
from confluo.waits import Deadline, TimedOut, poll, retry

RUNNING = StatusState.RUNNING


def snapshot(states: dict[int, NodeState], status: dict[int, StatusState], tasks: dict[int, int]) -> Snapshot:
    nodes = tuple(cluster_node(i, state=states.get(i, NodeState.ACTIVE), tasks=tasks.get(i, 0)) for i in (1, 2, 3))
    cluster = ClusterInfo(ClusterState.MIXED, True, "9.2.13", False, nodes)
    return Snapshot(cluster, {f"node{i}": status.get(i, RUNNING) for i in (1, 2, 3)})


CASES = [
    ("least busy first", {}, {}, {1: 5, 2: 1, 3: 3}, [1, 2, 3], Pick("node2")),
    ("a node serving nobody goes first", {3: NodeState.OFFLINE}, {3: StatusState.UNREACHABLE}, {}, [1, 2, 3],
     Pick("node3")),
    ("a crash the cluster has not noticed yet", {}, {2: StatusState.UNREACHABLE}, {2: 9}, [1, 2, 3], Pick("node2")),
    ("never two out at once", {1: NodeState.OFFLINE}, {}, {}, [2, 3], Wait("node2", ("node1",))),
    ("an ERROR node is not serving", {3: NodeState.ERROR}, {}, {}, [1, 2], Wait("node1", ("node3",))),
]  # fmt: skip


@pytest.mark.parametrize(("case", "states", "status", "tasks", "remaining", "expected"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_next_node(
    tmp_path: Path,
    case: str,
    states: dict[int, NodeState],
    status: dict[int, StatusState],
    tasks: dict[int, int],
    remaining: list[int],
    expected: Pick | Wait,
) -> None:
    nodes = inventory(tmp_path, nodes=3).nodes
    candidates = [n for n in nodes if int(n.name[-1]) in remaining]
    assert next_node(candidates, nodes, snapshot(states, status, tasks)) == expected


def test_without_the_cluster_api_no_node_is_taken_out(tmp_path: Path) -> None:
    nodes = inventory(tmp_path, nodes=2).nodes
    choice = next_node(nodes, nodes, Snapshot(None, {"node1": RUNNING, "node2": RUNNING}))
    assert choice == Wait("node1") and "cluster API does not answer" in choice.reason


def test_poll_returns_as_soon_as_the_state_is_reached() -> None:
    clock, seen = FakeClock(), iter(["STARTING", "STARTING", "RUNNING"])
    assert poll(lambda: next(seen), until=lambda s: s == "RUNNING", deadline=Deadline.after(clock, 60)) == "RUNNING"
    assert clock.slept == pytest.approx(0.2)


def test_poll_times_out_on_the_clock_it_is_given_with_the_last_observation() -> None:
    clock = FakeClock()
    with pytest.raises(TimedOut) as timed_out:
        poll(lambda: "STARTING", until=lambda s: s == "RUNNING", deadline=Deadline.after(clock, 3600))
    assert timed_out.value.last == "STARTING" and clock.slept >= 3600


def test_poll_gives_up_early_when_the_observer_says_so() -> None:
    def judge(state: str) -> None:
        raise ValueError(state)

    with pytest.raises(ValueError, match="ERROR"):
        poll(lambda: "ERROR", until=lambda s: s == "RUNNING", deadline=Deadline.after(FakeClock(), 60), on_wait=judge)


def test_retry_pauses_between_attempts_and_raises_the_last_failure() -> None:
    clock, attempts = FakeClock(), []

    def flaky() -> str:
        attempts.append(clock.now)
        if len(attempts) < 3:
            raise ConnectionError("lost")
        return "ok"

    assert retry(flaky, on=(ConnectionError,), pauses=(1, 2, 4), clock=clock) == "ok"
    assert clock.slept == 3
    with pytest.raises(ConnectionError):
        retry(lambda: (_ for _ in ()).throw(ConnectionError("down")), on=(ConnectionError,), pauses=(1,), clock=clock)
