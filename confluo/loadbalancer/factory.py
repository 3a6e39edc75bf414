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
        return _haproxy(section, inventory.nodes, connect, clock)
    if isinstance(section, NginxBalancer):
        return _nginx(section, inventory.nodes, connect, clock)
    if isinstance(section, ApacheBalancer):
        return _apache(section, reveal)
    return _command(section, inventory.nodes, connect)


def _haproxy(section: HaproxyBalancer, nodes: tuple[Node, ...], connect: Connect, clock: Clock) -> LoadBalancer:
    from confluo.loadbalancer.haproxy import HAProxy, LocalSocket, SocatOverTransport
    from confluo.loadbalancer.haproxy_grow import GrowableHAProxy
    from confluo.loadbalancer.host_files import HostFiles

    socket_path, remote = str(section.socket), section.remote is not None
    host = connect(section.remote)  # the HAProxy host, or this machine's shell
    channel = SocatOverTransport(host, socket_path, sudo=True) if remote else LocalSocket(socket_path)
    if section.config is None:
        return HAProxy(channel, section.backend, clock=clock)
    config = str(section.config)
    test = shlex.split(section.test_command) if section.test_command else ["haproxy", "-c", "-q", "-f", config]
    return GrowableHAProxy(
        channel, section.backend, config_path=config, clock=clock,
        files=HostFiles(host, sudo=remote, where=f"HAProxy on {host.node}: {config}"),
        addresses={node.balancer_server: url_address(node) for node in nodes},
        test_command=test, reload_command=shlex.split(section.reload_command),
    )  # fmt: skip


def url_address(node: Node) -> str:
    """`host:port` of the node's URL."""
    parts = urllib.parse.urlsplit(node.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def nginx_address(node: Node) -> str:
    """The node's `server` address in the upstream: its lb_server when given, else host:port of its URL."""
    return node.lb_server if node.lb_server is not None else url_address(node)


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
