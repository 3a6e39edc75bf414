"""A Plan: the steps of a run as frozen values, grouped the way the runner walks them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from confluo.steps.base import Preview, Step


class Phase(enum.Enum):
    RECONCILE = "load balancer: nodes an earlier run left out of the pool"
    PRESTAGE = "pre-stage (all nodes in parallel)"
    UPGRADE_MODE = "enable upgrade mode"
    ROLLING = "rolling"
    FINALIZE = "finalize"
    PRUNE = "prune old installations"


@dataclass(frozen=True)
class NodeWork:
    """One node's steps in the rolling phase, and the steps that put it back on its old installation."""

    node: str
    steps: tuple[Step, ...]
    rollback: tuple[Step, ...] = ()
    upgraded: bool = False  # it ran the target already when the plan was made (a resumed run)
    back_on: str | None = None  # the version `rollback` lands on, when not the plan's source version


@dataclass(frozen=True)
class PlannedStep:
    """One line of the plan as `plan` shows it."""

    phase: str
    node: str | None
    step: Step

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def preview(self) -> Preview:
        return self.step.describe()


@dataclass(frozen=True)
class Plan:
    """`goal`: upgrade; rollback (its rolling phase puts nodes back); cancel / finalize, which only bring an upgrade
    in progress to its end."""

    cluster_name: str
    source_version: str
    target_version: str
    prestage: tuple[NodeWork, ...] = ()  # in parallel; with a shared home the first node's transfer goes first
    shared_staging: bool = False
    reconcile: tuple[Step, ...] = ()  # first of all: nodes an interrupted run left out of the load balancer's pool
    before: tuple[Step, ...] = ()  # cluster-wide, before the rolling phase
    rolling: tuple[NodeWork, ...] = ()  # least busy first as the cluster reports now; re-chosen before each node
    finalize: tuple[Step, ...] = ()
    cancel: tuple[Step, ...] = ()  # upgrade mode off again, when a rollback leaves no node upgraded
    prune: tuple[Step, ...] = ()
    nothing_to_do: bool = False
    goal: str = "upgrade"
    new_installs: Mapping[str, str] = field(default_factory=dict)  # node -> the installation it will run
    notes: tuple[str, ...] = ()  # worth knowing before saying yes, no reason to refuse
    # Standalone Synchrony, by the node whose jar it gets: the first one upgraded, known only as the run goes.
    synchrony: Mapping[str, tuple[NodeWork, ...]] = field(default_factory=dict)

    def synchrony_from(self, node: str) -> tuple[NodeWork, ...]:
        """The Synchrony nodes' work once `node`, the first one upgraded, is ACTIVE on the target."""
        return tuple(self.synchrony.get(node, ()))

    @property
    def doing(self) -> str:
        """What the rolling phase does to each node, as its events and the plan name it."""
        return {"rollback": "rolling back", "restart": "restarting", "add-node": "adding"}.get(self.goal, "rolling")

    def ending(self) -> str:
        """How the cluster stands once the plan has run."""
        if self.goal == "upgrade":
            return f"{self.cluster_name} runs {self.target_version} on every node; the cluster is STABLE"
        if self.goal == "add-node":
            return f"add-node: {', '.join(self.order)} ACTIVE in the cluster on {self.target_version}"
        if self.goal == "restart":
            return f"restart: {', '.join(self.order)} restarted, each ACTIVE again on {self.target_version}"
        if self.goal == "rollback" and not self.finalize:
            back = ", ".join(self.order)
            return f"rollback: {back} back on {self.target_version}; upgrade mode stays on while others run the new one"
        return f"{self.goal}: done; the cluster is STABLE"

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(work.node for work in self.rolling)

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(work.node for work in (*self.prestage, *self.rolling)))

    def steps(self) -> list[PlannedStep]:
        """Every step in the order the run takes them."""
        planned = [PlannedStep(Phase.RECONCILE.value, s.node, s) for s in self.reconcile]
        planned += [PlannedStep(Phase.PRESTAGE.value, w.node, s) for w in self.prestage for s in w.steps]
        planned += [PlannedStep(Phase.UPGRADE_MODE.value, None, s) for s in self.before]
        rolling = self.doing
        for index, work in enumerate(self.rolling):
            planned += [PlannedStep(f"{rolling}: {work.node}", work.node, s) for s in work.steps]
            if index == 0:  # as the order stands now: the jar comes from the node that is upgraded first
                for synchrony in self.synchrony_from(work.node):
                    phase = f"synchrony: {synchrony.node} (jar from {work.node})"
                    planned += [PlannedStep(phase, synchrony.node, s) for s in synchrony.steps]
        planned += [PlannedStep(Phase.FINALIZE.value, None, s) for s in self.finalize]
        planned += [PlannedStep(Phase.PRUNE.value, s.node, s) for s in self.prune]
        return planned
