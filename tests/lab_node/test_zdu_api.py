"""The ZDU REST API over real HTTP: authentication, resources, every transition, a whole rolling upgrade."""

from __future__ import annotations

import re
from typing import Any

import pytest

from confluo.lab.node.cluster_state import cluster_view
from confluo.lab.node.clusterdb import set_fault, set_timings
from confluo.lab.node.versions import build_number_for
from confluo.lab.node.zdu_api import zdu_transition

from .conftest import ADMIN, NEXT, PASSWORD, TOKEN, VERSION, Cluster, Node, wait_for

ACTIONS = ("start", "cancel", "approve", "retryUpgrade")


def _links(cluster_json: dict[str, Any]) -> set[str]:
    return {link["rel"] for link in cluster_json["links"]}


def _refused(cluster: Cluster, node: Node, *actions: str) -> None:
    """Each action answers 409 with an empty body and changes nothing."""
    before = cluster.cluster(node)["state"]
    for action in actions:
        reply = cluster.api(node, "POST", action)
        assert (reply.status, reply.body) == (409, b""), action
    assert cluster.cluster(node)["state"] == before


@pytest.mark.parametrize(
    ("auth", "token"),
    [
        (None, None),
        ((ADMIN, "wrong"), None),
        (("someone", PASSWORD), None),
        ((ADMIN, TOKEN), None),  # a personal access token is no Basic password
        (None, "not-the-token"),
    ],
)
def test_api_needs_the_sysadmin_or_the_token(
    running: tuple[Cluster, Node, Node], auth: tuple[str, str] | None, token: str | None
) -> None:
    cluster, node, _ = running
    for method, route in (("GET", "cluster"), ("GET", "state"), ("POST", "start")):
        assert cluster.api(node, method, route, auth=auth, token=token).status == 401
    assert cluster.cluster(node)["state"] == "STABLE"  # the refused start changed nothing


def test_bearer_token_works(running: tuple[Cluster, Node, Node]) -> None:
    cluster, node, _ = running
    reply = cluster.api(node, "GET", "cluster", auth=None, token=TOKEN)
    assert reply.status == 200 and reply.json()["state"] == "STABLE"


def test_cluster_resource_shape(running: tuple[Cluster, Node, Node]) -> None:
    cluster, first, second = running
    reply = cluster.api(second, "GET", "cluster")
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"upgradeModeEnabled", "hasFinalizationTasks", "state", "originalVersion", "nodes", "links"}
    assert (body["upgradeModeEnabled"], body["hasFinalizationTasks"], body["originalVersion"]) == (False, False, None)
    assert _links(body) == {"self", "start"}
    nodes = body["nodes"]
    assert [n["name"] for n in nodes] == ["node1", "node2"]
    assert [n["local"] for n in nodes] == [False, True]  # the answering node is node2
    assert nodes[0]["ipAddress"] == first.address and nodes[0]["portNumber"] == 8090
    assert set(nodes[0]) == {
        "id",
        "name",
        "ipAddress",
        "state",
        "tasksTotal",
        "activeUserCount",
        "buildNumber",
        "version",
        "local",
        "finalization",
        "links",
        "portNumber",
    }
    assert nodes[0]["buildNumber"] == str(build_number_for(VERSION)) and nodes[0]["version"] == VERSION
    assert re.fullmatch(r"[0-9a-f]{8}", nodes[0]["id"])
    assert nodes[0]["links"][0]["rel"] == "self" and nodes[0]["links"][0]["href"].endswith(nodes[0]["id"])


def test_state_node_and_alias_resources(running: tuple[Cluster, Node, Node]) -> None:
    cluster, first, second = running
    state = cluster.api(first, "GET", "state").json()
    assert state["state"] == "STABLE" and state["buildInfo"]["name"] == "node1" and state["buildInfo"]["local"]
    node_id = cluster.cluster(first)["nodes"][1]["id"]
    one = cluster.api(first, "GET", f"nodes/{node_id}")
    assert one.status == 200 and one.json()["name"] == "node2" and one.json()["local"] is False
    assert cluster.api(second, "GET", f"nodes/{node_id}").json()["local"] is True
    assert cluster.api(first, "GET", "nodes/deadbeef").status == 404
    # The path printed in Confluence's admin docs answers too.
    assert cluster.api(first, "GET", "cluster/zdu/state").json()["state"] == "STABLE"
    assert cluster.api(first, "GET", "cluster/zdu/").json()["state"] == "STABLE"
    assert cluster.api(first, "GET", "start").status == 405


def test_start_and_cancel(running: tuple[Cluster, Node, Node]) -> None:
    cluster, node, _ = running
    _refused(cluster, node, "cancel", "approve", "retryUpgrade")  # STABLE
    started = cluster.api(node, "POST", "start")
    assert started.status == 200
    body = started.json()
    assert (body["state"], body["upgradeModeEnabled"], body["originalVersion"]) == ("READY_TO_UPGRADE", True, VERSION)
    assert _links(body) == {"self", "cancel"}
    _refused(cluster, node, "start", "approve", "retryUpgrade")  # READY_TO_UPGRADE
    cancelled = cluster.api(node, "POST", "cancel")
    assert cancelled.status == 200 and cancelled.json()["state"] == "STABLE"
    assert cancelled.json()["upgradeModeEnabled"] is False


def test_rolling_upgrade_by_hand(running: tuple[Cluster, Node, Node]) -> None:
    cluster, first, second = running
    assert cluster.api(second, "POST", "start").status == 200

    # node1: stopped for its upgrade it stays listed, as OFFLINE; the cluster is still READY_TO_UPGRADE.
    cluster.stop(first)
    body = cluster.cluster(second)
    assert body["state"] == "READY_TO_UPGRADE"
    assert [(n["name"], n["state"]) for n in body["nodes"]] == [("node1", "OFFLINE"), ("node2", "ACTIVE")]

    # node1 on the new release, customized: MIXED while it starts and once it runs.
    cluster.install(first, NEXT)
    set_timings(cluster.db, start_seconds=1.0)  # long enough to look at the cluster while node1 starts
    assert cluster.start(first).returncode == 0
    cluster.wait_status(first, "STARTING")
    assert cluster.cluster(second)["state"] == "MIXED"
    cluster.wait_status(first, "RUNNING")
    set_timings(cluster.db, start_seconds=0.3)
    body = cluster.cluster(first)
    assert body["state"] == "MIXED" and body["hasFinalizationTasks"] is True and _links(body) == {"self"}
    assert {n["name"]: n["version"] for n in body["nodes"]} == {"node1": NEXT, "node2": VERSION}
    _refused(cluster, first, *ACTIONS)  # MIXED
    assert "entireUpgradeFinished Upgrade completed successfully" in first.home_log()
    assert f"<buildNumber>{build_number_for(NEXT)}</buildNumber>" in first.cfg_xml()
    assert f'"finalizedBuildNumber">{build_number_for(VERSION)}<' in first.cfg_xml()  # not before approve

    # node2: once it is down, only the new version runs.
    cluster.stop(second)
    assert cluster.cluster(first)["state"] == "READY_TO_RUN_UPGRADE_TASKS"
    cluster.install(second, NEXT)
    cluster.start(second)
    cluster.wait_status(second, "RUNNING")
    body = cluster.cluster(second)
    assert body["state"] == "READY_TO_RUN_UPGRADE_TASKS" and _links(body) == {"self", "approve"}
    _refused(cluster, second, "start", "cancel", "retryUpgrade")

    # approve: finalization tasks run on every node, then the cluster is STABLE on the new version.
    set_timings(cluster.db, finalize_seconds=1.5)  # long enough to look at RUNNING_UPGRADE_TASKS
    approved = cluster.api(second, "POST", "approve")
    assert approved.status == 200
    body = approved.json()
    assert body["state"] == "RUNNING_UPGRADE_TASKS" and body["upgradeModeEnabled"] is False
    assert {n["state"] for n in body["nodes"]} == {"RUNNING_FINALIZE_UPGRADE_TASKS"}
    assert all(n["finalization"]["errors"] == [] for n in body["nodes"])
    assert cluster.status(first) == (200, '{"state":"RUNNING"}')
    _refused(cluster, first, *ACTIONS)  # RUNNING_UPGRADE_TASKS
    wait_for(lambda: cluster.cluster(first)["state"] == "STABLE", 10, "STABLE after finalization")
    view = cluster_view(cluster.db)
    assert (view["version"], view["upgrade_mode"], view["original_version"]) == (NEXT, False, None)
    assert {n["state"] for n in view["nodes"]} == {"ACTIVE"}
    finalized = f'"finalizedBuildNumber">{build_number_for(NEXT)}<'
    wait_for(lambda: all(finalized in n.cfg_xml() for n in (first, second)), 5, "finalizedBuildNumber in the homes")


def test_failed_finalization_can_be_retried(cluster: Cluster) -> None:
    node = cluster.add_node("node1")
    cluster.start(node)
    cluster.wait_status(node, "RUNNING")
    assert cluster.api(node, "POST", "start").status == 200
    cluster.upgrade(node, NEXT)
    assert cluster.cluster(node)["state"] == "READY_TO_RUN_UPGRADE_TASKS"
    set_fault(cluster.db, "node1", "finalize-fail")
    assert cluster.api(node, "POST", "approve").status == 200
    wait_for(lambda: cluster.cluster(node)["state"] == "UPGRADE_TASKS_FAILED", 10, "failed finalization")
    body = cluster.cluster(node)
    assert body["hasFinalizationTasks"] is True and _links(body) == {"self", "retryUpgrade"}
    assert body["nodes"][0]["state"] == "UPGRADE_TASKS_FAILED"
    assert body["nodes"][0]["finalization"]["errors"][0]["exceptionMessage"] == "fault injected: finalize-fail"
    assert cluster_view(cluster.db)["version"] == VERSION  # not finalized
    _refused(cluster, node, "start", "cancel", "approve")  # UPGRADE_TASKS_FAILED
    set_fault(cluster.db, "node1", None)
    set_timings(cluster.db, finalize_seconds=1.0)
    retried = cluster.api(node, "POST", "retryUpgrade")
    assert retried.status == 200 and retried.json()["state"] == "RUNNING_UPGRADE_TASKS"
    wait_for(lambda: cluster.cluster(node)["state"] == "STABLE", 10, "STABLE after the retry")
    assert cluster_view(cluster.db)["version"] == NEXT


def test_transitions_without_a_running_node(cluster: Cluster) -> None:
    """The transition rules hold in the database itself, which `lab` commands may use directly."""
    assert not zdu_transition(cluster.db, "cancel")
    assert zdu_transition(cluster.db, "start")
    assert not zdu_transition(cluster.db, "start")
    assert zdu_transition(cluster.db, "cancel")
    assert cluster_view(cluster.db)["state"] == "STABLE"
