"""The preflight rules: each reads the facts and returns the reasons to refuse (empty: no objection)."""

from __future__ import annotations

from urllib.parse import urlsplit

from confluo.api.base import ClusterInfo, ClusterState, NodeState, cluster_entry
from confluo.errors import RefusedError
from confluo.inventory import Inventory, Node
from confluo.layout import node_paths
from confluo.probe.facts import Facts
from confluo.versions import Version


def node_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    reasons = []
    for node in inventory.nodes:
        found = facts.for_node(node.name)
        if not found.reachable:
            reasons.append(f"{node.name}: {found.error}")
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
        if found.forces_cfg_update:
            reasons.append(
                f"{node.name}: ATL_FORCE_CFG_UPDATE=true in {found.forces_cfg_update}: confluence.cfg.xml is written "
                "again at each start, which in a rolling upgrade moves finalizedBuildNumber to the new build before "
                "finalize, and the node then fails its next start; take it out for the upgrade"
            )
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


# States of an upgrade that a run can continue from, with upgrade mode on since an earlier run.
RESUMABLE = frozenset(
    {
        ClusterState.READY_TO_UPGRADE,
        ClusterState.MIXED,
        ClusterState.READY_TO_RUN_UPGRADE_TASKS,
        ClusterState.UPGRADE_TASKS_FAILED,
    }
)


def resuming(facts: Facts, target: str) -> str | None:
    """The version an upgrade in progress started from, when this run continues it; else None."""
    cluster = facts.cluster
    if cluster is None or not cluster.upgrade_mode or cluster.state not in RESUMABLE:
        return None
    original = cluster.original_version
    if not original or original == target or facts.resumable_from != original:
        return None  # upgrade mode was turned on by someone else, or for another upgrade: not ours to continue
    return original


def source_version(facts: Facts, target: str, reasons: list[str]) -> Version | None:
    versions = {f.installed_version for f in facts.nodes if f.installed_version}
    original = resuming(facts, target)
    if original is not None and versions <= {original, target}:
        versions = {original}  # some nodes were upgraded by an earlier run: the source is where it started
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


def already_on_target(inventory: Inventory, facts: Facts, target: str) -> bool:
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


def cluster_or_refuse(facts: Facts) -> ClusterInfo:
    """The cluster as the API answered; a refusal when it did not."""
    if facts.cluster is None:
        raise RefusedError([f"cluster API: {facts.cluster_error}"])
    return facts.cluster


def cluster_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    cluster = facts.cluster
    if cluster is None:
        return [f"cluster API: {facts.cluster_error}"]
    reasons = []
    if cluster.state is not ClusterState.STABLE and resuming(facts, str(inventory.target.version)) is None:
        mode = "upgrade mode is on" if cluster.upgrade_mode else "upgrade mode is off"
        reasons.append(
            f"the cluster is {cluster.state.value} ({mode}), not STABLE, and no confluo run from this machine "
            "started an upgrade to this version: `confluo status` shows the nodes; `confluo cancel` or "
            "`confluo finalize` end an upgrade in progress"
        )
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
        # An OFFLINE node is listed with the version it last ran: a stopped node is no contradiction.
        stale = entry is not None and entry.state is NodeState.OFFLINE
        if entry is not None and not stale and found.installed_version and entry.version != found.installed_version:
            reasons.append(
                f"{found.node} runs {entry.version} but {found.installed_version} is installed: it was not "
                "restarted since its installation changed"
            )
    known_ids = {entry.id for entry in matched.values() if entry is not None}
    for info in cluster.nodes:
        if info.id not in known_ids:
            reasons.append(f"the cluster has a node {info.name} ({info.ip_address}) that the inventory does not list")
    return reasons


def archive_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    if facts.archive is None:
        return [f"archive: {facts.archive_error}"]
    expected = inventory.target.sha256
    if expected and expected.lower() != facts.archive.sha256:
        return [f"archive {facts.archive.path}: sha256 is {facts.archive.sha256}, the inventory says {expected}"]
    return []


def balancer_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    """A load balancer that cannot be reached, or that does not know a node, would leave users on a stopping node."""
    if inventory.load_balancer is None:
        return []
    if facts.balancer is None:
        return [f"the {inventory.load_balancer.kind} load balancer was not read"]
    return list(facts.balancer.problems)


def notes(inventory: Inventory) -> tuple[str, ...]:
    """What the administrator should know before saying yes, though it is no reason to refuse."""
    api_node = next((node for node in inventory.nodes if _same_origin(node.url, inventory.cluster.api_url)), None)
    if api_node is None:
        return ()
    others = [node.name for node in inventory.nodes if node is not api_node]
    return (
        f"cluster.api_url is {api_node.name}'s own URL: while {api_node.name} is stopped, confluo asks "
        f"{', '.join(others)} instead (every node serves the ZDU API); the load balancer's URL avoids that",
    )


def _same_origin(one: str, other: str) -> bool:
    def origin(url: str) -> tuple[str, str, int | None]:
        parts = urlsplit(url)
        default = 443 if parts.scheme == "https" else 80
        return parts.scheme, (parts.hostname or "").lower(), parts.port or default

    return origin(one) == origin(other)


MULTICAST = (
    "cluster discovery is multicast: a node that rejoins can send the others into cluster panic, and every node "
    "rejoins in a rolling run (Atlassian's advice: TCP/IP discovery)"
)


def discovery_notes(inventory: Inventory, facts: Facts) -> tuple[str, ...]:
    """Each node's discovery as its confluence.cfg.xml says: multicast warned about; with TCP/IP, the nodes that a
    node's peers do not list (it would not find them when it rejoins)."""
    found = {node.name: facts.for_node(node.name) for node in inventory.nodes}
    notes = [MULTICAST] if any(f.join_type == "multicast" for f in found.values()) else []
    for node in inventory.nodes:
        peers = set(found[node.name].peers)
        if found[node.name].join_type != "tcp_ip" or not peers:
            continue
        missing = [
            f"{other.name} ({_addresses(other, facts)[0]})"
            for other in inventory.nodes
            if other is not node and not set(_addresses(other, facts)) & peers
        ]
        if missing:
            notes.append(
                f"{node.name}'s confluence.cluster.peers ({', '.join(sorted(peers))}) does not list "
                f"{', '.join(missing)}: add {'them' if len(missing) > 1 else 'it'} there, as on every node; it is "
                "read at the node's next start"
            )
    return tuple(notes)


def _addresses(node: Node, facts: Facts) -> list[str]:
    """The node's address as the cluster lists it (what its peers name), then its host."""
    entry = cluster_entry(facts.cluster, node) if facts.cluster is not None else None
    return [*([entry.ip_address] if entry is not None else []), node.host]
