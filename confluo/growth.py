"""Composition for `confluo add-node`: the inventory with the new node (the administrator's entry, or the donor's
copied and validated before anything is touched), the probes, the plan, and the inventory written once the new
node is ACTIVE. No click, no rich: the command line renders what these return."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from confluo.api.base import ApiError, ClusterInfo
from confluo.app import Session
from confluo.errors import InventoryError
from confluo.inventory import Inventory, load_inventory, load_inventory_text
from confluo.inventory.edit import NewEntry, with_new_node, write_if_unchanged
from confluo.inventory.load import InventoryReadError, read_text
from confluo.layout import node_paths
from confluo.loadbalancer.base import Growable, LoadBalancerError
from confluo.parallel import in_parallel
from confluo.plan.addnode import build_add_node_plan, install_paths
from confluo.plan.addnode_rules import AddNodeRequest, node, shared_home
from confluo.plan.model import Plan
from confluo.probe import newnode
from confluo.probe.balancer import probe_balancer
from confluo.probe.facts import NodeFacts
from confluo.probe.newnode_facts import AddNodeFacts, DonorFacts, NewHostFacts
from confluo.probe.node import probe_node

DONOR_FILES = ("conf/server.xml", "bin/setenv.sh", "bin/user.sh")


@dataclass(frozen=True)
class Options:
    """What `confluo add-node` was told about the new node."""

    new: str
    donor: str
    host: str | None = None
    address: str | None = None
    url: str | None = None
    ssh_port: int | None = None
    ssh_user: str | None = None
    run_as: str | None = None
    install_base: str | None = None
    home: str | None = None


@dataclass(frozen=True)
class Candidate:
    """The inventory the run uses, and the file's text before and after (after None: written by the admin)."""

    inventory: Inventory
    address: str
    before: str
    after: str | None

    @property
    def entry_written(self) -> bool:
        return self.after is None


def candidate(path: Path, options: Options) -> Candidate:
    """Raises InventoryError (exit 2) for the file as it is, a donor it lacks, or a new entry that is invalid."""
    current = load_inventory(path)
    names = [node.name for node in current.nodes]
    if options.donor not in names:
        raise InventoryError([f"--from {options.donor}: the inventory has no such node ({', '.join(names)})"],
                             source=str(path))  # fmt: skip
    try:
        before = read_text(path)
    except InventoryReadError as error:
        raise InventoryError([str(error)], source=str(path)) from None
    if options.new in names:
        written = next(node for node in current.nodes if node.name == options.new)
        return Candidate(current, options.address or written.host, before, None)
    address = options.address or options.host
    if address is None:
        raise InventoryError([f"{options.new} is not in the inventory: give its --host (or --address)"],
                             source=str(path))  # fmt: skip
    donor = next(node for node in current.nodes if node.name == options.donor)
    entry = NewEntry(
        options.new, options.host or address, options.url or _url_at(donor.url, address), options.ssh_port,
        options.ssh_user, options.run_as, options.install_base, options.home,
    )  # fmt: skip
    source = f"{path} (with {options.new} added as confluo would write it)"
    after = with_new_node(before, options.donor, entry, source=source)
    return Candidate(load_inventory_text(after, path, source=source), address, before, after)


def _url_at(url: str, address: str) -> str:
    """The donor's URL with the new node's address in place of its host."""
    parts = urlsplit(url)
    netloc = address + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def local_dir(session: Session) -> Path:
    return session.state_dir / "add-node"


def add_node_plan(session: Session, chosen: Candidate, options: Options, *, write_marker: bool) -> Plan:
    """The real read-only probes (and, in a real run, a marker file in the shared home when nothing there can be
    compared), then the plan or every reason to refuse."""
    inventory = session.inventory
    request = AddNodeRequest(options.new, options.donor, chosen.address, str(local_dir(session)),
                             chosen.entry_written, str(inventory.path))  # fmt: skip
    facts = _facts(session, request, write_marker)
    lb = session.balancer
    if lb is not None and inventory.load_balancer is not None:
        new, donor = node(inventory, options.new), node(inventory, options.donor)
        found = probe_balancer(replace(inventory, nodes=(new,)), lb)
        if isinstance(lb, Growable) and new.name not in found.states:
            try:
                found = replace(found, addition=lb.describe_add(new.balancer_server, donor.balancer_server))
            except LoadBalancerError as refused:
                found = replace(found, addition_refused=refused.message)
        facts = replace(facts, balancer=found)
    return build_add_node_plan(inventory, request, facts)


def _facts(session: Session, request: AddNodeRequest, write_marker: bool) -> AddNodeFacts:
    inventory = session.inventory
    donor_remote, new_remote = session.remotes[request.donor], session.remotes[request.new]
    version = str(inventory.target.version)

    def cluster() -> ClusterInfo | str:
        try:
            return session.api.cluster()
        except ApiError as exc:
            return exc.message

    def donor() -> NodeFacts:
        return probe_node(donor_remote, node_paths(donor_remote.node, version, login_home=""), DONOR_FILES)

    found_cluster, donor_node = in_parallel(
        ["cluster", "donor"], lambda job: cluster() if job == "cluster" else donor()
    )
    assert isinstance(donor_node, NodeFacts)
    donor_facts = newnode.probe_donor(donor_remote, donor_node) if donor_node.old_install else None
    facts = AddNodeFacts(
        cluster=found_cluster if isinstance(found_cluster, ClusterInfo) else None,
        cluster_error=found_cluster if isinstance(found_cluster, str) else None,
        donor=donor_facts or DonorFacts(donor_node),
        new_host=NewHostFacts(error="not probed: the donor could not be read"),
        local_free_mb=_free_mb(local_dir(session)),
    )
    shared = shared_home(inventory, facts)
    if donor_facts is None or shared is None:
        return facts
    _, donor_sha = newnode.shared_sha256(donor_remote, shared)
    marker = newnode.write_marker(donor_remote, shared) if write_marker and donor_sha is None else None
    try:
        install, link = install_paths(new_remote.node, donor_node.old_install or "")
        host = newnode.probe_new_host(new_remote, install, link, shared, marker)
    finally:
        if marker is not None:
            newnode.remove_marker(donor_remote, shared, marker)
    return replace(facts, donor=replace(donor_facts, shared_sha256=donor_sha, shared_home=shared), new_host=host)


def _free_mb(path: Path) -> int | None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free // (1024 * 1024)
    except OSError:
        return None


def write_inventory(chosen: Candidate) -> bool | None:
    """The new node's entry into the file, once it is ACTIVE: True when written, False when the file changed
    meanwhile (then nothing is written), None when there was nothing to write."""
    if chosen.after is None:
        return None
    return write_if_unchanged(chosen.inventory.path, chosen.before, chosen.after)
