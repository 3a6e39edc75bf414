"""Every read-only probe at once: the nodes (one SSH round trip each), the cluster API and the release archive."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluo.api.base import ApiError, ClusterApi, ClusterInfo, cluster_entry
from confluo.errors import ConfluoError
from confluo.inventory import Inventory, Node
from confluo.inventory.model import RESOLUTION_WORDS
from confluo.layout import INIT_PROPERTIES, node_paths
from confluo.parallel import in_parallel
from confluo.probe import archive as archive_module
from confluo.probe.facts import Archive, Facts, NodeFacts
from confluo.probe.node import probe_node
from confluo.transport.remote import Remote


def gather_facts(
    inventory: Inventory, remotes: Mapping[str, Remote], api: ClusterApi, *, with_archive: bool = True
) -> Facts:
    """`with_archive`: False when only the nodes and the cluster matter (a rollback needs no new release)."""
    version = str(inventory.target.version)
    wanted = (INIT_PROPERTIES, *inventory.customizations)

    def probe(node: Node) -> NodeFacts:
        paths = node_paths(node, version, login_home="", shared_home=inventory.target.staging_shared_home)
        return probe_node(remotes[node.name], paths, inventory.customizations)

    def cluster() -> ClusterInfo | str:
        try:
            return api.cluster()
        except ApiError as exc:
            return exc.message

    def read_archive() -> Archive | str:
        try:
            path = archive_module.fetch(inventory.target.archive, version)
            return archive_module.read_archive(path, version, wanted)
        except ConfluoError as exc:
            return exc.message

    def read_base_archive() -> Archive | str | None:
        carry = inventory.carry
        if carry.base_archive is None:
            return None
        try:
            path = archive_module.fetch(carry.base_archive, None, key="customizations.base_archive")
            return archive_module.read_archive(path, None, wanted)
        except ConfluoError as exc:
            return exc.message

    # Without the new release there is nothing to merge either: the old release's archive is not read.
    archives = ["archive", "base"] if with_archive else ["no archive", "no base"]
    jobs: list[object] = [*inventory.nodes, "cluster", *archives]

    def work(job: object) -> object:
        if job == "cluster":
            return cluster()
        if job == "archive":
            return read_archive()
        if job == "base":
            return read_base_archive()
        if job == "no archive":
            return "not read"
        if job == "no base":
            return None
        assert isinstance(job, Node)
        return probe(job)

    results = in_parallel(jobs, work)
    node_facts = tuple(r for r in results[: len(inventory.nodes)] if isinstance(r, NodeFacts))
    cluster_result, archive_result, base_result = results[-3:]
    resolved, resolve_errors = read_resolutions(inventory)
    return Facts(
        nodes=node_facts,
        cluster=cluster_result if isinstance(cluster_result, ClusterInfo) else None,
        cluster_error=cluster_result if isinstance(cluster_result, str) else None,
        archive=archive_result if isinstance(archive_result, Archive) else None,
        archive_error=archive_result if isinstance(archive_result, str) else None,
        base_archive=base_result if isinstance(base_result, Archive) else None,
        base_archive_error=base_result if isinstance(base_result, str) else None,
        resolved=resolved,
        resolve_errors=resolve_errors,
    )


def read_resolutions(inventory: Inventory) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """The text of each resolved file customizations.resolve names, per (node, file): `{node}` in a path is the
    node's name. A file that cannot be read is an error only where the plan needs that resolution."""
    texts: dict[tuple[str, str], str] = {}
    errors: dict[tuple[str, str], str] = {}
    for rel, value in inventory.carry.resolve.items():
        if value in RESOLUTION_WORDS:
            continue
        for node in inventory.nodes:
            path = value.replace("{node}", node.name)
            try:
                texts[node.name, rel] = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                errors[node.name, rel] = f"customizations.resolve.{rel}: cannot read {path}: {reason}"
    return texts, errors


def cluster_status(inventory: Inventory, remotes: Mapping[str, Remote], api: ClusterApi) -> dict[str, Any]:
    """The cluster as its API reports it, with the version each node has on disk."""
    cluster = api.cluster()

    def on_disk(node: Node) -> str | None:
        paths = node_paths(node, str(inventory.target.version), login_home="")
        facts = probe_node(remotes[node.name], paths, ())
        return facts.installed_version if facts.reachable else facts.error

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
                "finalization_errors": list(info.finalization_errors),
            }
            for info in cluster.nodes
        ],
    }
