"""Composition root: builds the ports from the inventory and the options, and offers one function per use case.
No click and no rich here: the CLI renders what these return."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluo.api.base import ApiAuth, ClusterApi
from confluo.events import EventBus
from confluo.execute.report import ReportCollector, RunReport
from confluo.execute.runner import Runner
from confluo.inventory import ClusterSettings, Inventory, Node, load_inventory
from confluo.plan.model import Plan
from confluo.plan.upgrade import build_plan
from confluo.probe.facts import Facts
from confluo.probe.gather import cluster_status, gather_facts
from confluo.secrets import Masker
from confluo.transport.base import Transport
from confluo.transport.remote import CommandListener, Remote
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


def make_api(cluster: ClusterSettings, auth: ApiAuth, clock: Clock) -> ClusterApi:
    from confluo.api.zdu import HttpClusterApi

    return HttpClusterApi(
        cluster.api_url, auth, verify_tls=cluster.verify_tls, timeout=cluster.timeout_seconds, clock=clock
    )


@dataclass(frozen=True)
class Ports:
    """How a session reaches the world; tests hand in fakes (a stateful node, the ZDU state machine, a clock)."""

    transport: Callable[..., Transport] = make_transport
    api: Callable[[ClusterSettings, ApiAuth, Clock], ClusterApi] = make_api
    clock: Clock = SYSTEM_CLOCK


@dataclass
class Session:
    """One invocation's live resources: the inventory, one connection per node, the cluster API."""

    inventory: Inventory
    masker: Masker
    events: EventBus
    api: ClusterApi
    clock: Clock
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
    ports: Ports | None = None,
) -> Session:
    """Everything is validated (inventory, secrets) before any host is contacted."""
    ports = ports or Ports()
    inventory = load_inventory(inventory_path, target_version=target_version)
    masker = masker or Masker()
    credentials = inventory.cluster.credentials
    secret = credentials.secret.resolve()
    masker.add(secret)
    auth = ApiAuth(credentials.username, secret.reveal(), bearer=credentials.secret.kind == "token")
    api = ports.api(inventory.cluster, auth, ports.clock)
    session = Session(inventory, masker, EventBus(masker), api, ports.clock)
    for node in inventory.nodes:
        transport = ports.transport(node, accept_new_host_keys=accept_new_host_keys)
        session.remotes[node.name] = Remote(node, transport, listeners)
    return session


def make_plan(session: Session) -> tuple[Plan, Facts]:
    """The real read-only probes, then the plan built from what they found."""
    facts = gather_facts(session.inventory, session.remotes, session.api)
    return build_plan(session.inventory, facts), facts


def run_plan(session: Session, plan: Plan) -> RunReport:
    collector = ReportCollector()
    session.events.subscribe(collector)
    Runner(plan, session.remotes, session.api, session.events, session.clock).run()
    return collector.report


def status(session: Session) -> dict[str, Any]:
    return cluster_status(session.inventory, session.remotes, session.api)
