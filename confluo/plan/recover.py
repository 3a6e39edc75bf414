"""Plans that bring an upgrade to an end without upgrading another node: cancel, and finalize (or retry it)."""

from __future__ import annotations

from confluo.api.base import ClusterInfo, ClusterState, finalization_failures
from confluo.errors import RefusedError
from confluo.inventory import Inventory
from confluo.plan.model import Plan
from confluo.steps.cluster import CancelUpgradeMode, Finalize, RetryFinalize

_RETRY_HINT = "fix the cause, then `confluo finalize --retry` runs the tasks again; nothing was changed"


def _settle(inventory: Inventory) -> float:
    return max(node.timeouts.start_seconds for node in inventory.nodes)


def _tasks(inventory: Inventory) -> float:
    return max(node.timeouts.finalize_seconds for node in inventory.nodes)


def _versions(cluster: ClusterInfo) -> str:
    return ", ".join(f"{node.name} {node.state.value} on {node.version}" for node in cluster.nodes)


def _tasks_failed(cluster: ClusterInfo) -> list[str]:
    return [
        "the upgrade tasks failed (UPGRADE_TASKS_FAILED); the nodes' atlassian-confluence.log says why",
        *finalization_failures(cluster),
    ]


def _idle(inventory: Inventory, cluster: ClusterInfo) -> Plan | None:
    if cluster.state is ClusterState.STABLE and not cluster.upgrade_mode:
        version = cluster.nodes[0].version if cluster.nodes else "?"
        return Plan(inventory.cluster.name, version, version, nothing_to_do=True)
    return None


def build_cancel_plan(inventory: Inventory, cluster: ClusterInfo) -> Plan:
    """Upgrade mode off, which the cluster allows only while no node runs another version."""
    idle = _idle(inventory, cluster)
    if idle is not None:
        return idle
    if cluster.state is ClusterState.UPGRADE_TASKS_FAILED:
        approved = "nothing to cancel: the upgrade was approved already (upgrade mode is off)"
        raise RefusedError([approved, *_tasks_failed(cluster)], hint=_RETRY_HINT)
    if cluster.state is not ClusterState.READY_TO_UPGRADE:
        raise RefusedError(
            [
                f"the cluster is {cluster.state.value} ({_versions(cluster)}): upgrade mode can only be turned off "
                "while every node runs the version the upgrade started from"
            ],
            hint="finish the upgrade with `confluo upgrade`, or go back with `confluo rollback --all` (every "
            "upgraded node onto its old installation, then upgrade mode off); nothing was changed",
        )
    version = cluster.original_version or "?"
    return Plan(
        inventory.cluster.name, version, version, goal="cancel", finalize=(CancelUpgradeMode(_settle(inventory)),)
    )


def build_tasks_again_plan(inventory: Inventory, cluster: ClusterInfo, reasons: list[str]) -> Plan:
    """`confluo upgrade` after UPGRADE_TASKS_FAILED: what `finalize --retry` does, for the upgrade to the inventory's
    version whose upgrade tasks failed; `reasons` (unreachable nodes, ...) refuse it."""
    target = str(inventory.target.version)
    ran = sorted({node.version for node in cluster.nodes})
    if ran != [target]:
        reasons.append(
            f"the upgrade to {', '.join(ran)} was approved and its upgrade tasks failed: it is finished first"
        )
    if reasons:
        raise RefusedError([*reasons, *_tasks_failed(cluster)], hint=_RETRY_HINT)
    return build_finalize_plan(inventory, cluster, retry=True)


def build_finalize_plan(inventory: Inventory, cluster: ClusterInfo, *, retry: bool) -> Plan:
    """Approve once every node runs the new version; after UPGRADE_TASKS_FAILED, `retry` runs the tasks again."""
    idle = _idle(inventory, cluster)
    if idle is not None:
        return idle
    source = cluster.original_version or "?"
    target = next((node.version for node in cluster.nodes if node.version != source), source)
    if cluster.state is ClusterState.UPGRADE_TASKS_FAILED:
        if not retry:
            raise RefusedError(_tasks_failed(cluster), hint=_RETRY_HINT)
        return Plan(
            inventory.cluster.name, source, target, goal="finalize", finalize=(RetryFinalize(_tasks(inventory)),)
        )
    if cluster.state is not ClusterState.READY_TO_RUN_UPGRADE_TASKS:
        raise RefusedError(
            [
                f"the cluster is {cluster.state.value} ({_versions(cluster)}): it can be finalized once every node "
                "runs the new version and is ACTIVE"
            ],
            hint="`confluo upgrade` upgrades the nodes that are left; nothing was changed",
        )
    finalize = Finalize(_settle(inventory), _tasks(inventory))
    return Plan(inventory.cluster.name, source, target, goal="finalize", finalize=(finalize,))
