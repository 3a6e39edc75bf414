"""Spare hosts (`confluo lab up --spare-hosts N`): each a folder laid out like a node's host, with its own address,
sshd and login user, and nothing installed: the place for `confluo add-node` to grow the cluster onto. The
shared home is at the same path as on every node (one machine), and the host marker tells a node program started
there which address is its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluo.lab import hosts, provision
from confluo.lab.model import HTTP_PORT, Lab, SpareHost


def prepare(lab: Lab, spare: SpareHost) -> None:
    """The host's folders up to where an installation and a local home go (root's, as in production)."""
    provision.write_host_marker(spare.host_root, name=spare.name, address=spare.address, http_port=HTTP_PORT)
    for parent in (spare.install_base.parent, spare.home.parent):
        parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if spare.user is not None:
        hosts.prepare_sshd(spare.sshd)


def status(lab: Lab) -> list[dict[str, Any]]:
    """What `confluo lab status` shows of each spare host: how to reach it, and where a node would go."""
    return [_entry(lab, spare) for spare in lab.spares]


def _entry(lab: Lab, spare: SpareHost) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": spare.name,
        "address": spare.address,
        "node_name": spare.node_name,  # its server in the load balancer, out of the pool until the node joins
        "install_base": str(spare.install_base),
        "home": str(spare.home),
        "shared_home": str(lab.shared_home),
        "installed": any(Path(spare.install_base).glob("*")),
    }
    if spare.user is not None:
        entry["ssh"] = {"host": spare.address, "port": hosts.SSH_PORT, "user": spare.user,
                        "key": str(lab.client_key), "known_hosts": str(lab.known_hosts)}  # fmt: skip
        entry["sshd"] = "up" if spare.sshd.pid() is not None else "down"
    return entry
