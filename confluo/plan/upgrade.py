"""The upgrade plan: every node pre-staged, upgrade mode on, one node at a time, finalize, prune.

Every step gets its parameters here (which installation, which version to wait for, which service text), so the
same StartNode that starts the new installation can start the old one in the node's rollback.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from confluo.api.base import ClusterState
from confluo.errors import RefusedError
from confluo.inventory import Inventory, Node
from confluo.layout import INIT_PROPERTIES, NodePaths, node_paths
from confluo.plan.carry import ShellSyntax, carry_reasons, home_reasons, node_carries
from confluo.plan.host_identity import identity_reasons
from confluo.plan.model import NodeWork, Plan
from confluo.plan.order import least_busy_order
from confluo.plan.pool import PoolPlan, balancer_notes, with_reconcile
from confluo.plan.recover import build_tasks_again_plan
from confluo.plan.rules import (
    already_on_target,
    archive_reasons,
    balancer_reasons,
    cluster_reasons,
    discovery_notes,
    node_reasons,
    notes,
    source_version,
)
from confluo.plan.synchrony import synchrony_notes, synchrony_reasons, synchrony_works
from confluo.probe.facts import SERVICE_FILE_KEY, Archive, Facts, NodeFacts
from confluo.steps.base import Host, Step
from confluo.steps.cluster import CancelUpgradeMode, EnableUpgradeMode, Finalize
from confluo.steps.configure import CarriedFile, CarryCustomizations, CopyDriver, PointHome
from confluo.steps.index import index_caught_up
from confluo.steps.repoint import Repoint
from confluo.steps.service import StartNode, StopNode
from confluo.steps.stage import ExtractRelease, PruneReleases, TransferArchive, prune_candidates
from confluo.versions import rolling_upgrade_refusal

# JDBC drivers Atlassian does not bundle: they must be carried from the old installation.
DRIVER_DATABASES = ("mysql", "oracle")


def build_plan(inventory: Inventory, facts: Facts, *, shell_syntax: ShellSyntax | None = None) -> Plan:
    """`shell_syntax` checks a merged shell file (bash -n) before the plan may write it."""
    target = str(inventory.target.version)
    reasons: list[str] = []
    reasons += node_reasons(inventory, facts)
    if facts.cluster is not None and facts.cluster.state is ClusterState.UPGRADE_TASKS_FAILED:
        # Approved already (upgrade mode is off): all that is left is to run its upgrade tasks again.
        return with_reconcile(build_tasks_again_plan(inventory, facts.cluster, reasons), inventory, facts)
    source = source_version(facts, target, reasons)
    if already_on_target(inventory, facts, target):
        done = Plan(inventory.cluster.name, target, target, nothing_to_do=True)
        return with_reconcile(done, inventory, facts)  # a node an interrupted run left out is still put back
    if len(inventory.nodes) < 2:
        reasons.append(
            f"the inventory has {len(inventory.nodes)} node; a rolling upgrade needs at least 2 so one serves "
            "while the other is upgraded"
        )
    if source is not None:
        refusal = rolling_upgrade_refusal(source, inventory.target.version)
        if refusal:
            reasons.append(f"{source} -> {target}: {refusal}")
    reasons += cluster_reasons(inventory, facts)
    reasons += identity_reasons(inventory, facts)
    reasons += archive_reasons(inventory, facts)
    reasons += balancer_reasons(inventory, facts)
    reasons += home_reasons(inventory, facts)
    reasons += carry_reasons(inventory, facts)
    reasons += synchrony_reasons(inventory, facts)
    carried: dict[str, tuple[CarriedFile, ...]] = {}
    if not reasons and source is not None:
        carried, carry_refusals = node_carries(inventory, facts, str(source), shell_syntax)
        reasons += carry_refusals
    if reasons:
        raise RefusedError(
            reasons,
            hint="fix these, then run `confluo plan` again; no host and no cluster setting was changed",
        )
    assert facts.archive is not None and facts.cluster is not None and source is not None
    pool = PoolPlan(inventory, facts)
    nodes = [
        _NodeUpgrade(inventory, node, facts.for_node(node.name), facts.archive, str(source), carried.get(node.name, ()),
                     pool)
        for node in inventory.nodes
    ]  # fmt: skip
    by_name = {n.node.name: n for n in nodes}
    settle = max(node.timeouts.start_seconds for node in inventory.nodes)
    return Plan(
        cluster_name=inventory.cluster.name,
        source_version=str(source),
        target_version=target,
        prestage=tuple(NodeWork(n.node.name, n.prestage()) for n in nodes),
        shared_staging=inventory.target.staging_shared_home is not None,
        reconcile=pool.reconcile({n.node.name: n.host for n in nodes}),
        before=(EnableUpgradeMode(settle_seconds=settle),),
        rolling=tuple(
            NodeWork(name, by_name[name].rolling(), by_name[name].rollback(), upgraded=by_name[name].upgraded)
            for name in least_busy_order(inventory.nodes, facts.cluster)
        ),
        cancel=(CancelUpgradeMode(settle_seconds=settle),),
        finalize=(
            Finalize(
                settle_seconds=settle,
                tasks_seconds=max(node.timeouts.finalize_seconds for node in inventory.nodes),
            ),
        ),
        prune=_prune(inventory, nodes, facts),
        new_installs={n.node.name: n.new_install for n in nodes},
        notes=(
            *notes(inventory),
            *discovery_notes(inventory, facts),
            *balancer_notes(facts),
            *synchrony_notes(inventory, facts),
        ),
        synchrony=synchrony_works(inventory, facts),
    )


class _NodeUpgrade:
    """The parameters of one node's steps, fixed before the first change."""

    def __init__(
        self,
        inventory: Inventory,
        node: Node,
        found: NodeFacts,
        archive: Archive,
        source: str,
        carried: tuple[CarriedFile, ...],
        pool: PoolPlan,
    ) -> None:
        assert found.old_install is not None
        self.node = node
        self.pool = pool
        self.host = Host(node, found.login_user)
        self.caught_up = index_caught_up(self.host, inventory.nodes)
        self.found = found
        self.archive = archive
        self.source = source
        self.paths: NodePaths = node_paths(
            node, archive.version, found.login_home, inventory.target.staging_shared_home
        )
        # Resumed after this node was upgraded: it runs the target, and its way back is the source installation.
        self.upgraded = found.installed_version == archive.version
        self.new_install = self.paths.new_install
        self.old_install = (
            source_install(node, found, self.paths.install_root, source) if self.upgraded else found.old_install
        )
        self.shared = inventory.target.staging_shared_home is not None
        self.carried = carried
        # A pristine copy of each customizable file the release ships, for the next upgrade's merge.
        self.stock_files = tuple(
            rel for rel in (INIT_PROPERTIES, *inventory.customizations) if rel in archive.stock_files
        )
        self.drivers = found.drivers if inventory.database in DRIVER_DATABASES else ()

    def prestage(self) -> tuple[Step, ...]:
        if self.upgraded:
            return ()
        return (
            TransferArchive(
                self.host,
                local_archive=str(self.archive.path),
                sha256=self.archive.sha256,
                size=self.archive.size,
                staged=self.paths.staged_archive,
                shared=self.shared,
            ),
            ExtractRelease(
                self.host, self.paths.staged_archive, self.new_install, self.archive.version, self.stock_files
            ),
        )

    def _repoint(self) -> Repoint:
        assert self.old_install is not None
        return Repoint(
            self.host,
            from_install=self.old_install,
            to_install=self.new_install,
            link=self.paths.current_link,
            definition_text=self.found.files.get(SERVICE_FILE_KEY, ""),
        )

    def _service_install(self, install: str) -> str:
        return self.paths.current_link or install

    def _start_new(self) -> StartNode:
        return StartNode(self.host, self.new_install, self._service_install(self.new_install), self.archive.version)

    def rolling(self) -> tuple[Step, ...]:
        back = (self.caught_up, *self.pool.put_back(self.host))
        if self.upgraded:
            return (self._start_new(), *back)  # started if a run stopped before it came back; else already done
        assert self.old_install is not None
        return (
            *self.pool.take_out(self.host),
            StopNode(self.host, self.old_install, self._service_install(self.old_install)),
            PointHome(self.host, self.new_install, self.archive.stock_files.get(INIT_PROPERTIES, "")),
            CopyDriver(self.host, self.old_install, self.new_install, self.drivers),
            CarryCustomizations(self.host, self.old_install, self.new_install, self.carried),
            self._repoint(),
            self._start_new(),
            *back,
        )

    def rollback(self) -> tuple[Step, ...]:
        """Back on the old installation: stopped, repointed, started and ACTIVE on the source version."""
        if self.old_install is None:
            return ()
        # The service definition as the forward repoint leaves it: the text the way back starts from.
        definition = self._repoint().reversed().definition_text
        return (
            *self.pool.maint_only(self.host),  # it has failed: nothing to drain for, out at once
            *back_to_source(self.host, self.paths, self.new_install, self.old_install, definition, self.source),
            *self.pool.put_back(self.host),
        )


def back_to_source(
    host: Host, paths: NodePaths, in_use: str, source_install: str, definition_text: str, source: str
) -> tuple[Step, ...]:
    """The steps that put a node back on `source_install`, in a failed run's rollback as in `confluo rollback`:
    stopped (whichever of the two installations runs), repointed, started and ACTIVE on `source`.
    `definition_text`: the service definition while `in_use` is the installation it names."""

    def service_install(install: str) -> str:
        return paths.current_link or install

    back = Repoint(
        host, from_install=in_use, to_install=source_install, link=paths.current_link, definition_text=definition_text
    )
    return (
        StopNode(host, in_use, service_install(in_use), also_watched=(source_install,)),
        back,
        StartNode(host, source_install, service_install(source_install), source),
    )


def source_install(node: Node, found: NodeFacts, root: str, source: str) -> str | None:
    """Where the source version is installed: the inventory's path in the plain layout, else the release
    directory named for it beside the others."""
    if node.install.layout == "plain" and node.install.path is not None:
        return str(node.install.path)
    for name in (source, f"atlassian-confluence-{source}"):
        if name in found.releases:
            return posixpath.join(root, name)
    return None


def _prune(inventory: Inventory, nodes: Sequence[_NodeUpgrade], facts: Facts) -> tuple[Step, ...]:
    steps: list[Step] = []
    for upgrade in nodes:
        releases = facts.for_node(upgrade.node.name).releases
        after = tuple(sorted(set(releases) | {posixpath.basename(upgrade.new_install)}))
        paths = prune_candidates(
            after,
            inventory.keep_releases,
            upgrade.new_install,
            upgrade.old_install or upgrade.new_install,
            upgrade.paths.install_root,
        )
        if paths:
            steps.append(PruneReleases(upgrade.host, tuple(paths)))
    return tuple(steps)
