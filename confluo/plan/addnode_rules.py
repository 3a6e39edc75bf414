"""Why `confluo add-node` refuses, every reason at once and before any change, and what it notes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from confluo import identity
from confluo.api.base import ClusterInfo, ClusterState, NodeState, cluster_entry
from confluo.inventory import Inventory, Node
from confluo.plan.rules import MULTICAST
from confluo.probe.newnode_facts import AddNodeFacts, Mount

MB = 1024 * 1024


@dataclass(frozen=True)
class AddNodeRequest:
    new: str
    donor: str
    address: str  # the new node's own address: its Connector binds it, the peers list names it
    local_dir: str  # on this machine, where the copies pass through
    entry_written: bool  # the administrator wrote the new node's entry: the inventory is used as it is
    inventory_path: str


def node(inventory: Inventory, name: str) -> Node:
    return next(n for n in inventory.nodes if n.name == name)


def shared_home(inventory: Inventory, facts: AddNodeFacts) -> str | None:
    """Where the cluster's shared home is: as the donor's confluence.cfg.xml names it, else the inventory's."""
    cfg = facts.donor.cfg_xml or ""
    named = [identity.cfg_property(cfg, key) for key in identity.SHARED_HOME_PROPERTIES]
    found = next((value for value in named if value), None)
    return found or (str(inventory.target.shared_home) if inventory.target.shared_home else None)


def cluster_reasons(cluster: ClusterInfo | None, error: str | None) -> list[str]:
    if cluster is None:
        return [f"cluster API: {error}"]
    if cluster.upgrade_mode or cluster.state is not ClusterState.STABLE:
        mode = "on" if cluster.upgrade_mode else "off"
        return [f"the cluster is {cluster.state.value} with upgrade mode {mode}: a node joins a STABLE cluster only"]
    return []


def donor_reasons(inventory: Inventory, request: AddNodeRequest, facts: AddNodeFacts) -> list[str]:
    donor, found = node(inventory, request.donor), facts.donor
    if not found.node.reachable:
        return [f"{donor.name} (the donor): {found.node.error}"]
    if found.error:
        return [f"{donor.name} (the donor): {found.error}"]
    reasons = []
    if found.node.old_install is None or found.node.installed_version is None:
        reasons.append(f"{donor.name} (the donor): no Confluence installation with a readable version found")
    if found.node.sudo_denied:
        reasons.append(f"{donor.name} (the donor): `sudo -n` is not allowed for {', '.join(found.node.sudo_denied)}")
    entry = cluster_entry(facts.cluster, donor) if facts.cluster else None
    if facts.cluster is not None and (entry is None or entry.state is not NodeState.ACTIVE):
        state = entry.state.value if entry else "not in the cluster"
        reasons.append(f"{donor.name} (the donor) is {state}: the copy is made from a node ACTIVE in the cluster")
    if found.cfg_xml is None:
        reasons.append(f"{donor.name} (the donor): cannot read {donor.home}/confluence.cfg.xml (as root, with tar)")
    if found.install_bytes is None or found.home_bytes is None:
        reasons.append(f"{donor.name} (the donor): could not tell the size of its installation and local home")
    return reasons


def identity_reasons(inventory: Inventory, request: AddNodeRequest, facts: AddNodeFacts) -> list[str]:
    """The new node's name and address are its own: neither the cluster nor another node has them."""
    new, reasons = node(inventory, request.new), []
    # A re-run after a failed start finds its own copy there, and the node it stopped again OFFLINE: its own.
    ours = facts.new_host.install_entry == "clone"
    listed = [n for n in facts.cluster.nodes if not (ours and n.state is NodeState.OFFLINE)] if facts.cluster else []
    if any(n.name == new.name for n in listed):
        reasons.append(f"{new.name}: the cluster already has a node of that name")
    if any(n.ip_address in (request.address, new.host) for n in listed):
        reasons.append(f"{new.name}: the cluster already has a node at {request.address}")
    others = [n for n in inventory.nodes if n.name != new.name]
    if any(n.host in (new.host, request.address) for n in others):
        reasons.append(f"{new.name}: the inventory already has a node at {new.host}")
    if new.service.kind != "script":
        reasons.append(
            f"{new.name}: service kind {new.service.kind}: add-node does not install a service definition yet; "
            f"install {new.service.definition} on the new host as on {request.donor}, or use service kind script"
        )
    return reasons


def new_host_reasons(inventory: Inventory, request: AddNodeRequest, facts: AddNodeFacts, install: str) -> list[str]:
    new, host = node(inventory, request.new), facts.new_host
    if not host.reachable:
        return [f"{new.name} ({new.host}): {host.error}"]
    reasons = []
    if host.sudo_denied:
        reasons.append(f"{new.name}: `sudo -n` is not allowed for {', '.join(host.sudo_denied)}")
    if host.install_entry == "other" or (host.link_entry and host.install_entry != "clone"):
        reasons.append(f"{new.name}: something is at {install} already; confluo copies only onto nothing")
    if host.home_entry == "other":
        reasons.append(f"{new.name}: {new.home} is not empty; the new node's local home must be absent or empty")
    reasons += shared_home_reasons(inventory, facts)
    return reasons


def shared_home_reasons(inventory: Inventory, facts: AddNodeFacts) -> list[str]:
    shared, donor, host = shared_home(inventory, facts), facts.donor, facts.new_host
    if shared is None:
        return ["the shared home: neither the donor's confluence.cfg.xml nor target.shared_home names it"]
    if not host.shared_found:
        return [f"the shared home: {shared} is not a folder on the new host (it must be mounted at the same path)"]
    if donor.shared_sha256 and host.shared_sha256:
        if donor.shared_sha256 != host.shared_sha256:
            return [f"the shared home: {shared}/confluence.cfg.xml differs between the donor and the new host: "
                    "another folder is mounted there"]  # fmt: skip
        return []
    if host.marker_seen is False:
        return [f"the shared home: a file the donor wrote into {shared} is not seen from the new host: another "
                "folder is there, not the cluster's shared home"]  # fmt: skip
    return []


def disk_reasons(inventory: Inventory, request: AddNodeRequest, facts: AddNodeFacts) -> list[str]:
    donor, host, new = facts.donor, facts.new_host, node(inventory, request.new)
    if donor.install_bytes is None or donor.home_bytes is None or not host.reachable:
        return []
    largest = max(donor.install_bytes, donor.home_bytes) // MB + 1
    needs: dict[str, int] = defaultdict(int)
    mounts: dict[str, Mount] = {}
    for mount, mb in ((host.install_mount, donor.install_bytes // MB + new.min_free_disk_mb),
                      (host.home_mount, donor.home_bytes // MB + 1), (host.login_mount, largest)):  # fmt: skip
        if mount is not None:
            needs[mount.mount] += mb
            mounts[mount.mount] = mount
    reasons = [
        f"{new.name}: {mounts[where].free_mb} MB free on {where}, the copies need {mb} MB there"
        for where, mb in needs.items()
        if mounts[where].free_mb < mb
    ]
    if donor.login_free_mb is not None and donor.login_free_mb < largest:
        reasons.append(f"{request.donor} (the donor): {donor.login_free_mb} MB free in its login user's home, "
                       f"the copies need {largest} MB there")  # fmt: skip
    if facts.local_free_mb is not None and facts.local_free_mb < largest:
        reasons.append(f"this machine: {facts.local_free_mb} MB free in {request.local_dir}, the copies need "
                       f"{largest} MB there")  # fmt: skip
    return reasons


def add_node_notes(inventory: Inventory, request: AddNodeRequest, facts: AddNodeFacts) -> tuple[str, ...]:
    cfg, new = facts.donor.cfg_xml or "", node(inventory, request.new)
    pools = [f"{key}={value}" for key in identity.POOL_PROPERTIES if (value := identity.cfg_property(cfg, key))]
    notes = [
        f"the database must allow {pools[0].split('=')[1]} more connections ({new.name}'s pool, {pools[0]} as on "
        f"{request.donor}); confluo cannot read the database's limit from here"
        if pools
        else "the database must allow one more node's connection pool (confluence.cfg.xml sets no pool size: "
        "Confluence's default); confluo cannot read the database's limit from here",
        f"{new.name} recovers its search index at start-up (from the shared home's snapshot or another node): "
        "its index, journal, logs and caches are not copied",
    ]
    join = identity.cfg_property(cfg, identity.JOIN_TYPE_PROPERTY)
    if join == "multicast":
        notes.append(MULTICAST)
    if join == "tcp_ip" and identity.cfg_property(cfg, identity.PEERS_PROPERTY) is not None:
        notes.append(f"{new.name}'s confluence.cluster.peers lists {request.address}; the other nodes' do not yet: "
                     "add it on each, and they read it at their next restart (`confluo restart`)")  # fmt: skip
    if in_balancer(inventory, request, facts):
        notes.append(f"the load balancer already has {new.name}'s server `{new.balancer_server}`: confluo puts it in "
                     "the pool once it is ACTIVE")  # fmt: skip
    elif facts.balancer is not None and facts.balancer.addition is not None:
        notes.append(f"the load balancer: once {new.name} is ACTIVE, confluo adds its server out of the pool, set up "
                     f"as {request.donor}'s, then puts it in")  # fmt: skip
    else:
        refused = facts.balancer.addition_refused if facts.balancer is not None else None
        notes.append(balancer_note(inventory, new, request.address, refused))
    if facts.new_host.marker_seen is None and not (facts.donor.shared_sha256 and facts.new_host.shared_sha256):
        notes.append("the shared home is compared in the real run (a file confluo writes there and removes)")
    if request.entry_written:
        notes.append(f"{new.name}'s entry in {request.inventory_path} is used as written")
    else:
        notes.append(f"once {new.name} is ACTIVE, {request.inventory_path} gains its entry (comments kept)")
    return tuple(notes)


def in_balancer(inventory: Inventory, request: AddNodeRequest, facts: AddNodeFacts) -> bool:
    """The administrator added the new node's server to the load balancer ahead of it."""
    return inventory.load_balancer is not None and facts.balancer is not None and request.new in facts.balancer.states


def balancer_note(inventory: Inventory, new: Node, address: str, refused: str | None = None) -> str:
    port = new.url.rsplit(":", 1)[-1] if new.url.count(":") > 1 else "80"
    lines = {
        "haproxy": f"server {new.balancer_server} {address}:{port} check cookie {new.balancer_server}",
        "nginx": f"server {address}:{port};",
        "apache": f"BalancerMember {new.url} route={new.balancer_server}",
    }
    why_not = {
        "haproxy": "confluo adds one to HAProxy when the inventory gives its `config`",
        "apache": "confluo does not add one to Apache: the balancer-manager's additions are lost at its next restart",
        "command": "your own commands cannot add one",
    }
    kind = inventory.load_balancer.kind if inventory.load_balancer else "haproxy"
    line = lines.get(kind, f"{new.url}")
    reason = refused or why_not.get(kind, "")
    return (f"the load balancer: add {new.name}'s server yourself, e.g. `{line}` ({reason}); with it there before, "
            "confluo puts it in the pool once the node is ACTIVE")  # fmt: skip
