"""Composition root: builds the pieces from the inventory and the options, and wires them together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluo import archive as archive_module
from confluo.cluster_api import ApiAuth, ApiError, ClusterApi, ClusterInfo
from confluo.errors import ConfluoError
from confluo.events import EventBus
from confluo.inventory import Inventory, Node, load_inventory
from confluo.layout import INIT_PROPERTIES, node_paths
from confluo.parallel import in_parallel
from confluo.plan import Facts, Plan, build_plan
from confluo.probe import NodeFacts, probe_node
from confluo.remote import CommandListener, Remote
from confluo.secrets import Masker
from confluo.steps import cluster_entry
from confluo.transport import Transport
from confluo.transport.local import LocalTransport


@dataclass
class Session:
    """One invocation's live resources: the inventory, one connection per node, the cluster API."""

    inventory: Inventory
    masker: Masker
    events: EventBus
    api: ClusterApi
    remotes: dict[str, Remote] = field(default_factory=dict)

    def close(self) -> None:
        for remote in self.remotes.values():
            remote.transport.close()
        self.api.close()


def open_session(
    inventory_path: Path,
    *,
    target_version: str | None = None,
    accept_new_host_keys: bool = False,
    listeners: Sequence[CommandListener] = (),
    masker: Masker | None = None,
) -> Session:
    """Everything is validated (inventory, secrets) before any host is contacted."""
    inventory = load_inventory(inventory_path, target_version=target_version)
    masker = masker or Masker()
    secret = inventory.cluster.credentials.secret.resolve()
    masker.add(secret)
    auth = ApiAuth(
        inventory.cluster.credentials.username,
        secret.reveal(),
        bearer=inventory.cluster.credentials.secret.kind == "token",
    )
    api = ClusterApi(
        inventory.cluster.api_url,
        auth,
        verify_tls=inventory.cluster.verify_tls,
        timeout=inventory.cluster.timeout_seconds,
    )
    session = Session(inventory, masker, EventBus(masker), api)
    for node in inventory.nodes:
        transport = make_transport(node, accept_new_host_keys=accept_new_host_keys)
        session.remotes[node.name] = Remote(node, transport, listeners)
    return session


def make_transport(node: Node, *, accept_new_host_keys: bool) -> Transport:
    if node.transport == "local":
        return LocalTransport(node.name)
    from confluo.transport.ssh import SshTransport  # only SSH needs paramiko loaded

    return SshTransport(
        node.name,
        host=node.ssh.alias or node.host,
        port=None if node.ssh.alias and node.ssh.port == 22 else node.ssh.port,
        user=node.ssh.user,
        key=node.ssh.key,
        known_hosts=node.ssh.known_hosts,
        connect_timeout=node.ssh.connect_timeout_seconds,
        accept_new_host_keys=accept_new_host_keys,
    )


def gather_facts(session: Session) -> Facts:
    """Every read-only probe, for real and at once: the nodes, the cluster API and the archive."""
    inventory = session.inventory
    version = str(inventory.target.version)
    wanted = (INIT_PROPERTIES, *inventory.customizations)

    def probe(node: Node) -> NodeFacts:
        paths = node_paths(node, version, login_home="", shared_home=inventory.target.staging_shared_home)
        return probe_node(session.remotes[node.name], paths, inventory.customizations)

    def cluster() -> ClusterInfo | str:
        try:
            return session.api.cluster()
        except ApiError as exc:
            return exc.message

    def read_archive() -> archive_module.Archive | str:
        try:
            path = archive_module.fetch(inventory.target.archive, version)
            return archive_module.read_archive(path, version, wanted)
        except ConfluoError as exc:
            return exc.message

    jobs: list[object] = [*inventory.nodes, "cluster", "archive"]

    def work(job: object) -> object:
        if job == "cluster":
            return cluster()
        if job == "archive":
            return read_archive()
        assert isinstance(job, Node)
        return probe(job)

    results = in_parallel(jobs, work)
    node_facts = tuple(r for r in results[: len(inventory.nodes)] if isinstance(r, NodeFacts))
    cluster_result, archive_result = results[-2], results[-1]
    return Facts(
        nodes=node_facts,
        cluster=cluster_result if isinstance(cluster_result, ClusterInfo) else None,
        cluster_error=cluster_result if isinstance(cluster_result, str) else None,
        archive=archive_result if isinstance(archive_result, archive_module.Archive) else None,
        archive_error=archive_result if isinstance(archive_result, str) else None,
    )


def make_plan(session: Session) -> tuple[Plan, Facts]:
    facts = gather_facts(session)
    return build_plan(session.inventory, facts), facts


def cluster_status(session: Session) -> dict[str, Any]:
    """The cluster as its API reports it, with the version each node has on disk."""
    cluster = session.api.cluster()
    inventory = session.inventory

    def on_disk(node: Node) -> str | None:
        paths = node_paths(node, str(inventory.target.version), login_home="")
        facts = probe_node(session.remotes[node.name], paths, ())
        return facts.installed_version if facts.reachable else f"unreachable: {facts.error}"

    # Keyed by the cluster's id of each node: names may repeat ("Not configured").
    entries = {node.name: cluster_entry(cluster, node) for node in inventory.nodes}
    versions = {
        info.id: version
        for node, version in zip(inventory.nodes, in_parallel(list(inventory.nodes), on_disk), strict=True)
        if (info := entries[node.name]) is not None
    }
    return {
        "v": 1,
        "state": cluster.state.value,
        "upgrade_mode": cluster.upgrade_mode,
        "original_version": cluster.original_version,
        "nodes": [
            {
                "name": info.name,
                "state": info.state.value,
                "version": info.version,
                "version_on_disk": versions.get(info.id),
                "tasks": info.tasks,
                "users": info.active_users,
            }
            for info in cluster.nodes
        ],
    }
