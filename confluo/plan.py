"""Pure: inventory + facts -> the ordered plan, or a refusal that lists every reason at once."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from confluo.archive import Archive
from confluo.cluster_api import ClusterInfo, ClusterState, NodeState
from confluo.errors import RefusedError
from confluo.inventory import Inventory, Node
from confluo.layout import INIT_PROPERTIES, node_paths
from confluo.probe import NodeFacts
from confluo.steps import PRESTAGE_STEPS, ROLLING_STEPS, NodeUpgrade, Preview, cluster_entry, prune_candidates
from confluo.versions import Version, rolling_upgrade_refusal

# JDBC drivers Atlassian does not bundle: they must be carried from the old installation.
DRIVER_DATABASES = ("mysql", "oracle")


@dataclass(frozen=True)
class Facts:
    """Everything the read-only probes found."""

    nodes: tuple[NodeFacts, ...]
    cluster: ClusterInfo | None
    cluster_error: str | None
    archive: Archive | None
    archive_error: str | None

    def for_node(self, name: str) -> NodeFacts:
        return next(facts for facts in self.nodes if facts.node == name)


@dataclass(frozen=True)
class PlannedStep:
    phase: str
    node: str | None
    name: str
    preview: Preview


@dataclass(frozen=True)
class Plan:
    cluster_name: str
    source_version: str
    target_version: str
    upgrades: tuple[NodeUpgrade, ...]
    order: tuple[str, ...]  # least busy first, as the cluster reports now; re-read before each node
    prune: dict[str, tuple[str, ...]]
    nothing_to_do: bool

    def steps(self) -> list[PlannedStep]:
        """Every step in the order the upgrade takes them."""
        by_name = {upgrade.node.name: upgrade for upgrade in self.upgrades}
        planned = [
            PlannedStep("pre-stage (all nodes in parallel)", u.node.name, step.name, step(u).preview())
            for u in self.upgrades
            for step in PRESTAGE_STEPS
        ]
        planned.append(
            PlannedStep("enable upgrade mode", None, "POST /rest/zdu/start", Preview(waits=("READY_TO_UPGRADE",)))
        )
        for name in self.order:
            planned.extend(
                PlannedStep(f"rolling: {name}", name, step.name, step(by_name[name]).preview())
                for step in ROLLING_STEPS
            )
        planned.append(
            PlannedStep(
                "finalize",
                None,
                "POST /rest/zdu/approve",
                Preview(waits=("READY_TO_RUN_UPGRADE_TASKS before, then the upgrade tasks run until STABLE",)),
            )
        )
        for node, paths in self.prune.items():
            if paths:
                planned.append(PlannedStep("prune old installations", node, "remove", Preview(commands=tuple(paths))))
        return planned


def build_plan(inventory: Inventory, facts: Facts) -> Plan:
    target = str(inventory.target.version)
    reasons: list[str] = []
    reasons += _node_reasons(inventory, facts)
    source = _source_version(facts, reasons)
    if _already_on_target(inventory, facts, target):
        return Plan(inventory.cluster.name, target, target, (), (), {}, nothing_to_do=True)
    if len(inventory.nodes) < 2:
        reasons.append(
            f"the inventory has {len(inventory.nodes)} node; a rolling upgrade needs at least 2 so one serves "
            "while the other is upgraded"
        )
    if source is not None:
        refusal = rolling_upgrade_refusal(source, inventory.target.version)
        if refusal:
            reasons.append(f"{source} -> {target}: {refusal}")
    reasons += _cluster_reasons(inventory, facts)
    reasons += _archive_reasons(inventory, facts)
    if reasons:
        raise RefusedError(
            reasons,
            hint="fix these, then run `confluo plan` again; no host and no cluster setting was changed",
        )
    assert facts.archive is not None and facts.cluster is not None and source is not None
    upgrades = tuple(
        _node_upgrade(inventory, node, facts.for_node(node.name), facts.archive) for node in inventory.nodes
    )
    return Plan(
        cluster_name=inventory.cluster.name,
        source_version=str(source),
        target_version=target,
        upgrades=upgrades,
        order=least_busy_order(inventory.nodes, facts.cluster),
        prune=_prune(inventory, upgrades, facts),
        nothing_to_do=False,
    )


def least_busy_order(nodes: Sequence[Node], cluster: ClusterInfo, down: Collection[str] = ()) -> tuple[str, ...]:
    """Names: nodes that serve nobody now first (`down`, or not ACTIVE: upgrading them costs no capacity), then
    fewest running tasks plus active users; the inventory's order breaks ties."""

    def load(item: tuple[int, Node]) -> tuple[bool, int, int]:
        index, node = item
        info = cluster_entry(cluster, node)
        serving = node.name not in down and info is not None and info.state is NodeState.ACTIVE
        return (serving, info.load if info else 0, index)

    return tuple(node.name for _, node in sorted(enumerate(nodes), key=load))


def _node_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    reasons = []
    for node in inventory.nodes:
        found = facts.for_node(node.name)
        if not found.reachable:
            reasons.append(f"{node.name}: unreachable: {found.error}")
            continue
        where = node.install.base if node.install.layout == "symlink" else node.install.path
        if found.old_install is None:
            reasons.append(f"{node.name}: no Confluence installation found at {where}")
        elif found.installed_version is None:
            reasons.append(f"{node.name}: cannot read the installed version in {found.old_install}")
        if not found.home_exists:
            reasons.append(f"{node.name}: the local home {node.home} does not exist")
        if found.sudo_denied:
            reasons.append(f"{node.name}: `sudo -n` is not allowed for {', '.join(found.sudo_denied)}")
        if found.free_mb is not None and found.free_mb < node.min_free_disk_mb:
            reasons.append(
                f"{node.name}: only {found.free_mb} MB free for the new installation, "
                f"{node.min_free_disk_mb} MB needed (min_free_disk_mb)"
            )
        if (
            facts.archive is not None
            and found.staging_free_mb is not None
            and found.staged_bytes != facts.archive.size
            and found.staging_free_mb * 1024 * 1024 < facts.archive.size
        ):
            reasons.append(
                f"{node.name}: only {found.staging_free_mb} MB free in the login user's home for the archive"
            )
        if found.new_install_exists and found.new_install_version is None and found.old_install is not None:
            paths = node_paths(
                node, str(inventory.target.version), found.login_home, inventory.target.staging_shared_home
            )
            reasons.append(
                f"{node.name}: {paths.new_install} exists but is not a {inventory.target.version} installation; "
                "confluo will not write over it"
            )
    return reasons


def _source_version(facts: Facts, reasons: list[str]) -> Version | None:
    versions = {f.installed_version for f in facts.nodes if f.installed_version}
    if len(versions) > 1:
        listing = ", ".join(f"{f.node}={f.installed_version}" for f in facts.nodes if f.installed_version)
        reasons.append(f"the nodes run different versions ({listing})")
        return None
    if not versions:
        return None
    version = versions.pop()
    try:
        return Version.parse(version)
    except ValueError as exc:
        reasons.append(f"installed version {version!r}: {exc}")
        return None


def _already_on_target(inventory: Inventory, facts: Facts, target: str) -> bool:
    if not all(f.reachable and f.installed_version == target for f in facts.nodes):
        return False
    cluster = facts.cluster
    return (
        cluster is not None
        and cluster.state is ClusterState.STABLE
        and all(
            (info := cluster_entry(cluster, node)) is not None and info.version == target for node in inventory.nodes
        )
    )


def _cluster_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    cluster = facts.cluster
    if cluster is None:
        return [f"cluster API: {facts.cluster_error}"]
    reasons = []
    if cluster.state is not ClusterState.STABLE:
        mode = "upgrade mode is on" if cluster.upgrade_mode else "upgrade mode is off"
        reasons.append(f"the cluster is {cluster.state.value} ({mode}), not STABLE")
    for info in cluster.nodes:
        if info.state is NodeState.ERROR:
            reasons.append(f"cluster node {info.name} ({info.ip_address}) is in ERROR")
    matched = {node.name: cluster_entry(cluster, node) for node in inventory.nodes}
    listing = ", ".join(f"{info.name} ({info.ip_address}, id {info.id})" for info in cluster.nodes)
    for name, entry in matched.items():
        if entry is None:
            reasons.append(f"{name} is in the inventory but not in the cluster (cluster nodes: {listing})")
    for found in facts.nodes:
        entry = matched.get(found.node)
        if entry is not None and found.installed_version and entry.version != found.installed_version:
            reasons.append(
                f"{found.node} runs {entry.version} but {found.installed_version} is installed: it was not "
                "restarted since its installation changed"
            )
    known_ids = {entry.id for entry in matched.values() if entry is not None}
    for info in cluster.nodes:
        if info.id not in known_ids:
            reasons.append(f"the cluster has a node {info.name} ({info.ip_address}) that the inventory does not list")
    return reasons


def _archive_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    if facts.archive is None:
        return [f"archive: {facts.archive_error}"]
    expected = inventory.target.sha256
    if expected and expected.lower() != facts.archive.sha256:
        return [f"archive {facts.archive.path}: sha256 is {facts.archive.sha256}, the inventory says {expected}"]
    return []


def _node_upgrade(inventory: Inventory, node: Node, found: NodeFacts, archive: Archive) -> NodeUpgrade:
    assert found.old_install is not None
    customizations = tuple(rel for rel in inventory.customizations if rel in found.present)
    drivers = found.drivers if inventory.database in DRIVER_DATABASES else ()
    return NodeUpgrade(
        node=node,
        paths=node_paths(node, archive.version, found.login_home, inventory.target.staging_shared_home),
        old_install=found.old_install,
        target_version=archive.version,
        archive_sha256=archive.sha256,
        archive_bytes=archive.size,
        local_archive=str(archive.path),
        shared_staging=inventory.target.staging_shared_home is not None,
        customizations=customizations,
        drivers=drivers,
        stock_files=archive.stock_files,
        old_files={rel: text for rel, text in found.files.items() if rel != INIT_PROPERTIES},
        login_user=found.login_user,
    )


def _prune(inventory: Inventory, upgrades: Sequence[NodeUpgrade], facts: Facts) -> dict[str, tuple[str, ...]]:
    pruned = {}
    for upgrade in upgrades:
        releases = facts.for_node(upgrade.node.name).releases
        after = tuple(sorted(set(releases) | {upgrade.paths.new_install.rsplit("/", 1)[-1]}))
        pruned[upgrade.node.name] = tuple(
            prune_candidates(
                after,
                inventory.keep_releases,
                upgrade.paths.new_install,
                upgrade.old_install,
                upgrade.paths.install_root,
            )
        )
    return pruned
