"""The load balancer, read once before anything changes: can it be reached, does it know every node, and what
state each node's server is in (an interrupted run may have left one drained)."""

from __future__ import annotations

from confluo.errors import ConfluoError
from confluo.inventory import Inventory, Node
from confluo.loadbalancer.base import AdminState, LoadBalancer, ServerState
from confluo.probe.facts import BalancerFacts

CHANGES = (AdminState.DRAIN, AdminState.MAINT, AdminState.READY)


def probe_balancer(inventory: Inventory, lb: LoadBalancer) -> BalancerFacts:
    assert inventory.load_balancer is not None
    kind = inventory.load_balancer.kind

    def read(node: Node) -> ServerState | str:
        try:
            return lb.state(node.balancer_server)
        except ConfluoError as exc:
            return exc.message

    found = {node.name: read(node) for node in inventory.nodes}  # one at a time: some adapters keep one client
    problems = tuple(
        f"{name}: the {kind} load balancer: {result}" for name, result in found.items() if isinstance(result, str)
    )
    try:
        warnings = lb.warnings() if not problems else ()
    except ConfluoError as exc:
        warnings = (f"the {kind} load balancer's set-up could not be checked: {exc.message}",)
    return BalancerFacts(
        kind=kind,
        states={name: state for name, state in found.items() if isinstance(state, ServerState)},
        commands={
            node.name: {target: lb.describe(node.balancer_server, target) for target in CHANGES}
            for node in inventory.nodes
        },
        problems=problems,
        warnings=warnings,
    )
