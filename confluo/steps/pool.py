"""A node out of the load balancer's pool before it stops, and back in once it serves again.

drain → wait until its sessions are gone (the load balancer's count and the cluster's activeUserCount for the
node), under `drain_seconds`; what then is `on_drain_timeout`: halt (the default — users are never cut off
without being asked) or continue → maint (no traffic at all) → … stop, start … → ready (optionally a weight
ramp) → wait until the load balancer shows it UP, so the next node is taken out only once this one takes users.

Every change is read back by the adapter itself (ChangeNotApplied when it did not take effect).
"""

from __future__ import annotations

from dataclasses import dataclass

from confluo.api.base import ApiError, cluster_entry
from confluo.loadbalancer.base import AdminState, Growable, LoadBalancerError, ServerState, Weighted, serving
from confluo.steps.base import Host, NodeStep, Preview, StepContext, StepKind, Waited, WaitTimedOut
from confluo.waits import Deadline, TimedOut, poll

POLL_SECONDS = 0.5
OUT = (AdminState.DRAIN, AdminState.MAINT)


@dataclass(frozen=True)
class PoolCommands:
    """The changes as an operator would make them by hand (the adapter's `describe`), for the plan."""

    drain: str
    maint: str
    ready: str


class PoolStep(NodeStep):
    host: Host

    @property
    def server(self) -> str:
        return self.host.node.balancer_server

    def _state(self, ctx: StepContext) -> ServerState:
        return ctx.pool.state(self.server)


def _remaining(ctx: StepContext, step: PoolStep) -> str:
    """What still holds the node (empty: nothing): sessions the load balancer counts, users the cluster counts."""
    left = []
    sessions = step._state(ctx).sessions
    if sessions:
        left.append(f"{sessions} session{'s' if sessions != 1 else ''} in the load balancer")
    try:
        info = cluster_entry(ctx.api.cluster(), step.host.node)
    except ApiError:
        left.append("the cluster API does not answer, so its active users are unknown")
    else:
        if info is not None and info.active_users:
            left.append(f"{info.active_users} active user{'s' if info.active_users != 1 else ''} in the cluster")
    return " and ".join(left)


class DrainTimedOut(WaitTimedOut):
    """Users are still on a drained node at the deadline, and the inventory says halt."""


@dataclass(frozen=True)
class Drain(Waited, PoolStep):
    kind = StepKind.DRAIN

    host: Host
    commands: PoolCommands
    seconds: float
    on_timeout: str  # "halt" | "continue"

    @property
    def deadline_seconds(self) -> float:
        return self.seconds

    def describe(self) -> Preview:
        then = "halt, the node still serving" if self.on_timeout == "halt" else "go on"
        return Preview(
            commands=(self.commands.drain,),
            waits=(
                f"no sessions left on {self.server} in the load balancer and no active users on {self.node} in "
                f"the cluster (deadline {self.seconds:.0f} s; then {then}: on_drain_timeout {self.on_timeout})",
            ),
        )

    def is_done(self, ctx: StepContext) -> bool:
        state = self._state(ctx)
        return state.admin is AdminState.MAINT or (state.admin is AdminState.DRAIN and not _remaining(ctx, self))

    def apply(self, ctx: StepContext) -> None:
        if self._state(ctx).admin is not AdminState.MAINT:  # draining a server in maint would let users back
            ctx.pool.drain(self.server)
        try:
            poll(
                lambda: _remaining(ctx, self),
                until=lambda left: not left,
                deadline=Deadline.after(ctx.clock, self.seconds),
                on_wait=lambda left: ctx.on_wait(f"{self.node}: drained, waiting for {left}"),
                interval=POLL_SECONDS,
            )
        except TimedOut as timed_out:
            left = timed_out.last
            if self.on_timeout == "continue":
                ctx.on_wait(f"{self.node}: drain deadline passed with {left}; on_drain_timeout is continue")
                return
            raise DrainTimedOut(
                f"{self.node}: still {left} {self.seconds:.0f} s after the drain",
                hint=f"{self.node} is drained (no new users) and still serving; nothing else was changed. Run "
                "`confluo upgrade` again once its users are gone, raise load_balancer.drain_seconds, or set "
                f"on_drain_timeout: continue; `confluo lb ready {self.node}` puts it back in the pool",
            ) from timed_out


@dataclass(frozen=True)
class Maint(PoolStep):
    """No traffic at all, not even the sessions a drain still lets through: the node may stop."""

    kind = StepKind.MAINT

    host: Host
    commands: PoolCommands

    def describe(self) -> Preview:
        return Preview(commands=(self.commands.maint,))

    def is_done(self, ctx: StepContext) -> bool:
        return self._state(ctx).admin is AdminState.MAINT or (
            # A load balancer without a maint of its own (nginx `down`, an operator's drain) stops at drain.
            self.commands.maint == self.commands.drain and self._state(ctx).admin in OUT
        )

    def apply(self, ctx: StepContext) -> None:
        ctx.pool.maint(self.server)


@dataclass(frozen=True)
class Ready(Waited, PoolStep):
    """Back in the pool once the node serves, and waited for until the load balancer shows it UP."""

    kind = StepKind.READY

    host: Host
    commands: PoolCommands
    up_seconds: float
    ramp: tuple[int, ...] = ()  # weight percents, raised one by one (HAProxy), so a cold node is not flooded
    ramp_pause: float = 0.0

    @property
    def deadline_seconds(self) -> float:
        return self.up_seconds + self.ramp_pause * len(self.ramp)

    def describe(self) -> Preview:
        ramp = f"; weight {' → '.join(f'{p}%' for p in self.ramp)}, {self.ramp_pause:.0f} s apart" if self.ramp else ""
        return Preview(
            commands=(self.commands.ready,),
            waits=(f"the load balancer shows {self.server} UP (deadline {self.up_seconds:.0f} s){ramp}",),
        )

    def is_done(self, ctx: StepContext) -> bool:
        return serving(self._state(ctx))

    def apply(self, ctx: StepContext) -> None:
        lb = ctx.pool
        weighted = lb if self.ramp and isinstance(lb, Weighted) else None
        if weighted is not None:
            weighted.weight(self.server, self.ramp[0])  # before it takes any traffic
        if self._state(ctx).admin is not AdminState.READY:
            lb.ready(self.server)
        try:
            poll(
                lambda: self._state(ctx),
                until=serving,
                deadline=Deadline.after(ctx.clock, self.up_seconds),
                on_wait=lambda state: ctx.on_wait(f"{self.node}: in the pool, the load balancer says {state.detail}"),
                interval=POLL_SECONDS,
            )
        except TimedOut as timed_out:
            state: ServerState = timed_out.last
            raise WaitTimedOut(
                f"{self.node}: back in the pool, but the load balancer still shows {self.server} "
                f"{state.detail or 'not UP'} after {self.up_seconds:.0f} s",
                hint="the node answers its own /status; check the load balancer's health check for it",
            ) from timed_out
        if weighted is not None:
            for percent in self.ramp[1:]:
                ctx.clock.sleep(self.ramp_pause)
                weighted.weight(self.server, percent)


@dataclass(frozen=True)
class AddServer(PoolStep):
    """add-node: the new node's server added to the load balancer out of the pool, set up as its donor's is;
    `Ready` then puts it in."""

    kind = StepKind.ADD_SERVER

    host: Host
    like: str  # the donor's server
    line: str  # the change as an operator would make it by hand

    def describe(self) -> Preview:
        return Preview(commands=(self.line,))

    def is_done(self, ctx: StepContext) -> bool:
        try:
            self._state(ctx)
        except LoadBalancerError:
            return False
        return True

    def apply(self, ctx: StepContext) -> None:
        lb = ctx.pool
        assert isinstance(lb, Growable), "planned only for a load balancer confluo can add a server to"
        lb.add_server(self.server, self.like)
