"""`confluo restart`: a rolling restart (seed 004: one node at a time, the first up and serving before the next is
stopped), least busy first, under the upgrade's capacity guard; every node ACTIVE again on the version it runs.
With a load balancer each node is drained and out of its pool before its stop, and back in once it serves."""

from __future__ import annotations

from confluo.api.base import ClusterInfo, cluster_entry
from confluo.errors import RefusedError
from confluo.inventory import Inventory, Node
from confluo.layout import node_paths
from confluo.plan.host_identity import identity_reasons
from confluo.plan.model import NodeWork, Plan
from confluo.plan.order import least_busy_order
from confluo.plan.pool import PoolPlan, balancer_notes
from confluo.plan.rules import balancer_reasons, cluster_or_refuse, discovery_notes, notes
from confluo.probe.facts import Facts
from confluo.steps.base import Host, Step
from confluo.steps.index import index_caught_up
from confluo.steps.service import StartNode, StopNode


def build_restart_plan(inventory: Inventory, facts: Facts, *, only: str | None = None) -> Plan:
    """`only`: one node's name; None restarts every node."""
    cluster = _cluster_at_rest(facts)
    names = [node.name for node in inventory.nodes]
    if only is not None and only not in names:
        raise RefusedError([f"--node {only}: the inventory has no such node ({', '.join(names)})"])
    reasons = _node_reasons(inventory, facts) + identity_reasons(inventory, facts) + balancer_reasons(inventory, facts)
    if len(inventory.nodes) < 2:
        reasons.append("a rolling restart needs at least 2 nodes: with one, the cluster is down while it restarts")
    if reasons:
        raise RefusedError(reasons, hint="fix these, then run it again; nothing was changed")
    chosen = [node for node in inventory.nodes if only is None or node.name == only]
    versions = {facts.for_node(node.name).installed_version for node in chosen}
    version = ", ".join(sorted(v for v in versions if v))
    pool = PoolPlan(inventory, facts)
    hosts = {node.name: Host(node, facts.for_node(node.name).login_user) for node in inventory.nodes}
    return Plan(
        cluster_name=inventory.cluster.name,
        source_version=version,
        target_version=version,
        rolling=tuple(
            # Interrupted or failed after its stop, a node is started again (and put back): its rollback is its start.
            NodeWork(name, steps, rollback=back)
            for name in least_busy_order(chosen, cluster)
            for steps, back in [_restart(inventory, facts, name, pool)]
        ),
        reconcile=pool.reconcile(hosts),
        goal="restart",
        notes=(*notes(inventory), *discovery_notes(inventory, facts), *balancer_notes(facts)),
    )


def _cluster_at_rest(facts: Facts) -> ClusterInfo:
    cluster = cluster_or_refuse(facts)
    if cluster.upgrade_mode:
        raise RefusedError(
            [f"upgrade mode is on and the cluster is {cluster.state.value}: an upgrade is in progress"],
            hint="end it first: `confluo upgrade` continues it, `confluo rollback` goes back; `confluo status` "
            "shows where it stands; nothing was changed",
        )
    return cluster


def _node_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    reasons = []
    cluster = facts.cluster
    for node in inventory.nodes:
        found = facts.for_node(node.name)
        if not found.reachable:
            reasons.append(f"{node.name}: {found.error}")
        elif found.old_install is None or found.installed_version is None:
            reasons.append(f"{node.name}: no Confluence installation with a readable version found")
        elif found.sudo_denied:
            reasons.append(f"{node.name}: `sudo -n` is not allowed for {', '.join(found.sudo_denied)}")
        elif cluster is not None and cluster_entry(cluster, node) is None:
            reasons.append(f"{node.name} is in the inventory but not in the cluster")
    return reasons


def _restart(
    inventory: Inventory, facts: Facts, name: str, pool: PoolPlan
) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
    """The node's steps, and those from its start on (what brings it back after a failure or an interrupt)."""
    node: Node = next(node for node in inventory.nodes if node.name == name)
    found = facts.for_node(name)
    assert found.old_install is not None and found.installed_version is not None
    paths = node_paths(node, found.installed_version, found.login_home, inventory.target.staging_shared_home)
    host = Host(node, found.login_user)
    service_install = paths.current_link or found.old_install
    start = StartNode(host, found.old_install, service_install, found.installed_version)
    back = (start, index_caught_up(host, inventory.nodes), *pool.put_back(host))
    return (*pool.take_out(host), StopNode(host, found.old_install, service_install), *back), back
