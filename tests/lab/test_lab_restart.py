"""`confluo restart` against a 3-node lab behind the real HAProxy, configured as production is (no retry of a failed
request on another server), under logged-in users reading and creating pages: every node is restarted, least busy
first, each drained and out of the pool before it stops and back only once ACTIVE; a poller of HAProxy's own
server states sees the pool dip to N-1 and never lower, and no request fails. `--node` restarts that node alone."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from labkit import LabHandle
from loadkit import Load
from test_upgrade import confluo

from confluo.lab import balancer, model

pytestmark = pytest.mark.lab

SERVING = "UP"  # neither DRAIN, MAINT nor DOWN: HAProxy sends it new requests


class PoolWatch:
    """Samples HAProxy's server states every 50 ms from another thread: the fewest servers in the pool, and
    the most out of it at once."""

    def __init__(self, read: Callable[[], dict[str, str]]) -> None:
        self._read = read
        self._stop = threading.Event()
        self.samples: list[dict[str, str]] = []

    def run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(self._read())

    def stop(self) -> None:
        self._stop.set()

    @property
    def fewest_serving(self) -> int:
        return min(sum(state == SERVING for state in sample.values()) for sample in self.samples)


@contextmanager
def watched_pool(lab: LabHandle) -> Iterator[PoolWatch]:
    socket_path = lab.record.balancer.socket  # type: ignore[union-attr]
    assert socket_path is not None
    watch = PoolWatch(lambda: balancer.haproxy_server_states(socket_path))
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch.stop()
        thread.join(5)


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _pids(lab: LabHandle) -> dict[str, int]:
    return {node["name"]: node["pid"] for node in lab.status()["nodes"]}


def _steps(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["node"], e["step"]) for e in events if e["event"] == "phase_done" and e.get("node")]


def test_a_rolling_restart_keeps_n_minus_1_in_the_pool_and_loses_no_request(
    lab_factory: Callable[..., LabHandle],
) -> None:
    lab = lab_factory(nodes=3, lb="haproxy")
    # Busy nodes go last: node2 is idle, node3 has a little work, node1 the most.
    lab.set("node1", tasks=4, users=9)
    lab.set("node3", tasks=1, users=2)
    before = _pids(lab)
    _, user, password = lab.api
    with Load(lab.lb_url, (user, password), users=4, rps=20) as load, watched_pool(lab) as pool:
        result = confluo("restart", "-i", str(lab.inventory), "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    steps = _steps(_events(result.stdout))
    order = list(dict.fromkeys(node for node, step in steps if step == "stop"))
    assert order == ["node2", "node3", "node1"], steps
    for node in order:
        mine = [step for name, step in steps if name == node and step in ("drain", "maint", "stop", "start", "ready")]
        assert mine == ["drain", "maint", "stop", "start", "ready"], (node, mine)
    after = _pids(lab)
    assert all(after[name] != before[name] for name in before), (before, after)
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", model.DEFAULT_VERSION)] * 3
    assert len(pool.samples) > 20
    assert pool.fewest_serving == 2, "the pool dipped to N-1 for each node, and never below"
    assert pool.samples[-1] == {"node1": SERVING, "node2": SERVING, "node3": SERVING}
    assert load.sent > 50 and load.failed == 0, load.errors


def test_restart_of_one_node_restarts_it_alone(lab_factory: Callable[..., LabHandle]) -> None:
    lab = lab_factory(nodes=3, lb="haproxy")
    before = _pids(lab)
    _, user, password = lab.api
    with Load(lab.lb_url, (user, password), users=2, rps=10) as load:
        result = confluo("restart", "-i", str(lab.inventory), "--node", "node2", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {node for node, _ in _steps(_events(result.stdout))} == {"node2"}
    after = _pids(lab)
    assert after["node2"] != before["node2"]
    assert {n: after[n] for n in ("node1", "node3")} == {n: before[n] for n in ("node1", "node3")}
    assert load.failed == 0, load.errors
