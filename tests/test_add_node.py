"""`confluo add-node` without a lab: the inventory edited in place (comments kept, the candidate validated with
its location), the identity edits, and every refusal of the plan over hand-made facts."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from confluo import identity
from confluo.api.base import ClusterInfo, ClusterState, NodeInfo, NodeState
from confluo.errors import InventoryError, RefusedError
from confluo.growth import Options, candidate
from confluo.inventory import load_inventory_text
from confluo.inventory.edit import NewEntry, with_new_node, write_if_unchanged
from confluo.plan.addnode import build_add_node_plan
from confluo.plan.addnode_rules import AddNodeRequest
from confluo.probe.facts import NodeFacts
from confluo.probe.newnode_facts import AddNodeFacts, DonorFacts, Mount, NewHostFacts
from confluo.steps.clone import CloneInstall, SeedLocalHome
from confluo.steps.newnode import EditIdentity, JoinCluster

SAMPLE = Path(__file__).parent.parent / "inventory.sample.yaml"
INVENTORY = """\
# the cluster's own comment
cluster:
  name: prod
  api_url: http://lb.invalid
  credentials: {username: admin, password_env: HOME}   # inline comment
target: {version: 9.2.14, archive: /srv/a.tar.gz}
database: postgresql
defaults:
  install: {base: /opt/atlassian/confluence}
  home: /var/atlassian/application-data/confluence
nodes:
  - name: node1          # the donor
    id: abc123
    lb_server: web1
    host: 10.0.0.11
    url: http://10.0.0.11:8090
  - name: node2
    host: 10.0.0.12
    url: http://10.0.0.12:8090
# the end
"""
CFG = """<confluence-configuration>
  <properties>
    <property name="confluence.cluster.home">/shared</property>
    <property name="confluence.cluster.join.type">tcp_ip</property>
    <property name="confluence.cluster.node.id">94f1787f</property>
    <property name="confluence.cluster.peers">10.0.0.11,10.0.0.12</property>
    <property name="hibernate.c3p0.max_size">60</property>
    <property name="lucene.index.dir">/var/atlassian/application-data/confluence/index</property>
  </properties>
</confluence-configuration>
"""


def test_the_new_entry_is_the_donors_appended_with_every_comment_kept() -> None:
    after = with_new_node(INVENTORY, "node1", NewEntry("node3", "10.0.0.13", "http://10.0.0.13:8090"), source="x")
    assert after.startswith(INVENTORY)  # every byte of the file as it was, then the entry
    added = after[len(INVENTORY) :]
    assert added == "  - name: node3\n    host: 10.0.0.13\n    url: http://10.0.0.13:8090\n"


def test_the_sample_inventory_keeps_every_line_and_the_copy_drops_the_donors_own_keys() -> None:
    text = SAMPLE.read_text()
    entry = NewEntry("node9", "10.0.0.19", "http://10.0.0.19:8090", ssh_port=2200, home="/srv/home9")
    after = with_new_node(text, "node3", entry, source="x")
    assert after.startswith(text.rstrip("\n")) and "port: 2200" in after[len(text) :]
    nodes = load_inventory_text(after, SAMPLE, source="x").nodes
    assert [n.name for n in nodes][-1] == "node9" and str(nodes[-1].home) == "/srv/home9"
    donor_only = with_new_node(INVENTORY, "node1", NewEntry("n3", "h", "http://h:1"), source="x")
    assert "abc123" not in donor_only.split("name: n3")[1] and "web1" not in donor_only.split("name: n3")[1]


def test_an_invalid_new_entry_is_refused_with_its_location_before_anything_is_touched(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    with pytest.raises(InventoryError) as refused:
        candidate(path, Options("node3", "node1", host="10.0.0.13", url="ftp://10.0.0.13"))
    message = refused.value.message
    assert "with node3 added as confluo would write it" in message and "nodes[2].url" in message
    assert re.search(r"line \d+, column \d+", message), message
    assert path.read_text() == INVENTORY


def test_a_node_already_in_the_inventory_is_used_as_written(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    chosen = candidate(path, Options("node2", "node1"))
    assert chosen.entry_written and chosen.address == "10.0.0.12"
    with pytest.raises(InventoryError, match="--from node7: the inventory has no such node"):
        candidate(path, Options("node3", "node7", host="h"))


def test_the_inventory_is_written_atomically_only_while_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("a: 1\n")
    path.chmod(0o640)
    assert write_if_unchanged(path, "a: 1\n", "a: 2\n") and path.read_text() == "a: 2\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert not write_if_unchanged(path, "a: 1\n", "a: 3\n") and path.read_text() == "a: 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["inventory.yaml"]


def test_identity_edits_name_address_and_local_home() -> None:
    setenv = '# -Dconfluence.cluster.node.name=example\nCATALINA_OPTS="-Dconfluence.cluster.node.name=node1 -Xmx1g"\n'
    assert identity.with_node_name(setenv, "node3") == setenv.replace("=node1", "=node3")
    assert "node.name=node3" in identity.with_node_name("export CATALINA_OPTS\n", "node3").splitlines()[0]
    xml = '<!-- <Connector address="10.0.0.11"/> -->\n<Connector port="8090" address="10.0.0.11"/>\n'
    edited = identity.with_connector_address(xml, {"10.0.0.11"}, "10.0.0.13")
    assert edited.startswith('<!-- <Connector address="10.0.0.11"/>') and 'address="10.0.0.13"/>' in edited
    cfg = identity.new_node_cfg(CFG, name="node3", address="10.0.0.13",
                                donor_home="/var/atlassian/application-data/confluence", home="/srv/home3")  # fmt: skip
    assert (
        "node.id" not in cfg
        and identity.cfg_property(cfg, "confluence.cluster.peers") == "10.0.0.11,10.0.0.12,10.0.0.13"
    )
    assert identity.cfg_property(cfg, "lucene.index.dir") == "/srv/home3/index"
    assert (
        identity.new_node_cfg(cfg, name="node3", address="10.0.0.13", donor_home="/srv/home3", home="/srv/home3") == cfg
    )


# -- the plan over hand-made facts --------------------------------------------------------------------------


def _inventory() -> object:
    after = with_new_node(INVENTORY, "node1", NewEntry("node3", "10.0.0.13", "http://10.0.0.13:8090"), source="x")
    return load_inventory_text(after, Path("/tmp/inventory.yaml"), source="x")


def _info(name: str, address: str, state: NodeState = NodeState.ACTIVE) -> NodeInfo:
    return NodeInfo(f"id-{name}", name, address, state, "9.2.13", "9013", 0, 0)


CLUSTER = ClusterInfo(
    ClusterState.STABLE, False, None, False, (_info("node1", "10.0.0.11"), _info("node2", "10.0.0.12"))
)
MOUNT = Mount(50_000, "/")
DONOR = DonorFacts(
    NodeFacts("node1", login_home="/home/deploy", login_user="deploy", old_install="/opt/atlassian/confluence/9.2.13",
              installed_version="9.2.13", files={"bin/setenv.sh": "", "conf/server.xml": ""}),
    cfg_xml=CFG, install_bytes=700 << 20, home_bytes=10 << 20, login_free_mb=50_000, shared_sha256="s",
)  # fmt: skip
HOST = NewHostFacts(login_user="deploy", login_home="/home/deploy", shared_found=True, shared_sha256="s",
                    install_mount=MOUNT, home_mount=MOUNT, login_mount=MOUNT)  # fmt: skip
FACTS = AddNodeFacts(CLUSTER, None, DONOR, HOST, local_free_mb=50_000)
REQUEST = AddNodeRequest("node3", "node1", "10.0.0.13", "/tmp/confluo-add", False, "/tmp/inventory.yaml")


def test_the_plan_copies_makes_its_own_and_joins_in_that_order() -> None:
    plan = build_add_node_plan(_inventory(), REQUEST, FACTS)  # type: ignore[arg-type]
    steps = plan.rolling[0].steps
    assert plan.goal == "add-node" and plan.order == ("node3",)
    assert isinstance(steps[0], CloneInstall) and isinstance(steps[2], SeedLocalHome)
    assert isinstance(steps[-1], JoinCluster) and all(isinstance(s, EditIdentity) for s in steps[3:-1])
    assert any("60 more connections" in note for note in plan.notes)
    assert any("server node3 10.0.0.13:8090" in note for note in plan.notes)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"cluster": dataclasses.replace(CLUSTER, state=ClusterState.MIXED, upgrade_mode=True)}, "STABLE cluster only"),
        ({"cluster": None, "cluster_error": "refused"}, "cluster API: refused"),
        (
            {"cluster": dataclasses.replace(CLUSTER, nodes=(_info("node1", "10.0.0.11", NodeState.OFFLINE),))},
            "node1 (the donor) is OFFLINE",
        ),
        (
            {"cluster": dataclasses.replace(CLUSTER, nodes=(*CLUSTER.nodes, _info("node3", "10.0.0.99")))},
            "the cluster already has a node of that name",
        ),
        ({"donor": dataclasses.replace(DONOR, cfg_xml=None)}, "cannot read"),
        ({"new_host": NewHostFacts(error="unreachable: connection refused")}, "unreachable: connection refused"),
        ({"new_host": dataclasses.replace(HOST, install_entry="other")}, "something is at"),
        ({"new_host": dataclasses.replace(HOST, home_entry="other")}, "must be absent or empty"),
        ({"new_host": dataclasses.replace(HOST, shared_found=False)}, "mounted at the same path"),
        ({"new_host": dataclasses.replace(HOST, shared_sha256="t")}, "another folder is mounted there"),
        ({"new_host": dataclasses.replace(HOST, shared_sha256=None, marker_seen=False)}, "is not seen from"),
        ({"new_host": dataclasses.replace(HOST, install_mount=Mount(100, "/opt"))}, "the copies need"),
        ({"new_host": dataclasses.replace(HOST, sudo_denied=("/usr/bin/tar",))}, "not allowed for /usr/bin/tar"),
        ({"local_free_mb": 1}, "this machine: 1 MB free"),
    ],
)
def test_add_node_refuses_before_any_change(change: dict[str, object], reason: str) -> None:
    with pytest.raises(RefusedError) as refused:
        build_add_node_plan(_inventory(), REQUEST, dataclasses.replace(FACTS, **change))  # type: ignore[arg-type]
    assert reason in refused.value.message, refused.value.message


def test_a_rerun_after_a_failed_start_accepts_its_own_copy_and_stopped_node() -> None:
    offline = dataclasses.replace(CLUSTER, nodes=(*CLUSTER.nodes, _info("node3", "10.0.0.13", NodeState.OFFLINE)))
    ours = dataclasses.replace(HOST, install_entry="clone", home_entry="clone", link_entry="other")
    plan = build_add_node_plan(_inventory(), REQUEST, dataclasses.replace(FACTS, cluster=offline, new_host=ours))  # type: ignore[arg-type]
    assert plan.order == ("node3",)


def test_a_new_node_that_does_not_join_is_stopped_again(tmp_path: Path) -> None:
    from fakes import SOURCE, FakeSite

    from confluo.inventory import load_inventory
    from confluo.steps.base import Host, StepContext, StepError
    from confluo.steps.service import StartNode, StopNode
    from confluo.transport.local import LocalTransport
    from confluo.transport.remote import Remote

    site = FakeSite.build(tmp_path)
    try:
        site.host("node3").kill()
        site.fails = lambda name, version: name == "node3"  # type: ignore[method-assign]
        node = next(n for n in load_inventory(site.inventory).nodes if n.name == "node3")
        install = str(site.host("node3").base / SOURCE)
        host = Host(node)
        join = JoinCluster(host, StartNode(host, install, install, SOURCE), StopNode(host, install, install))
        ctx = StepContext(api=site.api, remote=Remote(node, LocalTransport("node3")), clock=site.clock)
        with pytest.raises(StepError) as failed:
            join.apply(ctx)
        assert "ERROR" in failed.value.message and "node3 was stopped again" in (failed.value.hint or "")
        assert site.host("node3").running() is None
        assert site.versions() == {"node1": SOURCE, "node2": SOURCE, "node3": None}
    finally:
        site.stop_all()


def test_a_server_added_ahead_to_the_load_balancer_is_put_in_the_pool_else_its_line_is_noted() -> None:
    from confluo.loadbalancer.base import AdminState, ServerState
    from confluo.probe.facts import BalancerFacts
    from confluo.steps.pool import AddServer, Ready

    text = INVENTORY.replace("nodes:\n", "load_balancer: {kind: haproxy, socket: /run/lb.sock, backend: be}\nnodes:\n")
    after = with_new_node(text, "node1", NewEntry("node3", "10.0.0.13", "http://10.0.0.13:8090"), source="x")
    inventory = load_inventory_text(after, Path("/tmp/inventory.yaml"), source="x")
    known = BalancerFacts("haproxy", states={"node3": ServerState("node3", AdminState.MAINT, False, 0)},
                          commands={"node3": {AdminState.READY: "set server be/node3 state ready"}})  # fmt: skip
    plan = build_add_node_plan(inventory, REQUEST, dataclasses.replace(FACTS, balancer=known))
    assert isinstance(plan.rolling[0].steps[-1], Ready) and any("puts it in the pool" in n for n in plan.notes)
    unknown = dataclasses.replace(known, states={})
    plan = build_add_node_plan(inventory, REQUEST, dataclasses.replace(FACTS, balancer=unknown))
    assert isinstance(plan.rolling[0].steps[-1], JoinCluster)
    assert any("`server node3 10.0.0.13:8090 check cookie node3`" in note for note in plan.notes)
    addable = dataclasses.replace(unknown, addition="add `server 10.0.0.13:8090 … down;` to upstream confluence")
    plan = build_add_node_plan(inventory, REQUEST, dataclasses.replace(FACTS, balancer=addable))
    join, add, ready = plan.rolling[0].steps[-3:]
    assert isinstance(join, JoinCluster) and isinstance(add, AddServer) and isinstance(ready, Ready)
    assert (add.server, add.like, add.describe().commands) == ("node3", "web1", (addable.addition,))
    assert any("confluo adds its server out of the pool, set up as node1's" in note for note in plan.notes)
