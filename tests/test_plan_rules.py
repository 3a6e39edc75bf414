"""The upgrade plan over Facts, without any host: every refusal of the preflight, and the plan's shape."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from confluo.api.base import ClusterInfo, ClusterState, NodeInfo, NodeState
from confluo.errors import ExitCode, RefusedError
from confluo.inventory import Inventory, load_inventory
from confluo.plan.upgrade import build_plan
from confluo.probe.facts import Archive, Facts, NodeFacts
from confluo.steps.base import StepKind
from confluo.steps.index import IndexCaughtUp
from confluo.steps.repoint import Repoint
from confluo.steps.service import StartNode

BASE = "/opt/atlassian/confluence"


def inventory(tmp_path: Path, nodes: int = 2, **changes: object) -> Inventory:
    document: dict[str, object] = {
        "cluster": {
            "name": "c",
            "api_url": "https://lb.example",
            "credentials": {"username": "a", "password_env": "HOME"},
        },
        "target": {"version": "9.2.14", "archive": str(tmp_path / "a.tar.gz")},
        "database": "mysql",
        "defaults": {"install": {"base": BASE}, "home": "/var/confluence"},
        "nodes": [{"name": f"node{i}", "host": f"10.0.0.{i}", "url": f"http://10.0.0.{i}:8090"}
                  for i in range(1, nodes + 1)],
    }  # fmt: skip
    document.update(changes)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_inventory(path)


def node_facts(name: str, **changes: object) -> NodeFacts:
    found = NodeFacts(
        node=name,
        login_home="/home/deploy",
        login_user="deploy",
        old_install=f"{BASE}/9.2.13",
        installed_version="9.2.13",
        free_mb=10_000,
        staging_free_mb=10_000,
        home_exists=True,
        drivers=("mysql-connector-j-8.4.0.jar",),
        releases=("9.2.11", "9.2.12", "9.2.13"),
        present=("conf/server.xml",),
        files={"conf/server.xml": "<Server/>\n"},
    )
    return dataclasses.replace(found, **changes)  # type: ignore[arg-type]


def cluster_node(index: int, **changes: object) -> NodeInfo:
    info = NodeInfo(f"id{index}", f"node{index}", f"10.0.0.{index}", NodeState.ACTIVE, "9.2.13", "1", index, 0)
    return dataclasses.replace(info, **changes)  # type: ignore[arg-type]


def facts(nodes: int = 2, **changes: object) -> Facts:
    cluster = ClusterInfo(ClusterState.STABLE, False, None, False, tuple(cluster_node(i) for i in range(1, nodes + 1)))
    archive = Archive(Path("/tmp/a.tar.gz"), "9.2.14", "ab" * 32, 1000, {})
    found = Facts(tuple(node_facts(f"node{i}") for i in range(1, nodes + 1)), cluster, None, archive, None)
    return dataclasses.replace(found, **changes)  # type: ignore[arg-type]


def with_node(found: Facts, index: int, **changes: object) -> Facts:
    nodes = list(found.nodes)
    nodes[index] = dataclasses.replace(nodes[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(found, nodes=tuple(nodes))


def with_cluster(found: Facts, **changes: object) -> Facts:
    assert found.cluster is not None
    return dataclasses.replace(found, cluster=dataclasses.replace(found.cluster, **changes))  # type: ignore[arg-type]


REFUSALS: list[tuple[str, Callable[[Facts], Facts], str]] = [
    ("unreachable", lambda f: with_node(f, 0, error="unreachable: refused"), "node1: unreachable: refused"),
    ("probe failed", lambda f: with_node(f, 0, error="probe failed (exit 2): df: no"), "node1: probe failed (exit 2)"),
    ("no install", lambda f: with_node(f, 1, old_install=None), "node2: no Confluence installation found at"),
    ("no version", lambda f: with_node(f, 0, installed_version=None), "cannot read the installed version"),
    ("no home", lambda f: with_node(f, 0, home_exists=False), "the local home /var/confluence does not exist"),
    ("sudo", lambda f: with_node(f, 0, sudo_denied=("/usr/bin/tee",)), "`sudo -n` is not allowed for /usr/bin/tee"),
    ("disk", lambda f: with_node(f, 0, free_mb=10), "only 10 MB free for the new installation"),
    ("staging disk", lambda f: with_node(f, 0, staging_free_mb=0), "free in the login user's home for the archive"),
    ("versions differ", lambda f: with_node(f, 1, installed_version="9.2.12"), "the nodes run different versions"),
    ("not stable", lambda f: with_cluster(f, state=ClusterState.MIXED, upgrade_mode=True), "the cluster is MIXED"),
    ("api down", lambda f: dataclasses.replace(f, cluster=None, cluster_error="refused"), "cluster API: refused"),
    ("archive", lambda f: dataclasses.replace(f, archive=None, archive_error="no such file"), "archive: no such file"),
    (
        "node in error",
        lambda f: with_cluster(f, nodes=(cluster_node(1, state=NodeState.ERROR), cluster_node(2))),
        "cluster node node1 (10.0.0.1) is in ERROR",
    ),
    (
        "unlisted",
        lambda f: with_cluster(f, nodes=(cluster_node(1),)),
        "node2 is in the inventory but not in the cluster",
    ),
    (
        "extra node",
        lambda f: with_cluster(f, nodes=(cluster_node(1), cluster_node(2), cluster_node(3))),
        "the cluster has a node node3 (10.0.0.3) that the inventory does not list",
    ),
    (
        "not restarted",
        lambda f: with_cluster(f, nodes=(cluster_node(1, version="9.2.12"), cluster_node(2))),
        "node1 runs 9.2.12 but 9.2.13 is installed",
    ),
    (
        "version step",
        lambda f: with_node(with_node(f, 0, installed_version="8.5.4"), 1, installed_version="8.5.4"),
        "8.5.4 -> 9.2.14",
    ),
    (
        "swapped hosts: node name",
        lambda f: with_node(f, 0, configured_names=("node2",)),
        "node1: 10.0.0.1 is configured as another cluster node (bin/setenv.sh names it 'node2'), but the "
        "cluster knows node1 as 'node1' (id 'id1') at 10.0.0.1: the inventory points at another node's host",
    ),
    (
        "swapped hosts: node id in the local home",
        lambda f: with_node(f, 1, configured_id="id1"),
        "node2: 10.0.0.2 is configured as another cluster node (its local home's confluence.cfg.xml holds node id "
        "'id1', the id of 'node1'), but the cluster knows node2 as 'node2' (id 'id2') at 10.0.0.2",
    ),
    (
        "swapped hosts: unnamed nodes told apart by their Connector's address",
        lambda f: with_cluster(
            with_node(f, 0, bound_addresses=("127.0.0.1", "10.0.0.2")),
            nodes=(cluster_node(1, name="Not configured"), cluster_node(2, name="Not configured")),
        ),
        "node1: 10.0.0.1 is configured as another cluster node (conf/server.xml binds it to 10.0.0.2, the address "
        "of the unnamed node 'id2'), but the cluster knows node1 as an unnamed node (id 'id1') at 10.0.0.1",
    ),
    (
        "occupied new dir",
        lambda f: with_node(f, 0, new_install_exists=True),
        f"{BASE}/9.2.14 exists but is not a 9.2.14 installation",
    ),
]


@pytest.mark.parametrize(("case", "change", "reason"), REFUSALS, ids=[case for case, _, _ in REFUSALS])
def test_every_preflight_refusal_names_its_reason(
    tmp_path: Path, case: str, change: Callable[[Facts], Facts], reason: str
) -> None:
    with pytest.raises(RefusedError) as refusal:
        build_plan(inventory(tmp_path), change(facts()))
    assert refusal.value.exit_code is ExitCode.REFUSED
    assert any(reason in line for line in refusal.value.reasons), refusal.value.reasons


def test_refusals_are_listed_all_at_once(tmp_path: Path) -> None:
    found = with_node(with_node(facts(), 0, home_exists=False), 1, free_mb=1)
    with pytest.raises(RefusedError) as refusal:
        build_plan(inventory(tmp_path), found)
    assert len(refusal.value.reasons) == 2


def test_a_single_node_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RefusedError, match="needs at least 2"):
        build_plan(inventory(tmp_path, nodes=1), facts(nodes=1))


def test_a_cluster_already_on_the_target_has_nothing_to_do(tmp_path: Path) -> None:
    found = facts()
    found = with_node(with_node(found, 0, installed_version="9.2.14"), 1, installed_version="9.2.14")
    found = with_cluster(found, nodes=(cluster_node(1, version="9.2.14"), cluster_node(2, version="9.2.14")))
    assert build_plan(inventory(tmp_path), found).nothing_to_do


def test_the_plan_orders_by_load_and_holds_each_nodes_way_back(tmp_path: Path) -> None:
    found = with_cluster(facts(), nodes=(cluster_node(1, tasks=7), cluster_node(2, tasks=0)))
    plan = build_plan(inventory(tmp_path), found)
    assert plan.order == ("node2", "node1")
    work = plan.rolling[0]
    assert [s.kind for s in work.steps] == [
        StepKind.STOP, StepKind.SET_HOME, StepKind.COPY_DRIVER, StepKind.CARRY, StepKind.REPOINT, StepKind.START,
        StepKind.INDEX,
    ]  # fmt: skip
    caught_up = work.steps[-1]
    assert isinstance(caught_up, IndexCaughtUp) and caught_up.others == ("node1",) and caught_up.seconds == 60
    start_new, start_old = work.steps[-2], work.rollback[-1]
    assert isinstance(start_new, StartNode) and isinstance(start_old, StartNode)
    assert (start_new.install, start_new.version) == (f"{BASE}/9.2.14", "9.2.14")
    assert (start_old.install, start_old.version) == (f"{BASE}/9.2.13", "9.2.13")
    back = work.rollback[1]
    assert isinstance(back, Repoint) and (back.from_install, back.to_install) == (f"{BASE}/9.2.14", f"{BASE}/9.2.13")


def test_the_mysql_driver_is_carried_and_old_releases_pruned_beyond_keep(tmp_path: Path) -> None:
    plan = build_plan(inventory(tmp_path, keep_releases=3), facts())
    driver = plan.rolling[0].steps[2].describe()
    assert "mysql-connector-j-8.4.0.jar" in driver.commands[0]
    pruned = [line for step in plan.prune for line in step.describe().commands]
    assert pruned == [f"sudo -n /usr/bin/rm -rf -- {BASE}/9.2.11"] * 2


def test_a_host_configured_as_its_own_node_passes_the_identity_check(tmp_path: Path) -> None:
    own = with_node(facts(), 0, configured_names=("node1",), configured_id="id1", bound_addresses=("10.0.0.1",))
    # An unnamed cluster ("Not configured") says nothing against a name; a Connector on a loopback or an address
    # no other node has is no evidence either.
    unnamed = with_cluster(
        with_node(facts(), 1, configured_names=("n2",), bound_addresses=("127.0.0.1", "192.168.9.9")),
        nodes=(cluster_node(1), cluster_node(2, name="Not configured")),
    )
    assert build_plan(inventory(tmp_path), own).rolling
    assert build_plan(inventory(tmp_path), unnamed).rolling
