"""The inventory `confluo lab up` writes for its cluster, in the shape of inventory.sample.yaml.

The lab only writes YAML text; it never imports confluo's inventory reader (confluo validates the file).
"""

from __future__ import annotations

import os
import shlex
from typing import Any

import yaml

from confluo.lab import balancer, hosts
from confluo.lab.model import ADMIN_USER, HTTP_PORT, Lab, Node, SynchronyHost
from confluo.lab.tarball import sha256_of

INVENTORY_TIMEOUT_SECONDS = 60
# The lab's users (`confluo lab set --users`) never log off: a drain waits this long for them, then goes on.
DRAIN_SECONDS = 5


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
        **({"load_balancer": section} if (section := _load_balancer(lab)) else {}),
        "nodes": [_node(lab, node) for node in lab.nodes],
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


def _load_balancer(lab: Lab) -> dict[str, Any] | None:
    """The section that lets confluo take each node out of the lab's load balancer (on this machine)."""
    lb = lab.balancer
    if lb is None:
        return None
    common = {"drain_seconds": DRAIN_SECONDS, "on_drain_timeout": "continue"}
    if lb.kind == balancer.HAPROXY:
        assert lb.socket is not None
        return {"kind": "haproxy", "socket": str(lb.socket), "backend": balancer.BACKEND, "config": str(lb.config),
                "reload_command": shlex.quote(str(lb.reload_script)), **common}  # fmt: skip
    if lb.kind == balancer.NGINX:
        return {
            "kind": "nginx",
            "upstream_file": str(lb.upstream_file),
            "upstream": balancer.BACKEND,
            "reload_command": shlex.join(balancer.nginx_argv(lb, "-s", "reload")),
            "test_command": shlex.join(balancer.nginx_argv(lb, "-t", "-q")),
            "pid_file": str(lb.pid_file),
            **common,
        }
    return {"kind": "apache", "balancer_manager_url": lb.manager_url, "balancer": balancer.BACKEND, **common}


def _lb_server(lab: Lab, node: Node) -> str | None:
    """The node's name in the load balancer: its server line's address for nginx, its name (server, route)
    for the others."""
    if lab.balancer is None:
        return None
    return f"{node.address}:{HTTP_PORT}" if lab.lb == balancer.NGINX else node.name


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


def _node(lab: Lab, node: Node) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": node.name, "host": node.address, "url": node.url}
    if (server := _lb_server(lab, node)) is not None:
        entry["lb_server"] = server
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
