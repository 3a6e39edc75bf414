"""A node's life through the real start/stop scripts: /status, logs, pid file, stop timing, faults, crashes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from confluo.lab.node.cluster_state import cluster_view, pid_alive
from confluo.lab.node.clusterdb import set_fault, set_node_load, set_timings

from .conftest import PASSWORD, STOP_SECONDS, Cluster, Node, http, wait_for


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _stop_duration(cluster: Cluster, node: Node) -> float:
    """Seconds from stop-confluence.sh to the process being gone."""
    pid = cluster.pid(node)
    began = time.monotonic()
    cluster.stop(node)
    assert not pid_alive(pid)
    return time.monotonic() - began


def test_node_starts_then_runs_and_logs_like_confluence(cluster: Cluster) -> None:
    set_timings(cluster.db, start_seconds=1.0)
    node = cluster.add_node("node1")
    result = cluster.start(node)
    assert result.returncode == 0
    assert "Using CATALINA_PID:" in result.stdout and "Tomcat started." in result.stdout
    assert cluster.wait_status(node, "STARTING") == (503, '{"state":"STARTING"}')
    assert cluster.view_node(node)["state"] == "STARTING"
    assert cluster.wait_status(node, "RUNNING") == (200, '{"state":"RUNNING"}')
    row = cluster.view_node(node)
    assert row["state"] == "ACTIVE" and row["pid"] == cluster.pid(node) and row["problem"] is None
    assert "Confluence is ready to serve" in node.catalina_out()
    assert "Confluence is ready to serve" in node.home_log()
    assert "entireUpgradeFinished" not in node.home_log()  # a first start is no upgrade


def test_second_start_is_refused_while_the_node_runs(running: tuple[Cluster, Node, Node]) -> None:
    cluster, node, _ = running
    pid = cluster.pid(node)
    again = cluster.start(node)
    assert again.returncode == 1 and "Start aborted" in again.stdout
    assert cluster.pid(node) == pid and pid_alive(pid)


def test_stop_goes_through_stopping_then_offline_and_removes_the_pid_file(cluster: Cluster) -> None:
    set_timings(cluster.db, stop_seconds=1.0)
    node = cluster.add_node("node1")
    cluster.start(node)
    cluster.wait_status(node, "RUNNING")
    pid = cluster.pid(node)
    result = cluster.send_stop(node)
    assert result.returncode == 0 and "Stopping Confluence" in result.stdout
    assert cluster.wait_status(node, "STOPPING") == (503, '{"state":"STOPPING"}')
    assert cluster.view_node(node)["state"] == "TERMINATING"
    wait_for(lambda: not pid_alive(pid), 10, "the node to exit")
    assert not node.pid_file.exists()
    assert cluster.view_node(node)["state"] == "OFFLINE"
    assert cluster.status(node) is None  # nothing listens any more
    assert cluster.send_stop(node).returncode == 0  # stopping a stopped node is fine


def test_stop_waits_for_running_tasks(cluster: Cluster) -> None:
    set_timings(cluster.db, stop_seconds=0.1)
    node = cluster.add_node("node1")
    set_node_load(cluster.db, "node1", tasks=6, users=3)
    cluster.start(node)
    cluster.wait_status(node, "RUNNING")
    assert cluster.cluster(node)["nodes"][0]["tasksTotal"] == 6
    assert cluster.cluster(node)["nodes"][0]["activeUserCount"] == 3
    assert _stop_duration(cluster, node) >= 0.1 + 6 * 0.1


def test_fault_slow_stop_takes_ten_times_longer(cluster: Cluster) -> None:
    set_timings(cluster.db, stop_seconds=0.1)
    node = cluster.add_node("node1")
    cluster.start(node)
    cluster.wait_status(node, "RUNNING")
    set_fault(cluster.db, "node1", "slow-stop")
    assert _stop_duration(cluster, node) >= 10 * 0.1


def test_fault_hang_stop_stays_stopping(running: tuple[Cluster, Node, Node]) -> None:
    cluster, node, _ = running
    set_fault(cluster.db, "node1", "hang-stop")
    assert cluster.send_stop(node).returncode == 0
    cluster.wait_status(node, "STOPPING")
    pid = cluster.pid(node)
    cpu_before, wall_before = _cpu_seconds(pid), time.monotonic()
    time.sleep(max(STOP_SECONDS * 4, 1.0))
    assert cluster.status(node) == (503, '{"state":"STOPPING"}')
    assert pid_alive(pid) and cluster.view_node(node)["state"] == "TERMINATING"
    # Hanging is waiting, not spinning: a hung node must not eat a core of the lab machine.
    assert _cpu_seconds(pid) - cpu_before < 0.3 * (time.monotonic() - wall_before)


def test_fault_fail_start_gives_error_until_cleared(cluster: Cluster) -> None:
    node = cluster.add_node("node1")
    set_fault(cluster.db, "node1", "fail-start")
    cluster.start(node)
    assert cluster.wait_status(node, "ERROR") == (500, '{"state":"ERROR"}')
    row = cluster.view_node(node)
    assert row["state"] == "ERROR" and "fail-start" in row["problem"]
    assert "fail-start" in node.catalina_out() and "fail-start" in node.home_log()
    assert http("GET", node.url + "/rest/zdu/cluster").status == 500  # an ERROR node serves nothing
    cluster.stop(node)
    set_fault(cluster.db, "node1", None)
    cluster.start(node)
    cluster.wait_status(node, "RUNNING")
    assert cluster.view_node(node)["problem"] is None


def test_fault_hang_start_stays_starting(cluster: Cluster) -> None:
    node = cluster.add_node("node1")
    set_fault(cluster.db, "node1", "hang-start")
    cluster.start(node)
    cluster.wait_status(node, "STARTING")
    time.sleep(1.0)  # > start_seconds
    assert cluster.status(node) == (503, '{"state":"STARTING"}')
    assert cluster.view_node(node)["state"] == "STARTING"


def test_fault_api_500_breaks_only_the_rest_api(running: tuple[Cluster, Node, Node]) -> None:
    cluster, node, other = running
    set_fault(cluster.db, "node1", "api-500")
    assert http("GET", node.url + "/rest/zdu/cluster").status == 500
    assert http("GET", other.url + "/rest/zdu/cluster").status == 200
    assert cluster.status(node) == (200, '{"state":"RUNNING"}')
    set_fault(cluster.db, "node1", None)
    assert http("GET", node.url + "/rest/zdu/cluster").status == 200


def test_unknown_fault_is_rejected(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        set_fault(cluster.db, "node1", "meteor")


def test_a_killed_node_is_seen_offline(running: tuple[Cluster, Node, Node]) -> None:
    cluster, node, other = running
    pid = cluster.pid(node)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: cluster.view_node(node)["state"] == "OFFLINE", 6, "crash detection")
    listed = [n["name"] for n in cluster.cluster(other)["nodes"]]
    assert listed == ["node2"]  # upgrade mode off: OFFLINE nodes are not listed
    assert node.pid_file.exists()  # a crash leaves the pid file behind ...
    assert cluster.start(node).returncode == 0  # ... and the start script sees it is stale
    cluster.wait_status(node, "RUNNING")


def test_cluster_view_reports_nodes_for_lab_status(running: tuple[Cluster, Node, Node]) -> None:
    cluster, first, _ = running
    view = cluster_view(cluster.db)
    assert view["state"] == "STABLE" and view["upgrade_mode"] is False and view["version"] == "9.2.13"
    assert [n["name"] for n in view["nodes"]] == ["node1", "node2"]
    row = view["nodes"][0]
    assert set(row) >= {"id", "name", "address", "state", "version", "build_number", "tasks", "users", "pid", "problem"}
    assert row["address"] == first.address and row["state"] == "ACTIVE"
    assert PASSWORD not in cluster.db.read_bytes().decode("latin-1")  # only a salted hash is stored
