"""The inventory's `load_balancer` section → the adapter that drives it (None when the inventory has none).

Commands for the load balancer run through a Transport: this machine's shell, or SSH to the load-balancer host
(with the same host-key rules as the nodes). How either is opened is the caller's (app.py's) business.
"""

from __future__ import annotations

import shlex
import urllib.parse
from collections.abc import Callable

from confluo.inventory import (
    ApacheBalancer,
    CommandBalancer,
    HaproxyBalancer,
    Inventory,
    NginxBalancer,
    Node,
    RemoteHost,
)
from confluo.loadbalancer.base import LoadBalancer
from confluo.secrets import Secret
from confluo.transport.base import Transport
from confluo.waits import Clock

# A transport to the load-balancer host (None: this machine).
Connect = Callable[[RemoteHost | None], Transport]


# A load balancer's own secret (the balancer-manager's password), handed to the masker before any use.
Reveal = Callable[[Secret], None]


def make_load_balancer(
    inventory: Inventory, connect: Connect, clock: Clock, reveal: Reveal = lambda secret: None
) -> LoadBalancer | None:
    section = inventory.load_balancer
    if section is None:
        return None
    if isinstance(section, HaproxyBalancer):
        return _haproxy(section, connect, clock)
    if isinstance(section, NginxBalancer):
        return _nginx(section, inventory.nodes, connect, clock)
    if isinstance(section, ApacheBalancer):
        return _apache(section, reveal)
    return _command(section, inventory.nodes, connect)


def _haproxy(section: HaproxyBalancer, connect: Connect, clock: Clock) -> LoadBalancer:
    from confluo.loadbalancer.haproxy import HAProxy, LocalSocket, SocatOverTransport

    socket_path = str(section.socket)
    channel = (
        SocatOverTransport(connect(section.remote), socket_path, sudo=True)
        if section.remote is not None
        else LocalSocket(socket_path)
    )
    config = str(section.config) if section.config else None
    return HAProxy(channel, section.backend, config_path=config, clock=clock)


def nginx_address(node: Node) -> str:
    """The node's `server` address in the upstream: its lb_server when given, else host:port of its URL."""
    if node.lb_server is not None:
        return node.lb_server
    parts = urllib.parse.urlsplit(node.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def _nginx(section: NginxBalancer, nodes: tuple[Node, ...], connect: Connect, clock: Clock) -> LoadBalancer:
    from confluo.loadbalancer.nginx import NginxUpstream

    return NginxUpstream(
        connect(section.remote),
        str(section.upstream_file),
        section.upstream,
        addresses={node.balancer_server: nginx_address(node) for node in nodes},
        test_command=shlex.split(section.test_command),
        reload_command=shlex.split(section.reload_command),
        pid_file=str(section.pid_file),
        sudo=section.remote is not None,
        clock=clock,
    )


def _apache(section: ApacheBalancer, reveal: Reveal) -> LoadBalancer:
    from confluo.loadbalancer.apache import ApacheBalancer as Manager

    auth = None
    if section.credentials is not None:
        secret = section.credentials.secret.resolve()
        reveal(secret)
        auth = (section.credentials.username or "", secret.reveal())
    return Manager(section.balancer_manager_url, section.balancer, auth=auth, verify=section.verify_tls)


def _command(section: CommandBalancer, nodes: tuple[Node, ...], connect: Connect) -> LoadBalancer:
    from confluo.loadbalancer.command import CommandLoadBalancer, Member

    members = [Member(node.balancer_server, node.name, node.host) for node in nodes]
    return CommandLoadBalancer(
        connect(None), members, drain=section.drain, ready=section.ready, status=section.status, maint=section.maint
    )
