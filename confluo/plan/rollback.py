"""`confluo rollback`: before finalize, upgraded nodes back on the installation of the version the upgrade started
from, one at a time under the same gates as an upgrade; then upgrade mode off once no node runs the new version."""

from __future__ import annotations

from confluo.api.base import ClusterInfo, ClusterState, finalization_failures
from confluo.errors import RefusedError
from confluo.inventory import Inventory, Node
from confluo.layout import NodePaths, node_paths
from confluo.plan.host_identity import identity_reasons
from confluo.plan.model import NodeWork, Plan
from confluo.plan.order import least_busy_order
from confluo.plan.pool import PoolPlan, balancer_notes
from confluo.plan.rules import balancer_reasons, cluster_or_refuse, notes
from confluo.plan.upgrade import back_to_source, source_install
from confluo.probe.facts import SERVICE_FILE_KEY, Facts, NodeFacts
from confluo.steps.base import Host, Step
from confluo.steps.cluster import CancelUpgradeMode
from confluo.steps.service import StartNode


def build_rollback_plan(inventory: Inventory, facts: Facts, *, only: str | None = None) -> Plan:
    """`only`: one node's name; None rolls back every upgraded node."""
    cluster = _cluster_in_upgrade(facts)
    source = cluster.original_version
    assert source is not None
    _refuse_unreachable(inventory, facts)
    upgraded = [f.node for f in facts.nodes if f.installed_version and f.installed_version != source]
    if only is not None:
        names = [node.name for node in inventory.nodes]
        if only not in names:
            raise RefusedError([f"--node {only}: the inventory has no such node ({', '.join(names)})"])
        if only not in upgraded:
            running = facts.for_node(only).installed_version
            raise RefusedError(
                [f"{only} runs {running} already, the version the upgrade started from: nothing to roll back on it"],
                hint="`confluo status` shows which node runs which version",
            )
    chosen = [only] if only is not None else upgraded
    current = next((facts.for_node(name).installed_version for name in upgraded), None) or source
    settle = max(node.timeouts.start_seconds for node in inventory.nodes)
    # Upgrade mode goes off only when no node runs the new version any more: the cluster refuses it before.
    ends_upgrade = set(chosen) >= set(upgraded)
    # A node on the old version that an interrupted run left stopped is started, before upgrade mode goes off.
    stopped = [f.node for f in facts.nodes if f.node not in upgraded and f.pid is None]
    selected = [node for node in inventory.nodes if node.name in chosen or node.name in stopped]
    pool = PoolPlan(inventory, facts)
    hosts = {node.name: Host(node, facts.for_node(node.name).login_user) for node in inventory.nodes}
    return Plan(
        cluster_name=inventory.cluster.name,
        source_version=current,
        target_version=source,
        rolling=tuple(
            # Interrupted, a node going back finishes going back: its rollback is its own steps, each skipped if done.
            NodeWork(name, steps, rollback=steps, back_on=source)
            for name in least_busy_order(selected, cluster)
            for steps in [(_steps_back if name in chosen else _start)(inventory, facts, name, source, pool)]
        ),
        reconcile=pool.reconcile(hosts),
        finalize=(CancelUpgradeMode(settle_seconds=settle),) if ends_upgrade else (),
        goal="rollback",
        notes=(*notes(inventory), *balancer_notes(facts)),
    )


def _cluster_in_upgrade(facts: Facts) -> ClusterInfo:
    cluster = cluster_or_refuse(facts)
    if cluster.state in (ClusterState.RUNNING_UPGRADE_TASKS, ClusterState.UPGRADE_TASKS_FAILED):
        state = cluster.state.value
        raise RefusedError(
            [
                f"the cluster is {state}: the upgrade tasks have started, so the nodes can no longer go back",
                *finalization_failures(cluster),
            ],
            hint="`confluo finalize --retry` runs failed upgrade tasks again; going back means restoring the database "
            "and the shared home from the backup taken before the upgrade",
        )
    versions = ", ".join(sorted({info.version for info in cluster.nodes}))
    if not cluster.upgrade_mode or cluster.original_version is None:
        raise RefusedError(
            [f"upgrade mode is off and the cluster is {cluster.state.value} on {versions}: no upgrade is in progress"],
            hint="once an upgrade is finalized its upgrade tasks have changed the database, so going back to the "
            "old version means restoring the database and the shared home from the backup taken before the "
            "upgrade (Atlassian's rollback procedure); confluo does not do that",
        )
    return cluster


def _refuse_unreachable(inventory: Inventory, facts: Facts) -> None:
    reasons = [f"{f.node}: {f.error}" for f in facts.nodes if not f.reachable]
    reasons += [f"{f.node}: no Confluence installation found" for f in facts.nodes if f.reachable and not f.old_install]
    reasons += identity_reasons(inventory, facts) + balancer_reasons(inventory, facts)
    if reasons:
        raise RefusedError(reasons, hint="every node is probed before a rollback: fix these and run it again")


def _where(inventory: Inventory, facts: Facts, name: str) -> tuple[Node, NodeFacts, NodePaths]:
    node = next(node for node in inventory.nodes if node.name == name)
    found = facts.for_node(name)
    assert found.old_install is not None and found.installed_version is not None
    staging = inventory.target.staging_shared_home
    return node, found, node_paths(node, found.installed_version, found.login_home, staging)


def _start(inventory: Inventory, facts: Facts, name: str, source: str, pool: PoolPlan) -> tuple[Step, ...]:
    node, found, paths = _where(inventory, facts, name)
    assert found.old_install is not None
    service_install = paths.current_link or found.old_install
    host = Host(node, found.login_user)
    return (StartNode(host, found.old_install, service_install, source), *pool.put_back(host))


def _steps_back(inventory: Inventory, facts: Facts, name: str, source: str, pool: PoolPlan) -> tuple[Step, ...]:
    node, found, paths = _where(inventory, facts, name)
    assert found.old_install is not None
    back_to = source_install(node, found, paths.install_root, source)
    if back_to is None:
        raise RefusedError(
            [f"{name}: no installation of {source} found in {paths.install_root}: there is nothing to go back to"],
            hint="put that installation back where it was, or roll this node back by hand",
        )
    definition = found.files.get(SERVICE_FILE_KEY, "")
    host = Host(node, found.login_user)
    # A node that serves users is drained first, exactly as an upgrade takes it out.
    return (
        *pool.take_out(host),
        *back_to_source(host, paths, found.old_install, back_to, definition, source),
        *pool.put_back(host),
    )
