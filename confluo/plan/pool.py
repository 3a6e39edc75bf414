"""The load-balancer steps of the plan: around each node's stop and start, in its rollback, and at the start
of a run for a node an interrupted run left out of the pool (reconciliation)."""

from __future__ import annotations

from dataclasses import replace

from confluo.api.base import NodeState, cluster_entry
from confluo.inventory import HaproxyBalancer, Inventory, Node
from confluo.loadbalancer.base import AdminState
from confluo.plan.model import Plan
from confluo.probe.facts import Facts
from confluo.steps.base import Host, Step
from confluo.steps.pool import OUT, Drain, Maint, PoolCommands, Ready


class PoolPlan:
    """The pool steps of one inventory, from what the probe read of the load balancer (None: no balancer)."""

    def __init__(self, inventory: Inventory, facts: Facts) -> None:
        self.inventory = inventory
        self.facts = facts.balancer
        self.section = inventory.load_balancer
        self.cluster = facts.cluster
        self.disk_versions = {found.node: found.installed_version for found in facts.nodes}

    @property
    def active(self) -> bool:
        return self.section is not None and self.facts is not None

    def _commands(self, node: Node) -> PoolCommands:
        assert self.facts is not None
        lines = self.facts.commands.get(node.name, {})
        return PoolCommands(
            drain=lines.get(AdminState.DRAIN, ""), maint=lines.get(AdminState.MAINT, ""),
            ready=lines.get(AdminState.READY, ""),
        )  # fmt: skip

    def take_out(self, host: Host) -> tuple[Step, ...]:
        """Before the stop: drain, wait for the sessions, maint."""
        if not self.active:
            return ()
        assert self.section is not None
        commands = self._commands(host.node)
        return (
            Drain(host, commands, self.section.drain_seconds, self.section.on_drain_timeout),
            Maint(host, commands),
        )

    def put_back(self, host: Host) -> tuple[Step, ...]:
        """After the start (ACTIVE and answering): ready, optionally ramped, and seen UP."""
        if not self.active:
            return ()
        ramp: tuple[int, ...] = ()
        pause = 0.0
        if isinstance(self.section, HaproxyBalancer) and self.section.weight_ramp is not None:
            steps = self.section.weight_ramp.steps
            ramp = tuple(100 * (index + 1) // steps for index in range(steps))
            pause = self.section.weight_ramp.seconds / steps
        up_seconds = host.node.timeouts.start_seconds
        return (Ready(host, self._commands(host.node), up_seconds, ramp=ramp, ramp_pause=pause),)

    def maint_only(self, host: Host) -> tuple[Step, ...]:
        """A rollback: the node out at once (it has failed; there is nothing to drain for)."""
        return (Maint(host, self._commands(host.node)),) if self.active else ()

    def reconcile(self, hosts: dict[str, Host]) -> tuple[Step, ...]:
        """Nodes left drained or in maintenance (an interrupted run) that serve: RUNNING, ACTIVE, and on the version
        their disk has. Put back before anything else."""
        if not self.active or self.cluster is None:
            return ()
        assert self.facts is not None
        steps: list[Step] = []
        for node in self.inventory.nodes:
            state = self.facts.states.get(node.name)
            info = cluster_entry(self.cluster, node)
            if state is None or state.admin not in OUT or info is None or info.state is not NodeState.ACTIVE:
                continue
            if info.version != self.disk_versions.get(node.name):
                continue  # runs another release than its disk has: a restart is due, not users
            steps += self.put_back(hosts[node.name])
        return tuple(steps)


def balancer_notes(facts: Facts) -> tuple[str, ...]:
    """What in the load balancer's set-up could undo confluo's changes (a reload without a state file, ...)."""
    return tuple(f"load balancer: {warning}" for warning in facts.balancer.warnings) if facts.balancer else ()


def with_reconcile(plan: Plan, inventory: Inventory, facts: Facts) -> Plan:
    """`plan` with the nodes an interrupted run left out of the pool put back first (cancel, finalize, and an
    upgrade with nothing else left to do: every run starts with the pool right)."""
    hosts = {node.name: Host(node, facts.for_node(node.name).login_user) for node in inventory.nodes}
    steps = PoolPlan(inventory, facts).reconcile(hosts)
    if not steps:
        return plan
    return replace(plan, reconcile=steps, nothing_to_do=False)
