"""Cluster-wide steps through the ZDU API: upgrade mode on, and the finalization (approve, then STABLE).

A state change that fails for another reason than 409 may have taken effect all the same (the node behind the
load balancer failed as it answered): the cluster is asked, and the call repeated only if it did not happen.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from confluo.api.base import ApiError, ClusterInfo, ClusterState, InvalidTransition, finalization_failures
from confluo.steps.base import Preview, StepContext, StepError, StepKind, Waited, WaitTimedOut
from confluo.waits import Deadline, TimedOut, poll

# Between tries of a state change that failed (not 409): the load balancer may answer 502/503 for a while, all
# its servers briefly failing their health checks; the cluster is asked every time whether the change happened.
TRANSITION_PAUSES = (0.5, 1.0, 2.0)
TASKS_FAILED_HINT = (
    "fix the cause (each node's atlassian-confluence.log says more), then `confluo finalize --retry` (or the same "
    "`confluo upgrade` again) runs the upgrade tasks again"
)


def cluster_or_none(ctx: StepContext) -> ClusterInfo | None:
    """The cluster now, or None while its API fails (the callers wait, within their deadlines)."""
    try:
        return ctx.api.cluster()
    except ApiError:
        return None


def transition(
    ctx: StepContext, call: Callable[[], object], happened: Callable[[ClusterInfo], bool], hint: str, seconds: float
) -> None:
    """`call` the state change, and again while it fails for another reason than 409 and did not take effect,
    for up to `seconds`; `hint` is for a 409, the cluster's state not allowing the change."""
    deadline = Deadline.after(ctx.clock, seconds)
    pauses = itertools.chain(TRANSITION_PAUSES, itertools.repeat(TRANSITION_PAUSES[-1]))
    while True:
        try:
            call()
            return
        except InvalidTransition as exc:
            raise StepError(f"{exc.message}", hint=hint) from exc
        except ApiError as exc:
            cluster = cluster_or_none(ctx)
            if cluster is not None and happened(cluster):
                return
            if deadline.passed():
                raise StepError(
                    f"{exc.message} (tried for {seconds:.0f} s)",
                    hint="`confluo status` shows whether the cluster API answers and where the cluster stands",
                ) from exc
            ctx.on_wait(f"{exc.message}; trying again")
            ctx.clock.sleep(next(pauses))


def wait_for_cluster(ctx: StepContext, wanted: frozenset[ClusterState], seconds: float) -> None:
    def judge(state: ClusterState) -> None:
        ctx.on_wait(f"cluster {state.value}")
        if state is ClusterState.UPGRADE_TASKS_FAILED:
            cluster = cluster_or_none(ctx)
            failures = finalization_failures(cluster) if cluster else []
            raise StepError(
                "\n".join(["the cluster reports UPGRADE_TASKS_FAILED", *failures]),
                hint=TASKS_FAILED_HINT,
            )

    def state() -> ClusterState:
        cluster = cluster_or_none(ctx)
        return cluster.state if cluster else ClusterState.UNKNOWN

    try:
        poll(state, until=lambda s: s in wanted, deadline=Deadline.after(ctx.clock, seconds), on_wait=judge)
    except TimedOut as timed_out:
        raise WaitTimedOut(
            f"the cluster stayed {timed_out.last.value} for {seconds:.0f} s "
            f"(waiting for {', '.join(sorted(s.value for s in wanted))})",
            hint="`confluo status` shows every node's state and version",
        ) from timed_out


@dataclass(frozen=True)
class EnableUpgradeMode(Waited):
    kind = StepKind.UPGRADE_MODE_ON

    settle_seconds: float  # how long the cluster may take to show a change every node has made

    def describe(self) -> Preview:
        return Preview(waits=("READY_TO_UPGRADE",))

    def is_done(self, ctx: StepContext) -> bool:
        cluster = cluster_or_none(ctx)
        return cluster is not None and cluster.upgrade_mode

    def apply(self, ctx: StepContext) -> None:
        transition(
            ctx,
            ctx.api.start_upgrade,
            lambda cluster: cluster.upgrade_mode,
            "the cluster changed state since the preflight; `confluo status` shows it",
            self.settle_seconds,
        )
        wait_for_cluster(ctx, frozenset({ClusterState.READY_TO_UPGRADE, ClusterState.MIXED}), self.settle_seconds)


@dataclass(frozen=True)
class Finalize(Waited):
    kind = StepKind.FINALIZE

    settle_seconds: float
    tasks_seconds: float  # the upgrade tasks may run long: the inventory's finalize timeout

    @property
    def deadline_seconds(self) -> float:
        return self.tasks_seconds

    def describe(self) -> Preview:
        return Preview(waits=("READY_TO_RUN_UPGRADE_TASKS before, then the upgrade tasks run until STABLE",))

    def is_done(self, ctx: StepContext) -> bool:
        cluster = cluster_or_none(ctx)
        return cluster is not None and cluster.state is ClusterState.STABLE and not cluster.upgrade_mode

    def apply(self, ctx: StepContext) -> None:
        wait_for_cluster(ctx, frozenset({ClusterState.READY_TO_RUN_UPGRADE_TASKS}), self.settle_seconds)
        transition(
            ctx,
            ctx.api.approve_upgrade,
            lambda cluster: not cluster.upgrade_mode,
            "the cluster is not READY_TO_RUN_UPGRADE_TASKS; `confluo status` shows which node differs",
            self.settle_seconds,
        )
        wait_for_cluster(ctx, frozenset({ClusterState.STABLE}), self.tasks_seconds)


@dataclass(frozen=True)
class CancelUpgradeMode(Waited):
    """Upgrade mode off again: the cluster allows it only while no node runs another version (READY_TO_UPGRADE)."""

    kind = StepKind.UPGRADE_MODE_OFF

    settle_seconds: float

    def describe(self) -> Preview:
        return Preview(waits=("STABLE, upgrade mode off",))

    def is_done(self, ctx: StepContext) -> bool:
        cluster = cluster_or_none(ctx)
        return cluster is not None and not cluster.upgrade_mode

    def apply(self, ctx: StepContext) -> None:
        # Right after a node rejoins, the cluster may still show it as it was: wait until every node is back.
        wait_for_cluster(ctx, frozenset({ClusterState.READY_TO_UPGRADE}), self.settle_seconds)
        transition(
            ctx,
            ctx.api.cancel_upgrade,
            lambda cluster: not cluster.upgrade_mode,
            "a node runs another version, so the cluster keeps upgrade mode on; `confluo status` shows which",
            self.settle_seconds,
        )
        wait_for_cluster(ctx, frozenset({ClusterState.STABLE}), self.settle_seconds)


@dataclass(frozen=True)
class RetryFinalize(Waited):
    """After UPGRADE_TASKS_FAILED: run the upgrade tasks again (POST /rest/zdu/retryUpgrade), until STABLE."""

    kind = StepKind.RETRY_FINALIZE

    tasks_seconds: float

    @property
    def deadline_seconds(self) -> float:
        return self.tasks_seconds

    def describe(self) -> Preview:
        return Preview(waits=("the upgrade tasks run again until STABLE",))

    def is_done(self, ctx: StepContext) -> bool:
        cluster = cluster_or_none(ctx)
        return cluster is not None and cluster.state is ClusterState.STABLE and not cluster.upgrade_mode

    def apply(self, ctx: StepContext) -> None:
        transition(
            ctx,
            ctx.api.retry_upgrade,
            lambda cluster: cluster.state is not ClusterState.UPGRADE_TASKS_FAILED,
            "the cluster is not UPGRADE_TASKS_FAILED any more; `confluo status` shows where it stands",
            self.tasks_seconds,
        )
        wait_for_cluster(ctx, frozenset({ClusterState.STABLE}), self.tasks_seconds)
