"""Which node goes next: a pure function of what the cluster and each node's /status say right now."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from confluo.api.base import ClusterInfo, NodeState, StatusState, cluster_entry
from confluo.inventory import Node


@dataclass(frozen=True)
class Snapshot:
    """The cluster as its API lists it (None while the API fails) and each node's own /status, by node name;
    with a load balancer, whether it sends each node traffic (None: no load balancer)."""

    cluster: ClusterInfo | None
    status: Mapping[str, StatusState]
    pool: Mapping[str, bool] | None = None

    def not_serving(self, nodes: Sequence[Node]) -> frozenset[str]:
        """Not ACTIVE in the cluster or not RUNNING on /status (the cluster notices a crash only seconds later), or
        not in the load balancer's pool: users cannot reach it."""
        down = set()
        for node in nodes:
            entry = cluster_entry(self.cluster, node) if self.cluster else None
            running = self.status.get(node.name) is StatusState.RUNNING
            pooled = self.pool is None or self.pool.get(node.name, False)
            if not running or not pooled or entry is None or entry.state is not NodeState.ACTIVE:
                down.add(node.name)
        return frozenset(down)


@dataclass(frozen=True)
class Pick:
    node: str


@dataclass(frozen=True)
class Wait:
    """Taking the next node out now could leave users without a second node serving: wait for that to change."""

    node: str
    others_down: tuple[str, ...] = ()  # empty: the cluster API does not answer, so nothing can be judged

    @property
    def reason(self) -> str:
        if not self.others_down:
            return f"before {self.node}: the cluster API does not answer"
        return f"before {self.node}: {', '.join(self.others_down)} not serving"


def least_busy_order(nodes: Sequence[Node], cluster: ClusterInfo, down: Collection[str] = ()) -> tuple[str, ...]:
    """Names: nodes that serve nobody now first (`down`, or not ACTIVE: upgrading them costs no capacity), then
    fewest running tasks plus active users; the inventory's order breaks ties."""

    def load(item: tuple[int, Node]) -> tuple[bool, int, int]:
        index, node = item
        info = cluster_entry(cluster, node)
        serving = node.name not in down and info is not None and info.state is NodeState.ACTIVE
        return (serving, info.load if info else 0, index)

    return tuple(node.name for _, node in sorted(enumerate(nodes), key=load))


def next_node(remaining: Sequence[Node], every_node: Sequence[Node], snapshot: Snapshot) -> Pick | Wait:
    """A node that serves nobody goes first (it costs no capacity); else the least busy, but only while every
    other node serves: never two out at once."""
    if snapshot.cluster is None:
        return Wait(remaining[0].name)  # without the cluster's view, no node is known to serve
    down = snapshot.not_serving(every_node)
    name = least_busy_order(remaining, snapshot.cluster, down)[0]
    others_down = tuple(sorted(down - {name}))
    if name in down or not others_down:
        return Pick(name)
    return Wait(name, others_down)
