"""The host each inventory node reaches must be the cluster node the inventory matches it with.

With two nodes' hosts swapped, confluo would stop one machine while it watches another in the cluster API. So
before anything changes, what the host is configured as — its node name (bin/setenv.sh), the node id its local
home keeps, the addresses its Connectors are bound to (conf/server.xml) — is compared with the cluster's entry for
that node. Anything that names another node, or another node's address, is a refusal naming both.
"""

from __future__ import annotations

from confluo.api.base import ClusterInfo, NodeInfo, cluster_entry
from confluo.inventory import Inventory
from confluo.probe.facts import Facts, NodeFacts

UNNAMED = "Not configured"  # the cluster's name for a node started without -Dconfluence.cluster.node.name


def identity_reasons(inventory: Inventory, facts: Facts) -> list[str]:
    cluster = facts.cluster
    if cluster is None:
        return []
    reasons = []
    for node in inventory.nodes:
        found = facts.for_node(node.name)
        entry = cluster_entry(cluster, node)
        if entry is None or not found.reachable:
            continue  # the cluster rules say it is not in the cluster; the node rules that it is unreachable
        evidence = _evidence(found, entry, _others(cluster, entry))
        if evidence:
            reasons.append(
                f"{node.name}: {node.host} is configured as another cluster node ({'; '.join(evidence)}), but the "
                f"cluster knows {node.name} as {_described(entry)}: the inventory points at another node's host"
            )
    return reasons


def _evidence(found: NodeFacts, entry: NodeInfo, others: dict[str, NodeInfo]) -> list[str]:
    evidence = []
    names = [name for name in found.configured_names if entry.name != UNNAMED and name != entry.name]
    if names:
        evidence.append(f"bin/setenv.sh names it {names[0]!r}")
    # An id of its own that the cluster shows otherwise proves nothing (a node restarted under another name gets a
    # new entry); another node's id does.
    owner = next((o for o in others.values() if found.configured_id and o.id == found.configured_id), None)
    if owner is not None:
        evidence.append(f"its local home's confluence.cfg.xml holds node id {owner.id!r}, the id of {_label(owner)}")
    for address in found.bound_addresses:
        if address != entry.ip_address and address in others:
            evidence.append(f"conf/server.xml binds it to {address}, the address of {_label(others[address])}")
    return evidence


def _others(cluster: ClusterInfo, entry: NodeInfo) -> dict[str, NodeInfo]:
    """The cluster's other nodes by address."""
    return {info.ip_address: info for info in cluster.nodes if info.id != entry.id and info.ip_address}


def _label(info: NodeInfo) -> str:
    return repr(info.name) if info.name != UNNAMED else f"the unnamed node {info.id!r}"


def _described(entry: NodeInfo) -> str:
    """'node1' (id '7a52c813') at 10.0.0.1"""
    named = repr(entry.name) if entry.name != UNNAMED else "an unnamed node"
    return f"{named} (id {entry.id!r}) at {entry.ip_address}" if entry.id else f"{named} at {entry.ip_address}"
