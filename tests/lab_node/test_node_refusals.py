"""Badly installed nodes are refused the way Confluence refuses them, and the lab can say why."""

from __future__ import annotations

import pytest

from confluo.lab.node.cluster_state import cluster_view
from confluo.lab.node.home import update_cfg_xml
from confluo.lab.node.versions import build_number_for
from confluo.lab.node.zdu_api import zdu_transition

from .conftest import FEATURE, NEXT, OLDER, PLATFORM, VERSION, Cluster, http


def test_no_home_means_first_run_and_the_node_never_joins(cluster: Cluster) -> None:
    node = cluster.add_node("node1", lose=("home",))
    cluster.start(node)
    assert cluster.wait_status(node, "FIRST_RUN") == (200, '{"state":"FIRST_RUN"}')
    assert cluster_view(cluster.db)["nodes"] == []
    assert "confluence.home is not set" in node.catalina_out()
    assert http("GET", node.url + "/rest/zdu/cluster").status == 503


def test_mysql_without_its_driver_is_an_error(cluster: Cluster) -> None:
    node = cluster.add_node("node1", db_kind="mysql", lose=("driver",))
    cluster.start(node)
    assert cluster.wait_status(node, "ERROR") == (500, '{"state":"ERROR"}')
    row = cluster.view_node(node)
    assert row["state"] == "ERROR" and row["problem"].startswith("driver not found")
    assert "driver not found" in node.home_log() and "driver not found" in node.catalina_out()


def test_mysql_with_its_driver_runs(cluster: Cluster) -> None:
    node = cluster.add_node("node1", db_kind="mysql")
    cluster.start(node)
    cluster.wait_status(node, "RUNNING")
    assert cluster.view_node(node)["problem"] is None


def test_lost_connector_address_is_an_error_naming_the_bind(cluster: Cluster) -> None:
    node = cluster.add_node("node1", lose=("address",))
    cluster.start(node)
    assert cluster.wait_status(node, "ERROR") == (500, '{"state":"ERROR"}')  # still answers on its address
    assert cluster.view_node(node)["problem"] == f"binds 0.0.0.0:8090, not {node.address}"


def test_lost_node_name_joins_as_not_configured(cluster: Cluster) -> None:
    node = cluster.add_node("node1", lose=("name",))
    cluster.start(node)
    cluster.wait_status(node, "RUNNING")
    row = cluster.view_node(node, name="Not configured")
    assert row["state"] == "ACTIVE" and "node name not configured" in row["problem"]
    assert [n["name"] for n in cluster.cluster(node)["nodes"]] == ["Not configured"]


def test_a_different_version_is_refused_while_upgrade_mode_is_off(cluster: Cluster) -> None:
    node = cluster.add_node("node1", NEXT)
    cluster.start(node)
    cluster.wait_status(node, "ERROR")
    problem = cluster.view_node(node)["problem"]
    assert f"version {NEXT} is not accepted" in problem and "upgrade mode is off" in problem


@pytest.mark.parametrize(
    ("version", "accepted"),
    [
        (VERSION, True),
        (NEXT, True),  # bug-fix
        (FEATURE, True),  # the next feature release, from 9.2
        (PLATFORM, False),  # a platform release is never rolling
        (OLDER, False),  # a downgrade
    ],
)
def test_upgrade_mode_accepts_only_allowed_rolling_steps(cluster: Cluster, version: str, accepted: bool) -> None:
    assert zdu_transition(cluster.db, "start")
    node = cluster.add_node("node1", version)
    cluster.start(node)
    code, _ = cluster.wait_status(node, "RUNNING" if accepted else "ERROR")
    row = cluster.view_node(node)
    assert row["version"] == version
    if accepted:
        assert code == 200 and row["problem"] is None
    else:
        assert code == 500 and "not accepted" in row["problem"]
        # An ERROR node in upgrade mode makes the cluster MIXED.
        assert cluster_view(cluster.db)["state"] == "MIXED"


def test_before_finalize_the_old_version_starts_again_on_a_home_the_new_one_ran_on(cluster: Cluster) -> None:
    """Atlassian's node rollback: the new release moved the home's buildNumber, not its finalizedBuildNumber."""
    assert zdu_transition(cluster.db, "start")
    node = cluster.add_node("node1", NEXT)
    cluster.start(node)
    cluster.wait_status(node, "RUNNING")
    assert f"<buildNumber>{build_number_for(NEXT)}</buildNumber>" in node.cfg_xml()
    cluster.stop(node)
    cluster.install(node, VERSION)
    cluster.start(node)
    cluster.wait_status(node, "RUNNING")
    assert cluster.view_node(node)["version"] == VERSION


def test_a_home_finalized_on_a_newer_build_refuses_the_old_version(cluster: Cluster) -> None:
    node = cluster.add_node("node1")
    update_cfg_xml(node.home / "confluence.cfg.xml", properties={"finalizedBuildNumber": str(build_number_for(NEXT))})
    cluster.start(node)
    cluster.wait_status(node, "ERROR")
    assert "finalized build number" in cluster.view_node(node)["problem"]
