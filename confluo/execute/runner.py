"""Walks a Plan: every step skipped if the host shows it done, else applied and verified; one node at a time in
the rolling phase, chosen just in time; a lost SSH connection survived by reconnecting and asking again.

Every step first asks the node whether it is already done, so a step repeated after a lost connection, or a run
repeated after a failure, does only what is left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from confluo.api.base import ApiError, ClusterApi, ClusterInfo
from confluo.errors import ConfluoError, ExitCode, NothingChanged, RolledBack, StepFailed
from confluo.events import EventBus
from confluo.execute.synchrony import upgrade_synchrony
from confluo.inventory import Node
from confluo.loadbalancer.base import LoadBalancer, pool_view
from confluo.parallel import in_parallel
from confluo.plan.model import NodeWork, Plan
from confluo.plan.order import Pick, Snapshot, Wait, next_node
from confluo.steps.base import PRESTAGE_KINDS, Step, StepContext, StepKind
from confluo.transport.base import CommandFailed, ConnectionFailed, ConnectionLost, TransportError
from confluo.transport.remote import HostShell, Remote
from confluo.waits import SYSTEM_CLOCK, Clock, Deadline, TimedOut, poll, retry

RECONNECT_PAUSES = (1.0, 2.0, 4.0, 8.0)  # then the step fails: about 15 s without SSH
STATUS_TIMEOUT_SECONDS = 2.0


class Runner:
    def __init__(
        self,
        plan: Plan,
        remotes: Mapping[str, Remote],
        api: ClusterApi,
        events: EventBus,
        clock: Clock = SYSTEM_CLOCK,
        on_failure: str = "rollback",
        balancer: LoadBalancer | None = None,
        synchrony: Mapping[str, HostShell] | None = None,
    ) -> None:
        self.plan = plan
        self.remotes = remotes
        self.synchrony = synchrony or {}  # the standalone Synchrony nodes' shells
        self.api = api
        self.events = events
        self.clock = clock
        self.on_failure = on_failure  # "rollback" a failed node onto its old installation, or "halt" as it is
        self.balancer = balancer  # None: no load balancer, and no load-balancer step in the plan
        self.upgraded = {work.node for work in plan.rolling if work.upgraded}
        self.changed = False  # whether any step has applied a change yet: it decides the exit code
        self._ready_node: Node | None = None  # the node upgraded last, and when it was seen serving
        self._ready_at = 0.0

    def run(self) -> None:
        """Raises a ConfluoError whose exit code says whether anything was changed before it failed."""
        try:
            self._run()
        except ConfluoError as exc:
            if not self.changed and exc.exit_code is ExitCode.FAILED_AFTER_CHANGES:
                raise NothingChanged(exc) from exc
            raise

    def _run(self) -> None:
        plan = self.plan
        upgrade = plan.goal == "upgrade"
        self.events.emit(
            "run_started",
            f"upgrading {plan.cluster_name} from {plan.source_version} to {plan.target_version}"
            if upgrade
            else f"{plan.goal}: {plan.cluster_name}",
            nodes=list(plan.nodes),
        )
        for note in plan.notes:
            self.events.emit("note", f"note: {note}")
        self._cluster_steps(plan.reconcile, "load balancer")  # nodes an interrupted run left out of the pool
        self._prestage()
        self._cluster_steps(plan.before, "upgrade mode")
        self._roll()
        self._cluster_steps(plan.finalize, "finalize" if upgrade else plan.goal)
        for step in plan.prune:
            self._do(step, phase="prune")
        self.events.emit("run_finished", plan.ending(), result="success")

    # -- phases ----------------------------------------------------------------------------------------------

    def _prestage(self) -> None:
        def stage(work: NodeWork) -> None:
            for step in work.steps:
                self._do(step, phase=step.name)

        works = list(self.plan.prestage)
        if works and self.plan.shared_staging:
            # One node sends the archive into the shared home; the others then find it there, verified.
            stage(works.pop(0))
        in_parallel(works, stage)

    def _cluster_steps(self, steps: Sequence[Step], phase: str) -> None:
        for step in steps:
            self._do(step, phase=phase)

    def _roll(self) -> None:
        remaining = list(self.plan.rolling)
        synchrony = self.plan.goal == "upgrade" and bool(self.plan.synchrony)
        while remaining:
            work = self._next(remaining)
            remaining.remove(work)
            self._node(work)
            if synchrony:  # the first node runs the target now: the Synchrony nodes get its jar
                synchrony = False
                works, upgraded, target = self.plan.synchrony_from(work.node), self.upgraded, self.plan.target_version
                upgrade_synchrony(works, self._do, self.events, source=work.node, restore=self.on_failure == "rollback",
                                  upgraded=upgraded, target=target)  # fmt: skip

    def _next(self, remaining: list[NodeWork]) -> NodeWork:
        """The next node, chosen now; while taking it out would leave no second node serving, wait for one."""
        every = [remote.node for remote in self.remotes.values()]  # all of them: a rollback may touch only one
        candidates = [self.remotes[work.node].node for work in remaining]
        by_name = {work.node: work for work in remaining}
        soak = self._ready_node.timeouts.min_ready_seconds if self._ready_node else 0.0
        soaked_at = self._ready_at + soak
        # A Pick is never timed out: the soak alone cannot outlast the deadline.
        deadline = Deadline.after(self.clock, soak + max(node.timeouts.start_seconds for node in every))

        def ready(choice: Pick | Wait) -> bool:
            return isinstance(choice, Pick) and self.clock.monotonic() >= soaked_at

        def report_wait(choice: Pick | Wait) -> None:
            if isinstance(choice, Wait):
                self.events.emit("waiting", choice.reason, node=choice.node)
            elif self._ready_node is not None:
                self.events.emit("waiting", f"{self._ready_node.name} serving; min_ready_seconds", node=choice.node)

        try:
            choice = poll(
                lambda: next_node(candidates, every, self._snapshot(every)),
                until=ready,
                deadline=deadline,
                on_wait=report_wait,
            )
        except TimedOut as timed_out:
            last: Wait = timed_out.last
            raise StepFailed(
                node=last.node,
                step="keep capacity",
                command=None,
                exit_status=None,
                output_tail=f"not stopped: {', '.join(last.others_down)} not serving, so stopping "
                f"{last.node} would take a second node out of service"
                if last.others_down
                else f"not stopped: the cluster API did not answer, so nothing says {last.node} may go",
                hint="bring the other node back (its logs say why it stopped); `confluo status` shows the cluster",
            ) from timed_out
        return by_name[choice.node]

    def _snapshot(self, nodes: Sequence[Node]) -> Snapshot:
        statuses = in_parallel(list(nodes), lambda n: self.api.node_status(n.url, timeout=STATUS_TIMEOUT_SECONDS))
        status = {n.name: s for n, s in zip(nodes, statuses, strict=True)}
        return Snapshot(self._cluster_or_none(), status, pool_view(self.balancer, nodes))

    def _cluster_or_none(self) -> ClusterInfo | None:
        try:
            return self.api.cluster()
        except ApiError:
            return None

    def _node(self, work: NodeWork) -> None:
        doing = "upgrading" if self.plan.goal == "upgrade" else self.plan.doing
        self.events.emit("node_started", f"{work.node}: {doing}", node=work.node)
        stopped = False  # before its stop completes, a failure changed nothing on the node: nothing to undo
        try:
            for step in work.steps:
                self._do(step, phase=step.name)
                stopped = stopped or step.kind is StepKind.STOP
        except StepFailed as failure:
            # A node that fails while going back stays as it is: there is nothing further back to go to.
            if self.on_failure == "rollback" and stopped and self.plan.goal == "upgrade":
                self._roll_back(work, failure)
            raise
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM: the node in progress is never left down or half-swapped.
            self._roll_back(work, None)
            raise
        self.upgraded.add(work.node)
        self._ready_node, self._ready_at = self.remotes[work.node].node, self.clock.monotonic()
        self.events.emit("node_done", f"{work.node}: ACTIVE on {self.plan.target_version}", node=work.node)

    def _roll_back(self, work: NodeWork, failure: StepFailed | None) -> None:
        """The node back on its old installation, ACTIVE on the source version; upgrade mode off if no node
        remains upgraded. Raises what the user reads; returns only after an interrupt (which then goes on)."""
        source = work.back_on or self.plan.source_version
        if not work.rollback:
            return  # the plan found no old installation to go back to; the failure says what happened
        self.events.emit("rollback_started", f"{work.node}: putting it back on {source}", node=work.node)
        try:
            for step in work.rollback:
                self._do(step, phase=f"rollback: {step.name}")
        except StepFailed as second:
            raise second.while_putting_back(failure, "rolling back", work.node) from failure
        self.events.emit("node_rolled_back", f"{work.node}: ACTIVE on {source} again", node=work.node)
        if not self.upgraded:
            for step in self.plan.cancel:
                self._do(step, phase="upgrade mode")
        if failure is None:
            return
        if not self.upgraded:
            raise RolledBack(
                f"{failure.message}\n  rolled back: {work.node} is ACTIVE on {source} again; upgrade mode is off "
                f"and the cluster is STABLE on {source}",
                hint=f"{failure.hint}. Once the cause is fixed, run `confluo upgrade` again.",
            ) from failure
        raise StepFailed(
            node=failure.node,
            step=failure.step,
            command=failure.command,
            exit_status=failure.exit_status,
            output_tail=failure.output_tail
            + f"\nrolled back: {work.node} is ACTIVE on {source} again; {', '.join(sorted(self.upgraded))} run "
            f"{self.plan.target_version}, so upgrade mode stays on (the cluster is MIXED and serving)",
            hint=f"{failure.hint}. Once the cause is fixed, `confluo upgrade` again continues where this stopped.",
        ) from failure

    # -- one step --------------------------------------------------------------------------------------------

    def _do(self, step: Step, *, phase: str) -> bool:
        """Runs one step unless the host shows it done already. True when it did work.

        A lost SSH connection is not the step's failure: confluo reconnects and asks the node again, which is
        safe because every step first checks whether it is already done.
        """

        def reconnecting(error: Exception, pause: float) -> None:
            message = error.message if isinstance(error, ConfluoError) else str(error)
            self.events.emit(
                "waiting", f"SSH lost ({message}); reconnecting in {pause:.0f} s", node=step.node, phase=phase
            )

        try:
            return retry(
                lambda: self._attempt(step, phase),
                on=(ConnectionLost, ConnectionFailed),
                pauses=RECONNECT_PAUSES,
                clock=self.clock,
                on_retry=reconnecting,
            )
        except (ConnectionLost, ConnectionFailed) as exc:
            raise _step_failed(step, exc) from exc

    def _attempt(self, step: Step, phase: str) -> bool:
        node = step.node
        label = f"{node}: {step.name}" if node else step.name
        ctx = StepContext(
            api=self.api,
            remote=(self.remotes.get(node) or self.synchrony[node]) if node else None,
            peer=self.remotes[step.peer] if step.peer else None,
            clock=self.clock,
            on_wait=lambda observed: self.events.emit("waiting", observed, node=node, phase=phase),
            on_note=lambda message: self.events.emit("note", message, node=node, phase=phase),
            balancer=self.balancer,
            peers=self.remotes,
        )
        kind = step.kind.name.lower()
        try:
            if step.is_done(ctx):
                self.events.emit("phase_skipped", f"{label}: already done", node=node, phase=phase, step=kind)
                return False
            deadline = step.deadline_seconds
            self.events.emit("phase_started", label, node=node, phase=phase, deadline=deadline, step=kind)
            began = self.clock.monotonic()
            self.changed = True
            figures = step.apply(ctx) or {}
            step.verify(ctx)
        except (ConnectionLost, ConnectionFailed):
            raise
        except ConfluoError as exc:
            raise _step_failed(step, exc) from exc
        seconds = self.clock.monotonic() - began
        self.events.emit(
            "phase_done", f"{label} ({seconds:.1f} s)", node=node, phase=phase, seconds=round(seconds, 3),
            step=kind, **figures,
        )  # fmt: skip
        return True


def _step_failed(step: Step, exc: ConfluoError) -> StepFailed:
    """What the user reads: the node, the step, the command and its output where there was one, what to do."""
    if isinstance(exc, CommandFailed):
        command, status, tail = exc.result.command, exc.result.exit_status, exc.result.tail()
    else:
        command, status, tail = None, None, exc.message
    hint = _halt_hint(step) if isinstance(exc, TransportError) else exc.hint or _halt_hint(step)
    return StepFailed(
        node=step.node or "cluster", step=step.name, command=command, exit_status=status, output_tail=tail, hint=hint
    )


def _halt_hint(step: Step) -> str:
    if step.kind in PRESTAGE_KINDS:
        return (
            "only the pre-staged files were written; the cluster and the installations in use are untouched. "
            "Run `confluo upgrade` again once the cause is fixed."
        )
    where = f"{step.node}: {step.name}" if step.node else step.name
    return (
        f"the run halted at {where}. The other nodes keep serving, old installations and every home are "
        "untouched. `confluo status` shows where the cluster stands."
    )
