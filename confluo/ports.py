"""The ports as confluo builds them from the inventory (SSH or this machine's shell, the ZDU and content APIs over
HTTP, the load balancer), and the state folder; tests hand in fakes through `Ports` instead."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluo.api.base import ApiAuth, ClusterApi
from confluo.api.content import ContentApi
from confluo.inventory import ClusterSettings, Inventory, Node, RemoteHost
from confluo.loadbalancer.base import LoadBalancer
from confluo.secrets import Masker
from confluo.transport.base import Transport
from confluo.waits import SYSTEM_CLOCK, Clock


def make_transport(node: Node, *, accept_new_host_keys: bool) -> Transport:
    if node.transport == "local":
        from confluo.transport.local import LocalTransport

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


def make_api(cluster: ClusterSettings, auth: ApiAuth, clock: Clock, node_urls: Sequence[str] = ()) -> ClusterApi:
    """`node_urls`: every node serves the ZDU API, so they stand in when `api_url` does not answer."""
    from confluo.api.zdu import HttpClusterApi

    return HttpClusterApi(
        cluster.api_url, auth, verify_tls=cluster.verify_tls, timeout=cluster.timeout_seconds, clock=clock,
        fallback_urls=node_urls,
    )  # fmt: skip


def make_balancer(
    inventory: Inventory, masker: Masker, clock: Clock, *, accept_new_host_keys: bool
) -> LoadBalancer | None:
    """The inventory's load balancer (None: it has none); reached here, or over SSH on its own host."""
    from confluo.loadbalancer.factory import make_load_balancer

    def connect(remote: RemoteHost | None) -> Transport:
        if remote is None:
            from confluo.transport.local import LocalTransport

            return LocalTransport("load balancer")
        from confluo.transport.ssh import SshTransport

        ssh = remote.ssh
        return SshTransport(
            remote.host, host=ssh.alias or remote.host, port=None if ssh.alias and ssh.port == 22 else ssh.port,
            user=ssh.user, key=ssh.key, known_hosts=ssh.known_hosts, connect_timeout=ssh.connect_timeout_seconds,
            accept_new_host_keys=accept_new_host_keys,
        )  # fmt: skip

    return make_load_balancer(inventory, connect, clock, masker.add)


def make_content_api(cluster: ClusterSettings, auth: ApiAuth, clock: Clock) -> ContentApi:
    from confluo.api.content_http import HttpContentApi

    return HttpContentApi(auth, verify_tls=cluster.verify_tls, timeout=cluster.timeout_seconds, clock=clock)


@dataclass(frozen=True)
class Ports:
    """How a session reaches the world; tests hand in fakes (a stateful node, the ZDU state machine, a clock)."""

    transport: Callable[..., Transport] = make_transport
    api: Callable[[ClusterSettings, ApiAuth, Clock, Sequence[str]], ClusterApi] = make_api
    content: Callable[[ClusterSettings, ApiAuth, Clock], ContentApi] = make_content_api
    balancer: Callable[..., LoadBalancer | None] = make_balancer
    clock: Clock = SYSTEM_CLOCK
    state_dir: Path = field(default_factory=lambda: state_home())


def state_home() -> Path:
    """Where confluo keeps its logs, locks and run journals (XDG_STATE_HOME)."""
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "confluo"
