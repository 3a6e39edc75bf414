"""Carries out a Plan: the only place that changes anything. Every wait has a deadline; every step first asks
the node whether it is already done, so a step repeated after a lost connection, or a run repeated after a failure
in pre-staging, does only what is left."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from confluo.cluster_api import (
    ApiError,
    ClusterApi,
    ClusterInfo,
    ClusterState,
    InvalidTransition,
    NodeState,
    StatusState,
    node_status,
)
from confluo.errors import ConfluoError, StepFailed
from confluo.events import EventBus
from confluo.parallel import in_parallel
from confluo.plan import Plan, least_busy_order
from confluo.remote import Remote
from confluo.steps import (
    PRESTAGE_STEPS,
    ROLLING_STEPS,
    NodeUpgrade,
    Step,
    StepContext,
    TransferArchive,
    cluster_entry,
    prune_command,
)
from confluo.transport import CommandFailed, ConnectionFailed, ConnectionLost, TransportError

POLL_SECONDS = 0.1
TRANSITION_ATTEMPTS = 4
RECONNECT_PAUSES = (1.0, 2.0, 4.0, 8.0)  # then the step fails: about 15 s without SSH


@dataclass
class RunReport:
    """Timings of a finished run, per node and phase (seconds), for the summary and the benchmarks."""

    prestage_seconds: float = 0.0
    rolling_seconds: float = 0.0
    finalize_seconds: float = 0.0
    out_of_service: dict[str, float] = field(default_factory=dict)  # stop begun -> ACTIVE again
    stop_seconds: dict[str, float] = field(default_factory=dict)
    start_seconds: dict[str, float] = field(default_factory=dict)
    bytes_sent: int = 0


class Executor:
    def __init__(self, plan: Plan, remotes: Mapping[str, Remote], api: ClusterApi, events: EventBus) -> None:
        self.plan = plan
        self.remotes = remotes
        self.api = api
        self.events = events
        self.report = RunReport()
        self._upgrades = {u.node.name: u for u in plan.upgrades}

    def run(self) -> RunReport:
        started = time.monotonic()
        self.events.emit(
            "run_started",
            f"upgrading {self.plan.cluster_name} from {self.plan.source_version} to {self.plan.target_version}",
            nodes=[u.node.name for u in self.plan.upgrades],
        )
        self._prestage()
        self.report.prestage_seconds = time.monotonic() - started
        rolling_started = time.monotonic()
        self._enable_upgrade_mode()
        self._roll()
        self.report.rolling_seconds = time.monotonic() - rolling_started
        finalize_started = time.monotonic()
        self._finalize()
        self.report.finalize_seconds = time.monotonic() - finalize_started
        self._prune()
        self.events.emit(
            "run_finished",
            f"{self.plan.cluster_name} runs {self.plan.target_version} on every node; the cluster is STABLE",
            result="success",
            seconds=round(time.monotonic() - started, 2),
        )
        return self.report

    # -- phases ----------------------------------------------------------------------------------------------

    def _prestage(self) -> None:
        def stage(upgrade: NodeUpgrade) -> None:
            for step_type in PRESTAGE_STEPS:
                self._do(step_type(upgrade), phase="pre-stage")

        upgrades = list(self.plan.upgrades)
        if upgrades and upgrades[0].shared_staging:
            # One node sends the archive into the shared home; the others then find it there, verified.
            stage(upgrades.pop(0))
        in_parallel(upgrades, stage)

    def _enable_upgrade_mode(self) -> None:
        cluster = self.api.cluster()
        if cluster.upgrade_mode:
            self.events.emit("phase_skipped", "upgrade mode is already on", phase="upgrade mode")
            return
        self.events.emit("phase_started", "enabling upgrade mode", phase="upgrade mode")
        self._transition(
            self.api.start_upgrade,
            lambda cluster: cluster.upgrade_mode,
            "enable upgrade mode",
            "POST /rest/zdu/start",
            "the cluster changed state since the preflight; `confluo status` shows it",
        )
        self._wait_cluster({ClusterState.READY_TO_UPGRADE, ClusterState.MIXED}, self._api_wait(), "upgrade mode")
        self.events.emit("phase_done", "upgrade mode is on", phase="upgrade mode")

    def _roll(self) -> None:
        remaining = [name for name in self.plan.order]
        while remaining:
            name = self._pick(remaining)
            remaining.remove(name)
            self._upgrade_node(self._upgrades[name])

    def _pick(self, remaining: list[str]) -> str:
        """The next node: one that serves nobody now (upgrading it costs no capacity), else the least busy, read
        again now. A serving node is taken out only while every other node serves: never two out at once."""
        deadline = time.monotonic() + max(u.node.timeouts.start_seconds for u in self.plan.upgrades)
        while True:
            cluster = self._cluster_or_none()
            down = self._not_serving(cluster)
            nodes = [self._upgrades[n].node for n in remaining]
            name = least_busy_order(nodes, cluster, down)[0] if cluster else remaining[0]
            others_down = sorted(down - {name})
            if name in down or not others_down:
                return name
            if time.monotonic() > deadline:
                raise StepFailed(
                    node=name,
                    step="keep capacity",
                    command=None,
                    exit_status=None,
                    output_tail=f"not stopped: {', '.join(others_down)} not serving, so stopping {name} would take "
                    "a second node out of service",
                    hint="bring the other node back (its logs say why it stopped); `confluo status` shows the cluster",
                )
            self.events.emit("waiting", f"before {name}: {', '.join(others_down)} not serving", node=name)
            time.sleep(POLL_SECONDS)

    def _not_serving(self, cluster: ClusterInfo | None) -> set[str]:
        """Nodes not ACTIVE in the cluster or not RUNNING on /status: the cluster notices a crash only later."""
        nodes = [u.node for u in self.plan.upgrades]
        statuses = in_parallel(nodes, lambda n: node_status(n.url, timeout=2, verify_tls=self.api.verify_tls))
        down = set()
        for node, status in zip(nodes, statuses, strict=True):
            entry = cluster_entry(cluster, node) if cluster else None
            if status is not StatusState.RUNNING or entry is None or entry.state is not NodeState.ACTIVE:
                down.add(node.name)
        return down

    def _upgrade_node(self, upgrade: NodeUpgrade) -> None:
        name = upgrade.node.name
        self.events.emit("node_started", f"{name}: upgrading", node=name)
        steps = [step_type(upgrade) for step_type in ROLLING_STEPS]
        out_of_service_from: float | None = None
        for step in steps:
            began = time.monotonic()
            did_work = self._do(step, phase=step.name)
            if step.name == "stop" and did_work:
                out_of_service_from = began
                self.report.stop_seconds[name] = time.monotonic() - began
            if step.name == "start" and did_work:
                self.report.start_seconds[name] = time.monotonic() - began
        if out_of_service_from is not None:
            self.report.out_of_service[name] = time.monotonic() - out_of_service_from
        self.events.emit("node_done", f"{name}: ACTIVE on {upgrade.target_version}", node=name)

    def _finalize(self) -> None:
        timeout = max(u.node.timeouts.finalize_seconds for u in self.plan.upgrades)
        cluster = self.api.cluster()
        if cluster.state is ClusterState.STABLE and not cluster.upgrade_mode:
            self.events.emit("phase_skipped", "already finalized", phase="finalize")
            return
        self.events.emit("phase_started", "finalizing: running the upgrade tasks", phase="finalize")
        self._wait_cluster({ClusterState.READY_TO_RUN_UPGRADE_TASKS}, self._api_wait(), "finalize")
        self._transition(
            self.api.approve_upgrade,
            lambda cluster: not cluster.upgrade_mode,
            "finalize",
            "POST /rest/zdu/approve",
            "the cluster is not READY_TO_RUN_UPGRADE_TASKS; `confluo status` shows which node differs",
        )
        self._wait_cluster({ClusterState.STABLE}, timeout, "finalize")
        self.events.emit("phase_done", "upgrade finalized; upgrade mode is off", phase="finalize")

    def _transition(
        self, call: Callable[[], object], happened: Callable[[ClusterInfo], bool], step: str, request: str, hint: str
    ) -> None:
        """A ZDU state change. 409: the cluster is not in the state the call needs. Any other failure may have
        happened after the change took effect (the node behind the load balancer failed as it answered): the
        cluster is asked, and the call repeated only if the change did not happen."""
        for attempt in range(1, TRANSITION_ATTEMPTS + 1):
            try:
                call()
                return
            except InvalidTransition as exc:
                raise StepFailed(
                    node="cluster", step=step, command=request, exit_status=409, output_tail="", hint=hint
                ) from exc
            except ApiError as exc:
                if self._reached(happened):
                    return
                if attempt == TRANSITION_ATTEMPTS:
                    raise StepFailed(
                        node="cluster", step=step, command=request, exit_status=None, output_tail=exc.message, hint=hint
                    ) from exc
                self.events.emit("waiting", f"{request} failed ({exc.message}); trying again", phase=step)
                time.sleep(POLL_SECONDS * 5 * attempt)

    def _reached(self, happened: Callable[[ClusterInfo], bool]) -> bool:
        cluster = self._cluster_or_none()
        return cluster is not None and happened(cluster)

    def _cluster_or_none(self) -> ClusterInfo | None:
        """The cluster now, or None while its API fails (the callers wait, within their deadlines)."""
        try:
            return self.api.cluster()
        except ApiError:
            return None

    def _api_wait(self) -> float:
        """How long the cluster may take to reflect a change every node has already made."""
        return max(u.node.timeouts.start_seconds for u in self.plan.upgrades)

    def _prune(self) -> None:
        for node, paths in self.plan.prune.items():
            for path in paths:
                self.remotes[node].run(prune_command(path), check=False)
                self.events.emit("note", f"{node}: removed old installation {path}", node=node)

    # -- mechanics -------------------------------------------------------------------------------------------

    def _do(self, step: Step, *, phase: str) -> bool:
        """Runs one step unless the node shows it is done already. True when it did work.

        A lost SSH connection is not the step's failure: confluo reconnects and asks the node again, which is
        safe because every step first checks whether it is already done.
        """
        name = step.u.node.name
        for pause in (*RECONNECT_PAUSES, None):
            try:
                return self._attempt(step, phase)
            except (ConnectionLost, ConnectionFailed) as exc:
                if pause is None:
                    raise _step_failed(step, exc) from exc
                self.events.emit(
                    "waiting", f"SSH lost ({exc.message}); reconnecting in {pause:.0f} s", node=name, phase=phase
                )
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _attempt(self, step: Step, phase: str) -> bool:
        name = step.u.node.name
        ctx = StepContext(
            remote=self.remotes[name],
            api=self.api,
            on_wait=lambda observed: self.events.emit("waiting", observed, node=name, phase=phase),
        )
        try:
            if step.is_done(ctx):
                self.events.emit("phase_skipped", f"{name}: {step.name}: already done", node=name, phase=phase)
                return False
            deadline = _deadline_for(step)
            self.events.emit("phase_started", f"{name}: {step.name}", node=name, phase=phase, deadline=deadline)
            began = time.monotonic()
            step.apply(ctx)
        except (ConnectionLost, ConnectionFailed):
            raise
        except ConfluoError as exc:
            raise _step_failed(step, exc) from exc
        seconds = time.monotonic() - began
        if isinstance(step, TransferArchive):
            self.report.bytes_sent += step.bytes_sent
        self.events.emit(
            "phase_done", f"{name}: {step.name} ({seconds:.1f} s)", node=name, phase=phase, seconds=round(seconds, 3)
        )
        return True

    def _wait_cluster(self, wanted: set[ClusterState], timeout: float, phase: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            cluster = self._cluster_or_none()
            state = cluster.state if cluster else ClusterState.UNKNOWN
            if state in wanted:
                return
            if state is ClusterState.UPGRADE_TASKS_FAILED:
                raise StepFailed(
                    node="cluster",
                    step=phase,
                    command=None,
                    exit_status=None,
                    output_tail="the cluster reports UPGRADE_TASKS_FAILED",
                    hint="see the nodes' atlassian-confluence.log; POST /rest/zdu/retryUpgrade retries the tasks",
                )
            if time.monotonic() > deadline:
                raise StepFailed(
                    node="cluster",
                    step=phase,
                    command=None,
                    exit_status=None,
                    output_tail=f"the cluster stayed {state.value} for {timeout:.0f} s "
                    f"(waiting for {', '.join(sorted(s.value for s in wanted))})",
                    hint="`confluo status` shows every node's state and version",
                )
            self.events.emit("waiting", f"cluster {state.value}", phase=phase)
            time.sleep(POLL_SECONDS)


def _step_failed(step: Step, exc: ConfluoError) -> StepFailed:
    """What the user reads: the node, the step, the command and its output where there was one, what to do."""
    if isinstance(exc, CommandFailed):
        command, status, tail = exc.result.command, exc.result.exit_status, exc.result.tail()
    else:
        command, status, tail = None, None, exc.message
    hint = _halt_hint(step) if isinstance(exc, TransportError) else exc.hint or _halt_hint(step)
    return StepFailed(
        node=step.u.node.name, step=step.name, command=command, exit_status=status, output_tail=tail, hint=hint
    )


def _deadline_for(step: Step) -> float | None:
    timeouts = step.u.node.timeouts
    return {"stop": timeouts.stop_seconds, "start": timeouts.start_seconds}.get(step.name)


def _halt_hint(step: Step) -> str:
    if step.name in ("transfer archive", "extract release"):
        return (
            "only the pre-staged files were written; the cluster and the installations in use are untouched. "
            "Run `confluo upgrade` again once the cause is fixed."
        )
    return (
        f"the run halted at {step.u.node.name}: {step.name}. The other nodes keep serving, old installations "
        "and every home are untouched. `confluo status` shows where the cluster stands."
    )
