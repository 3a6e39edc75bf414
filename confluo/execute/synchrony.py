"""Standalone Synchrony in a run: once the first Confluence node is ACTIVE on the target, each Synchrony node in
turn is taken onto that node's jar; one that does not come back gets its old jar again and is started, and the
run halts naming it. The runner walks each step (skip if done, apply, verify); this module only orders them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from confluo.errors import StepFailed
from confluo.events import EventBus
from confluo.plan.model import NodeWork
from confluo.steps.base import Step, StepKind


class Do(Protocol):
    def __call__(self, step: Step, *, phase: str) -> bool: ...


def upgrade_synchrony(
    works: Sequence[NodeWork],
    do: Do,
    events: EventBus,
    *,
    source: str,
    restore: bool,
    upgraded: Collection[str],
    target: str,
) -> None:
    """`restore`: a Synchrony node that fails once stopped gets its old jar back (on_failure: rollback)."""
    for work in works:
        _one(work, do, events, source, restore, lambda: _running(sorted(upgraded), target))


def _one(work: NodeWork, do: Do, events: EventBus, source: str, restore: bool, upgraded: Callable[[], str]) -> None:
    events.emit("node_started", f"{work.node}: Synchrony onto {source}'s jar", node=work.node)
    stopping = False  # from the stop on, the node may be down: a failure or an interrupt puts it back
    try:
        for step in work.steps:
            stopping = stopping or step.kind is StepKind.SYNCHRONY_STOP
            do(step, phase=f"synchrony: {step.name}")
    except StepFailed as failure:
        if restore and stopping:
            _restore(work, do, events, failure, upgraded)
        raise
    except KeyboardInterrupt:
        if stopping:  # Ctrl-C or SIGTERM: the node in progress is never left down
            _restore(work, do, events, None, upgraded)
        raise
    events.emit("node_done", f"{work.node}: Synchrony runs {source}'s jar, heartbeat OK", node=work.node)


def _running(nodes: list[str], target: str) -> str:
    return f"{', '.join(nodes)} {'runs' if len(nodes) == 1 else 'run'} {target}"


def _restore(work: NodeWork, do: Do, events: EventBus, failure: StepFailed | None, upgraded: Callable[[], str]) -> None:
    """The old jar back, started, heartbeat OK; then the failure goes on, saying so. Returns only after an
    interrupt (which then goes on)."""
    events.emit("rollback_started", f"{work.node}: putting Synchrony back on its old jar", node=work.node)
    try:
        for step in work.rollback:
            do(step, phase=f"synchrony rollback: {step.name}")
    except StepFailed as second:
        raise second.while_putting_back(failure, "restoring the old jar", f"Synchrony on {work.node}") from failure
    events.emit("node_rolled_back", f"{work.node}: Synchrony serves its old jar again, heartbeat OK", node=work.node)
    if failure is None:
        return
    raise StepFailed(
        node=failure.node,
        step=failure.step,
        command=failure.command,
        exit_status=failure.exit_status,
        output_tail=failure.output_tail
        + f"\nrestored: Synchrony on {work.node} serves its old jar again (heartbeat OK); {upgraded()}, so upgrade "
        "mode stays on (the cluster is MIXED and serving)",
        hint=f"{failure.hint}. Once the cause is fixed, `confluo upgrade` again continues where this stopped "
        "(a Synchrony node already on the new jar is left as it is)",
    ) from failure
