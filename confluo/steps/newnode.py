"""A copied node made its own (its name, address, user and local home's identity, each file edited where it
lies), then started and joined to the cluster: never while another node starts, and stopped again if it does
not join ACTIVE or the nodes serving before stop serving, so it never stays half-joined."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluo import configfiles, identity
from confluo.api.base import ApiError, ClusterInfo, NodeState, cluster_entry
from confluo.steps.base import FileChange, Host, NodeFailed, NodeStep, Preview, StepContext, StepError, StepKind
from confluo.steps.clone import read_as_root
from confluo.steps.service import StartNode, StopNode
from confluo.transport.remote import write_file_command
from confluo.waits import Deadline, TimedOut, poll


@dataclass(frozen=True)
class Edit:
    """One identity change of one file: `apply` is pure and idempotent (applied twice, it changes nothing more)."""

    kind: str  # node-name, connector, conf-user, home (confluence-init.properties), local-home (cfg.xml)
    value: str  # the new name, address, user or home
    old: tuple[str, ...] = ()  # connector: the donor's addresses; local-home: the new node's home
    name: str = ""  # local-home: the new node's name
    donor_home: str = ""

    def apply(self, text: str) -> str:
        edits: dict[str, Callable[[str], str]] = {
            "node-name": lambda t: identity.with_node_name(t, self.value),
            "connector": lambda t: identity.with_connector_address(t, set(self.old), self.value),
            "conf-user": lambda t: identity.with_conf_user(t, self.value),
            "home": lambda t: configfiles.with_home(t, self.value),
            "local-home": lambda t: identity.new_node_cfg(
                t, name=self.name, address=self.value, donor_home=self.donor_home, home=self.old[0]
            ),
        }
        return edits[self.kind](text)


@dataclass(frozen=True)
class EditIdentity(NodeStep):
    """A file of the copy rewritten as root (its owner and mode kept by tee); the plan shows the donor's text
    changed, the run changes the file really there."""

    kind = StepKind.IDENTITY

    host: Host
    path: str
    edit: Edit
    planned_from: str  # the donor's file as the probe read it, for the plan's diff

    @property
    def name(self) -> str:
        return f"{self.kind.value}: {self.path.rsplit('/', 1)[-1]}"

    def describe(self) -> Preview:
        diff = configfiles.unified_diff(
            self.path, self.planned_from, self.edit.apply(self.planned_from), labels=("copied", "its own")
        )
        command = self.host.line(write_file_command(self.path)) + " <<< (the file below)"
        return Preview(commands=(command,), files=(FileChange(self.path, diff),))

    def is_done(self, ctx: StepContext) -> bool:
        text = read_as_root(ctx.shell, self.path)
        return text is not None and self.edit.apply(text) == text

    def apply(self, ctx: StepContext) -> None:
        text = read_as_root(ctx.shell, self.path)
        if text is None:
            raise NodeFailed(f"{self.node}: {self.path} is not in the copy", hint="look at the copy on the host")
        ctx.shell.run(write_file_command(self.path), stdin=self.edit.apply(text).encode())


@dataclass(frozen=True)
class JoinCluster(NodeStep):
    """Starts the new node once no node of the cluster is starting (the cluster never starts two at once), waits
    for it ACTIVE on the donor's version, and checks that every node serving before still serves."""

    kind = StepKind.JOIN

    host: Host
    start: StartNode
    stop: StopNode

    @property
    def deadline_seconds(self) -> float:
        return self.start.deadline_seconds

    def describe(self) -> Preview:
        started = self.start.describe()
        stop = self.stop.describe().commands[0]
        return Preview(
            commands=started.commands,
            waits=(
                "no node of the cluster is STARTING (one node at a time)",
                *started.waits,
                "every node ACTIVE before is ACTIVE still",
                f"if any of these fails: {stop}, so that {self.node} never stays half-joined",
            ),
        )

    def is_done(self, ctx: StepContext) -> bool:
        return self.start.is_done(ctx)

    def apply(self, ctx: StepContext) -> None:
        self._no_node_starting(ctx)
        serving = _active(ctx.api.cluster(), exclude=self.host)
        try:
            self.start.apply(ctx)
            lost = serving - _active(ctx.api.cluster(), exclude=self.host)
            if lost:
                raise NodeFailed(
                    f"{self.node} joined, but {', '.join(sorted(lost))} no longer ACTIVE in the cluster",
                    hint="look at those nodes' atlassian-confluence.log for a cluster panic (failure-modes: TCP/IP "
                    "discovery instead of multicast)",
                )
        except (StepError, ApiError, KeyboardInterrupt) as failure:
            self._stop_again(ctx, failure)
            raise

    def _no_node_starting(self, ctx: StepContext) -> None:
        def starting() -> list[str]:
            try:
                nodes = ctx.api.cluster().nodes
            except ApiError:
                return ["(the cluster API does not answer)"]
            return [n.name for n in nodes if n.state is NodeState.STARTING]

        try:
            poll(starting, until=lambda names: not names, deadline=Deadline.after(ctx.clock, self.deadline_seconds),
                 on_wait=lambda names: ctx.on_wait(f"waiting: {', '.join(names)} starting"))  # fmt: skip
        except TimedOut as timed_out:
            raise NodeFailed(
                f"{self.node} not started: {', '.join(timed_out.last)} still starting after "
                f"{self.deadline_seconds:.0f} s (the cluster starts one node at a time)",
                hint="nothing was started; run again once that node is up",
            ) from timed_out

    def _stop_again(self, ctx: StepContext, failure: BaseException) -> None:
        ctx.on_wait(f"{self.node} did not join: stopping it again")
        try:
            self.stop.apply(ctx)
        except Exception as second:  # the failure is what the user reads first; the stop's is added
            failure.add_note(f"and stopping {self.node} again failed too: {second}")
            return
        if isinstance(failure, StepError) and failure.hint:
            failure.hint = f"{self.node} was stopped again. {failure.hint}"


def _active(cluster: ClusterInfo, *, exclude: Host) -> set[str]:
    mine = cluster_entry(cluster, exclude.node)
    return {n.name for n in cluster.nodes if n.state is NodeState.ACTIVE and (mine is None or n.id != mine.id)}
