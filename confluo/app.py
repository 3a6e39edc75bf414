"""Composition root: builds the ports from the inventory and the options, and offers one function per use case.
No click and no rich here: the CLI renders what these return."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from confluo.api.base import ApiAuth, ApiError, ClusterApi, ClusterState
from confluo.api.content import ContentApi
from confluo.carry.shell import bash_syntax_error
from confluo.errors import ConfluoError, InventoryError, RefusedError
from confluo.events import EventBus
from confluo.execute import shared_lock
from confluo.execute.journal import Journal
from confluo.execute.report import ReportCollector, RunReport
from confluo.execute.run_lock import LockChannel, LockSite, one_run
from confluo.execute.runner import Runner
from confluo.execute.shared_lock import LockState
from confluo.execute.verify import VerifyReport, verify_cluster
from confluo.inventory import Inventory, Node, load_inventory
from confluo.loadbalancer.base import LoadBalancer
from confluo.loadbalancer.ops import pool_report
from confluo.plan.model import Plan
from confluo.plan.pool import with_reconcile
from confluo.plan.recover import build_cancel_plan, build_finalize_plan
from confluo.plan.restart import build_restart_plan
from confluo.plan.rollback import build_rollback_plan
from confluo.plan.upgrade import build_plan
from confluo.ports import Ports
from confluo.probe.balancer import probe_balancer
from confluo.probe.facts import Facts
from confluo.probe.gather import cluster_status, gather_facts
from confluo.probe.synchrony import gather_synchrony
from confluo.secrets import Masker
from confluo.transport.remote import CommandListener, HostShell, Remote
from confluo.waits import Clock

T = TypeVar("T")


@dataclass
class Session:
    """One invocation's live resources: the inventory, one connection per node, the cluster API."""

    inventory: Inventory
    masker: Masker
    events: EventBus
    api: ClusterApi
    clock: Clock
    state_dir: Path
    remotes: dict[str, Remote] = field(default_factory=dict)
    connect: Callable[[Node], Remote] | None = None  # a new connection of its own (the cluster lock's)
    synchrony: dict[str, HostShell] = field(default_factory=dict)  # one connection per standalone Synchrony node
    open_content: Callable[[], ContentApi] | None = None  # the content API, for the commands that need it
    balancer: LoadBalancer | None = None

    def close(self) -> None:
        for shell in (*self.remotes.values(), *self.synchrony.values()):
            shell.transport.close()
        self.api.close()
        close = getattr(self.balancer, "close", None)  # the adapters that hold a client (Apache's) have one
        if callable(close):
            close()


def open_session(
    inventory_path: Path,
    *,
    target_version: str | None = None,
    accept_new_host_keys: bool = False,
    listeners: Sequence[CommandListener] = (),
    masker: Masker | None = None,
    ports: Ports | None = None,
    load: Callable[[Path], Inventory] | None = None,
) -> Session:
    """Everything is validated (inventory, secrets) before any host is contacted. `load`: how the inventory is
    read, where it is not the file as it is (add-node's, with the new node added)."""
    ports = ports or Ports()
    inventory = load(inventory_path) if load else load_inventory(inventory_path, target_version=target_version)
    masker = masker or Masker()
    credentials = inventory.cluster.credentials
    secret = credentials.secret.resolve()
    masker.add(secret)
    auth = ApiAuth(credentials.username, secret.reveal(), bearer=credentials.secret.kind == "token")
    api = ports.api(inventory.cluster, auth, ports.clock, [node.url for node in inventory.nodes])
    session = Session(inventory, masker, EventBus(masker), api, ports.clock, ports.state_dir)
    session.balancer = ports.balancer(inventory, masker, ports.clock, accept_new_host_keys=accept_new_host_keys)
    for node in inventory.nodes:
        transport = ports.transport(node, accept_new_host_keys=accept_new_host_keys)
        session.remotes[node.name] = Remote(node, transport, listeners)
    for synchrony in inventory.synchrony:
        transport = ports.transport(synchrony, accept_new_host_keys=accept_new_host_keys)
        session.synchrony[synchrony.name] = HostShell(synchrony, transport, listeners)

    def connect(node: Node) -> Remote:
        return Remote(node, ports.transport(node, accept_new_host_keys=accept_new_host_keys), listeners)

    session.connect = connect
    session.open_content = lambda: ports.content(inventory.cluster, auth, ports.clock)
    return session


def make_plan(session: Session) -> tuple[Plan, Facts]:
    """The real read-only probes, then the plan built from what they found (resuming this machine's run)."""
    facts = _with_balancer(session, gather_facts(session.inventory, session.remotes, session.api))
    synchrony, jar_readable = gather_synchrony(session.inventory, session.synchrony, session.remotes, session.api)
    facts = replace(facts, synchrony=synchrony, jar_readable=jar_readable)
    entry = _journal(session).read()
    if entry is not None and entry.target_version == str(session.inventory.target.version):
        facts = replace(facts, resumable_from=entry.source_version)
    return build_plan(session.inventory, facts, shell_syntax=bash_syntax_error), facts


def _with_balancer(session: Session, facts: Facts) -> Facts:
    """The facts and what the load balancer says of every node (an interrupted run may have left one out)."""
    if session.balancer is None:
        return facts
    return replace(facts, balancer=probe_balancer(session.inventory, session.balancer))


def run_plan(session: Session, plan: Plan) -> RunReport:
    collector = ReportCollector()
    session.events.subscribe(collector)
    on_failure = session.inventory.on_failure
    journal = _journal(session)
    if plan.goal == "upgrade":
        journal.started(plan.cluster_name, plan.source_version, plan.target_version)
    try:
        Runner(
            plan, session.remotes, session.api, session.events, session.clock, on_failure=on_failure,
            balancer=session.balancer,
            synchrony=session.synchrony,
        ).run()  # fmt: skip
    finally:
        if _idle(session):
            journal.finished()  # done, or rolled back to STABLE: nothing left to resume
    return collector.report


def _journal(session: Session) -> Journal:
    return Journal(session.state_dir, session.inventory.cluster.api_url)


def _idle(session: Session) -> bool:
    try:
        cluster = session.api.cluster()
    except ApiError:
        return False
    return not cluster.upgrade_mode


def cancel_plan(session: Session) -> Plan:
    return _reconciled(session, build_cancel_plan(session.inventory, session.api.cluster()))


def rollback_plan(session: Session, *, node: str | None) -> Plan:
    facts = _with_balancer(session, gather_facts(session.inventory, session.remotes, session.api, with_archive=False))
    return build_rollback_plan(session.inventory, facts, only=node)


def restart_plan(session: Session, *, node: str | None) -> Plan:
    facts = _with_balancer(session, gather_facts(session.inventory, session.remotes, session.api, with_archive=False))
    return build_restart_plan(session.inventory, facts, only=node)


def finalize_plan(session: Session, *, retry: bool) -> Plan:
    return _reconciled(session, build_finalize_plan(session.inventory, session.api.cluster(), retry=retry))


def _reconciled(session: Session, plan: Plan) -> Plan:
    """With a load balancer, nodes an interrupted run left out of its pool are put back first."""
    if session.balancer is None or plan.nothing_to_do:
        return plan
    facts = _with_balancer(session, gather_facts(session.inventory, session.remotes, session.api, with_archive=False))
    return with_reconcile(plan, session.inventory, facts)


def verify(session: Session, *, space: str | None, deadline_seconds: float) -> VerifyReport:
    """The cluster test: a page through `api_url`, read and found by search on every node, deleted again."""
    assert session.open_content is not None, "sessions come from open_session"
    content = session.open_content()
    try:
        return verify_cluster(
            content, api_url=session.inventory.cluster.api_url, nodes=session.inventory.nodes, space_key=space,
            deadline_seconds=deadline_seconds, marker=uuid.uuid4().hex[:12], clock=session.clock,
            events=session.events,
        )  # fmt: skip
    finally:
        content.close()


def status(session: Session) -> dict[str, Any]:
    """The cluster and every node, and — when this machine's journal holds an unfinished run — what continues it."""
    report = cluster_status(session.inventory, session.remotes, session.api)
    if session.balancer is not None:
        pool = {
            n["name"]: n.get("shown") or "unreadable" for n in pool_report(session.inventory, session.balancer)["nodes"]
        }
        for row in report["nodes"]:
            row["lb"] = pool.get(row["name"], "-")
    if report["state"] == ClusterState.UPGRADE_TASKS_FAILED.value:
        report["next"] = "confluo finalize -i INVENTORY --retry"  # once the cause of the errors is fixed
    entry = _journal(session).read()
    if entry is not None and report["upgrade_mode"]:
        report["unfinished_run"] = {
            "source_version": entry.source_version,
            "target_version": entry.target_version,
            "started_at": entry.started_at,
            "host": entry.host,
            "next": f"confluo upgrade -i INVENTORY --to {entry.target_version}",
            "back": "confluo rollback -i INVENTORY --all",
        }
    try:
        lock = lock_state(session)
    except ConfluoError as error:
        reasons = error.reasons if isinstance(error, RefusedError) else (error.message,)
        report["cluster_lock"] = {"error": "; ".join(reasons)}
    else:
        if lock is not None:
            report["cluster_lock"] = {**lock.as_json(), "description": shared_lock.describe(lock)}
    return report


HEARTBEAT_ENV = "CONFLUO_LOCK_HEARTBEAT_SECONDS"  # tests make a lock go stale in seconds rather than a minute


def run_lock(session: Session, command: str, *, wait_seconds: float = 0.0) -> AbstractContextManager[tuple[str, ...]]:
    """One run per cluster: this machine's lock and, with a shared home in the inventory, the one in it (with
    its heartbeat); released on every way out. Yields the notes for the run's events."""
    return one_run(_lock_site(session), command, wait_seconds)


def lock_state(session: Session) -> LockState | None:
    """The cluster lock as it is in the shared home; None without a shared home in the inventory."""
    site = _lock_site(session)
    if site.shared_home is None:
        return None
    path = shared_lock.lock_path(site.shared_home)
    return _with_channel(site, lambda remote: shared_lock.read_lock(remote, path))


def release_lock(session: Session, seen: LockState) -> bool:
    """Removes the lock that `seen` saw; False if it changed hands since (then nothing is removed)."""
    return _with_channel(_lock_site(session), lambda remote: shared_lock.release(remote, seen.path, seen.run_id))


def _with_channel(site: LockSite, action: Callable[[Remote], T]) -> T:
    channel = LockChannel(site.nodes, site.connect)
    try:
        return channel.run(action)
    finally:
        channel.close()


def _lock_site(session: Session) -> LockSite:
    assert session.connect is not None, "sessions come from open_session"
    shared_home = session.inventory.target.shared_home
    return LockSite(
        session.inventory.cluster.api_url, session.state_dir / "locks", str(shared_home) if shared_home else None,
        session.inventory.nodes, session.connect, session.events, session.clock, _heartbeat_seconds(),
    )  # fmt: skip


def _heartbeat_seconds() -> float:
    text = os.environ.get(HEARTBEAT_ENV)
    if text is None:
        return shared_lock.HEARTBEAT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0.05 <= seconds <= 3600:
        problem = f"{HEARTBEAT_ENV}={text!r}: expected seconds between 0.05 and 3600"
        raise InventoryError([problem], source="environment")
    return seconds
