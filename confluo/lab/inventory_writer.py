"""The inventory `confluo lab up` writes for its cluster, in the shape of inventory.sample.yaml.

The lab only writes YAML text; it never imports confluo's inventory reader (confluo validates the file).
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from confluo.lab import hosts
from confluo.lab.model import ADMIN_USER, Lab, Node, SynchronyHost
from confluo.lab.tarball import sha256_of

INVENTORY_TIMEOUT_SECONDS = 60


def inventory_document(lab: Lab) -> dict[str, Any]:
    document = {
        "cluster": {
            "name": lab.cluster_name,
            "api_url": lab.api_url,
            "timeout_seconds": 10,
            "credentials": {"username": ADMIN_USER, "password_file": str(lab.password_file)},
        },
        "target": {
            "version": lab.next_version,
            "archive": str(lab.next_archive),
            "sha256": sha256_of(lab.next_archive),
        },
        "database": lab.db,
        # The nodes were installed by the lab, not extracted by confluo: the running release's archive is the
        # base of the customizations' three-way merge.
        "customizations": {"base_archive": str(lab.source_archive), "base_sha256": sha256_of(lab.source_archive)},
        "defaults": _defaults(lab),
        "keep_releases": 3,
        "nodes": [_node(node) for node in lab.nodes],
    }
    if lab.synchrony:
        document["synchrony"] = {
            "timeouts": {"stop_seconds": INVENTORY_TIMEOUT_SECONDS, "start_seconds": INVENTORY_TIMEOUT_SECONDS},
            "nodes": [_synchrony(host) for host in lab.synchrony],
        }
    return document


def _synchrony(host: SynchronyHost) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": host.name, "host": host.address}
    if host.user is not None:
        entry["ssh"] = {"user": host.user}
        entry["run_as"] = host.user
    else:
        entry["transport"] = "local"
        entry["sudo"] = False
    entry["home"] = str(host.home)
    entry["heartbeat_url"] = host.heartbeat_url
    return entry


def _defaults(lab: Lab) -> dict[str, Any]:
    timeouts = {
        "stop_seconds": INVENTORY_TIMEOUT_SECONDS,
        "start_seconds": INVENTORY_TIMEOUT_SECONDS,
        "finalize_seconds": INVENTORY_TIMEOUT_SECONDS,
    }
    defaults: dict[str, Any] = {}
    if lab.ssh:
        defaults["ssh"] = {
            "port": hosts.SSH_PORT,
            "key": str(lab.client_key),
            "known_hosts": str(lab.known_hosts),
        }
        defaults["sudo"] = True
    defaults["service"] = {"kind": "script"}
    defaults["timeouts"] = timeouts
    return defaults


def _node(node: Node) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": node.name, "host": node.address, "url": node.url}
    if node.user is not None:
        entry["ssh"] = {"user": node.user}
        entry["run_as"] = node.user
    else:
        entry["transport"] = "local"
        entry["sudo"] = False
    entry["install"] = {"layout": "symlink", "base": str(node.install_base)}
    entry["home"] = str(node.home)
    return entry


def write_inventory(lab: Lab) -> None:
    """The inventory and the admin's password file (0600) it names."""
    fd = os.open(lab.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(lab.admin_password + "\n")
    header = f"# written by `confluo lab up`: the lab in {lab.dir} (slot {lab.slot}, {lab.mode} mode)\n"
    body = yaml.safe_dump(inventory_document(lab), sort_keys=False, default_flow_style=False)
    lab.inventory.write_text(header + body)
