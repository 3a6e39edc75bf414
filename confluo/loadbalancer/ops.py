"""What an administrator asks of the load balancer directly: every node's state there, and one node put back."""

from __future__ import annotations

from typing import Any

from confluo.api.base import ClusterApi, StatusState
from confluo.errors import ConfluoError, RefusedError
from confluo.inventory import Inventory, Node
from confluo.loadbalancer.base import AdminState, LoadBalancer, ServerState
from confluo.steps.base import Host, StepContext
from confluo.steps.pool import PoolCommands, Ready
from confluo.waits import Clock


def shown(state: ServerState) -> str:
    health = {True: "UP", False: "DOWN", None: ""}[state.healthy]
    return " ".join(part for part in (state.admin.value, health) if part)


def pool_report(inventory: Inventory, lb: LoadBalancer) -> dict[str, Any]:
    """Each node's server: its administrative state, health and sessions as the load balancer reports them."""
    assert inventory.load_balancer is not None
    nodes = []
    for node in inventory.nodes:
        entry: dict[str, Any] = {"name": node.name, "server": node.balancer_server}
        try:
            state = lb.state(node.balancer_server)
        except ConfluoError as exc:
            entry["error"] = exc.message
        else:
            entry |= {"admin": state.admin.value, "healthy": state.healthy, "sessions": state.sessions,
                      "detail": state.detail, "shown": shown(state)}  # fmt: skip
        nodes.append(entry)
    return {"v": 1, "kind": inventory.load_balancer.kind, "nodes": nodes, "warnings": list(lb.warnings())}


def put_back(inventory: Inventory, lb: LoadBalancer, api: ClusterApi, name: str, clock: Clock) -> ServerState:
    """`confluo lb ready NODE`: back in the pool, and waited for until the load balancer shows it UP. Refused
    while the node itself does not answer RUNNING: users would be sent to a node that turns them away."""
    node = _node(inventory, name)
    status = api.node_status(node.url)
    if status is not StatusState.RUNNING:
        raise RefusedError(
            [f"{name}: its /status says {status.value}, not RUNNING"],
            hint=f"start {name} first (`confluo upgrade` again continues an interrupted upgrade); nothing was changed",
        )
    commands = PoolCommands(
        drain=lb.describe(node.balancer_server, AdminState.DRAIN),
        maint=lb.describe(node.balancer_server, AdminState.MAINT),
        ready=lb.describe(node.balancer_server, AdminState.READY),
    )
    step = Ready(Host(node), commands, node.timeouts.start_seconds)
    ctx = StepContext(api=api, clock=clock, balancer=lb)
    if not step.is_done(ctx):
        step.apply(ctx)
    return lb.state(node.balancer_server)


def _node(inventory: Inventory, name: str) -> Node:
    for node in inventory.nodes:
        if node.name == name:
            return node
    known = ", ".join(node.name for node in inventory.nodes)
    raise RefusedError([f"the inventory has no node {name!r} (its nodes: {known})"], hint="nothing was changed")
