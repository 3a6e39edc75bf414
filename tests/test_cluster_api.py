from pathlib import Path

import httpx
import pytest

from confluo.api.base import (
    ClusterState,
    NodeState,
    PageView,
    StatusState,
    finalization_failures,
    home_page_of,
    page_view_of,
    parse_cluster,
    parse_node,
)
from confluo.api.zdu import http_problem
from confluo.inventory import load_inventory
from confluo.plan.order import least_busy_order
from confluo.steps.stage import prune_candidates

CLUSTER = {
    "upgradeModeEnabled": True,
    "hasFinalizationTasks": False,
    "state": "READY_TO_UPGRADE",
    "originalVersion": "9.2.13",
    "nodes": [
        {
            "id": "a1",
            "name": "node1",
            "ipAddress": "10.0.0.1",
            "state": "ACTIVE",
            "version": "9.2.13",
            "buildNumber": "9109",
            "tasksTotal": 5,
            "activeUserCount": 12,
            "local": True,
        },
        {
            "id": "b2",
            "name": "node2",
            "ipAddress": "10.0.0.2",
            "state": "SOMETHING_NEW",
            "version": "9.2.13",
            "tasksTotal": None,
            "activeUserCount": 0,
        },
        {
            "id": "c3",
            "name": "node3",
            "ipAddress": "10.0.0.3",
            "state": "ACTIVE",
            "version": "9.2.13",
            "tasksTotal": 1,
            "activeUserCount": 2,
        },
    ],
}


def test_parse_cluster_reads_the_documented_fields() -> None:
    cluster = parse_cluster(CLUSTER)
    assert cluster.state is ClusterState.READY_TO_UPGRADE
    assert cluster.upgrade_mode is True
    assert cluster.original_version == "9.2.13"
    node1 = cluster.find("node1")
    assert node1 is not None and (node1.tasks, node1.active_users, node1.load) == (5, 12, 17)


def test_unknown_states_map_to_unknown_instead_of_failing() -> None:
    assert parse_cluster({"state": "NEW_STATE"}).state is ClusterState.UNKNOWN
    assert parse_node(CLUSTER["nodes"][1]).state is NodeState.UNKNOWN  # type: ignore[index]
    assert StatusState.parse("BOOTING") is StatusState.UNKNOWN


def test_missing_name_reads_as_not_configured_like_confluence() -> None:
    assert parse_node({"id": "x"}).name == "Not configured"


def test_least_busy_node_comes_first_and_ties_keep_inventory_order() -> None:
    nodes = load_inventory(Path(__file__).parent.parent / "inventory.sample.yaml").nodes
    assert [n.name for n in nodes] == ["node1", "node2", "node3"]
    assert least_busy_order(nodes, parse_cluster(CLUSTER)) == ("node2", "node3", "node1")


def test_find_matches_by_id_then_by_a_unique_name_then_by_address() -> None:
    unnamed = {
        "nodes": [
            {"id": "a1", "ipAddress": "10.0.0.1", "state": "ACTIVE"},
            {"id": "b2", "ipAddress": "10.0.0.2", "state": "ACTIVE"},
            {"id": "c3", "name": "node3", "ipAddress": "10.0.0.3", "state": "ACTIVE"},
        ]
    }
    cluster = parse_cluster(unnamed)
    assert [n.name for n in cluster.nodes] == ["Not configured", "Not configured", "node3"]
    assert cluster.find("node1", node_id="b2").id == "b2"  # type: ignore[union-attr]
    assert cluster.find("node3").id == "c3"  # type: ignore[union-attr]
    assert cluster.find("Not configured") is None, "two nodes share the name: it decides nothing"
    assert cluster.find("Not configured", address="10.0.0.2").id == "b2"  # type: ignore[union-attr]
    assert cluster.find("node9", address="10.9.9.9") is None


def test_prune_keeps_the_installation_in_use_and_the_previous_one() -> None:
    releases = ("9.2.10", "9.2.11", "9.2.12", "9.2.13", "9.2.14", "current")
    doomed = prune_candidates(releases, keep=3, in_use="/b/9.2.14", previous="/b/9.2.13", root_dir="/b")
    assert doomed == ["/b/9.2.10", "/b/9.2.11"]
    after_rollback = prune_candidates(releases, keep=2, in_use="/b/9.2.10", previous="/b/9.2.11", root_dir="/b")
    assert after_rollback == ["/b/9.2.12", "/b/9.2.13", "/b/9.2.14"]


def test_failed_upgrade_tasks_are_read_from_each_nodes_finalization() -> None:
    failed = {"clusterUpgradeTask": "AttachmentUpgradeTask", "errors": ["disk full"], "exceptionMessage": "x"}
    bare = {"clusterUpgradeTask": "IndexUpgradeTask", "errors": [], "exceptionMessage": "timed out"}
    cluster = parse_cluster({"state": "UPGRADE_TASKS_FAILED", "nodes": [
        {"name": "node1", "finalization": {"lastRequested": 1, "errors": [failed, bare]}},
        {"name": "node2", "finalization": None},
        {"name": "node3", "finalization": {"errors": "not a list of objects"}},
    ]})  # fmt: skip
    assert finalization_failures(cluster) == [
        "node1: AttachmentUpgradeTask: disk full",
        "node1: IndexUpgradeTask: timed out",
    ]


SPACES = {"results": [{"key": "LAB", "homepage": {"id": "98306", "type": "page", "title": "Lab Home"}}]}
VIEWED = {"id": "98306", "body": {"view": {"value": "<p>Home</p>", "representation": "view"}}}
LOGIN = "HTTP 401: the API user cannot log in on this node"


@pytest.mark.parametrize(
    ("status", "body", "found"),
    [
        (200, SPACES, "98306"),
        (200, {"results": []}, PageView(True, "logged in; no space to view yet")),
        (200, {"results": [{"key": "NEW"}]}, PageView(True, "logged in; space NEW has no home page to view")),
        (
            200,
            {"results": [{"key": "X", "homepage": {"id": "../1"}}]},
            PageView(True, "logged in; space X has no home page to view"),
        ),
        (200, None, PageView(False, "a space list without results")),
        (401, None, PageView(False, LOGIN)),
        (503, {"message": "starting"}, PageView(False, "HTTP 503")),
    ],
)
def test_the_page_to_view_is_the_first_spaces_home_page(status: int, body: object, found: object) -> None:
    assert home_page_of(status, body) == found


@pytest.mark.parametrize(
    ("status", "body", "seen"),
    [
        (200, VIEWED, PageView(True, "page 98306 viewed")),
        (200, {"id": "7", "_expandable": {"body": ""}}, PageView(False, "the page came without its rendered body")),
        (500, {"message": "no renderer"}, PageView(False, "HTTP 500")),
        (403, None, PageView(False, "HTTP 403: the API user cannot log in on this node")),
    ],
)
def test_a_page_view_passes_only_with_the_page_rendered(status: int, body: object, seen: PageView) -> None:
    assert page_view_of(status, body) == seen


HAPROXY_503 = (
    "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n"
)


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (503, HAPROXY_503, "HTTP 503: No server is available to handle this request."),
        (500, '{"message": "database unavailable: locked"}', "HTTP 500: database unavailable: locked"),
        (502, "", "HTTP 502"),
        (500, '{"statusCode": 500}', "HTTP 500"),
        (503, "\x00\x01binary", "HTTP 503"),
        (504, "x" * 500, "HTTP 504: " + "x" * 119 + "…"),
    ],
)
def test_a_failed_answer_says_why_in_brief(status: int, body: str, shown: str) -> None:
    assert http_problem(httpx.Response(status, text=body)) == shown
