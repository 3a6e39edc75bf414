"""Stopping and starting Confluence on a node, each with the wait for the state that proves it, under a deadline.

Both take the installation as a plan-time parameter: the same StartNode starts the new installation in an upgrade
and the old one in a rollback.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace

from confluo.api.base import PAGE_VIEW_PATH, SPACE_HOME_PATH, ApiError, NodeState, PageView, StatusState, cluster_entry
from confluo.inventory import Node
from confluo.steps.base import (
    Host,
    NodeFailed,
    NodeStep,
    Preview,
    StepContext,
    StepKind,
    Waited,
    WaitTimedOut,
    process_alive,
)
from confluo.steps.hardstop import HardStop
from confluo.transport.remote import SYSTEMCTL, Command, as_user, root
from confluo.waits import Deadline, TimedOut, poll

# A node reporting ERROR this many polls in a row has failed; one poll could be a transition.
ERROR_POLLS = 5


def service_command(node: Node, action: str, install: str) -> Command:
    """`install`: where bin/<action>-confluence.sh is (the `current` link in the symlink layout)."""
    kind = node.service.kind
    if kind == "initd":
        return root(str(node.service.definition), action)
    if kind == "systemd":
        return root(SYSTEMCTL, action, node.service.name)
    return as_user(posixpath.join(install, "bin", f"{action}-confluence.sh"))


@dataclass(frozen=True)
class StopNode(Waited, NodeStep):
    """Graceful stop, then wait for the process to exit and the cluster to show the node OFFLINE; a process still
    running at the deadline is sent SIGTERM again, then SIGKILL (the hard stop)."""

    kind = StepKind.STOP

    host: Host
    install: str  # the installation running now: its work/catalina.pid is watched
    service_install: str
    also_watched: tuple[str, ...] = ()  # in a rollback: the old installation may be the one running

    @property
    def deadline_seconds(self) -> float:
        return self.host.node.timeouts.stop_seconds

    def _command(self) -> Command:
        return service_command(self.host.node, "stop", self.service_install)

    def _hard_stop(self) -> HardStop:
        timeouts = self.host.node.timeouts
        return HardStop(
            self.host, (self.install, *self.also_watched), timeouts.kill_grace_seconds, self.deadline_seconds
        )

    def describe(self) -> Preview:
        hard = self._hard_stop()
        return Preview(
            commands=(self.host.line(self._command()), *hard.describe()),
            waits=(
                f"the process in {posixpath.join(self.install, 'work/catalina.pid')} exits and the cluster shows "
                f"{self.node} OFFLINE (deadline {self.deadline_seconds:.0f} s; still running then: SIGTERM again, "
                f"{hard.grace_seconds:.0f} s later SIGKILL, then OFFLINE within {hard.offline_seconds:.0f} s)",
            ),
        )

    def _offline_in_cluster(self, ctx: StepContext) -> bool:
        try:
            info = cluster_entry(ctx.api.cluster(), self.host.node)
        except ApiError:
            return False  # not known yet: keep waiting, within the deadline
        return info is None or info.state is NodeState.OFFLINE

    def _observe(self, ctx: StepContext) -> tuple[bool, bool]:
        alive = any(process_alive(ctx, install) for install in (self.install, *self.also_watched))
        return alive, not alive and self._offline_in_cluster(ctx)

    def is_done(self, ctx: StepContext) -> bool:
        return self._observe(ctx)[1]

    def apply(self, ctx: StepContext) -> None:
        # One deadline for the stop command and the wait after it.
        deadline = Deadline.after(ctx.clock, self.deadline_seconds)
        ctx.shell.run(self._command(), timeout=self.deadline_seconds)
        try:
            poll(
                lambda: self._observe(ctx),
                until=lambda observed: observed[1],
                deadline=deadline,
                on_wait=lambda observed: ctx.on_wait(
                    "process still running" if observed[0] else "process exited; cluster not yet OFFLINE"
                ),
            )
        except TimedOut as timed_out:
            if timed_out.last[0]:  # a hung shutdown: the process ignores its stop
                self._hard_stop().run(ctx, lambda: self._offline_in_cluster(ctx))
                return
            raise WaitTimedOut(
                f"{self.node}: did not stop within {self.deadline_seconds:.0f} s (its process has exited, but the "
                "cluster does not show it OFFLINE)",
                hint=f"the stop command was sent and the node no longer serves. Look at "
                f"{posixpath.join(self.install, 'logs/catalina.out')} on the node; the installation in use is "
                "unchanged.",
            ) from timed_out


@dataclass(frozen=True)
class Started:
    """What the start's wait sees of the node; `view` is asked only once the rest says it serves."""

    status: StatusState
    state: NodeState | None
    version: str | None
    view: PageView | None = None

    @property
    def active(self) -> bool:
        return self.status is StatusState.RUNNING and self.state is NodeState.ACTIVE

    def __str__(self) -> str:
        seen = f"/status {self.status.value}, cluster {self.state.value if self.state else 'not listed'}"
        return seen + (f", page view: {self.view.seen}" if self.view is not None else "")


@dataclass(frozen=True)
class StartNode(Waited, NodeStep):
    """Start, then wait for /status RUNNING, the cluster to show the node ACTIVE on `version`, and a page read and
    rendered on the node's own URL with the API credentials (seed 000: "confirm that you can log in and view pages
    before continuing to the next")."""

    kind = StepKind.START

    host: Host
    install: str  # the installation that will run: its work/catalina.pid tells whether it runs already
    service_install: str
    version: str

    @property
    def deadline_seconds(self) -> float:
        return self.host.node.timeouts.start_seconds

    def _command(self) -> Command:
        return service_command(self.host.node, "start", self.service_install)

    def describe(self) -> Preview:
        url = self.host.node.url
        return Preview(
            commands=(self.host.line(self._command()),),
            waits=(
                f"{url}/status says RUNNING, the cluster shows {self.node} ACTIVE on {self.version}, and a page is "
                f"read and rendered on {url} as the API user (a space's home page: {SPACE_HOME_PATH}, then "
                f"{PAGE_VIEW_PATH}) (deadline {self.deadline_seconds:.0f} s)",
            ),
        )

    def _observe(self, ctx: StepContext) -> Started:
        status = ctx.api.node_status(self.host.node.url)
        try:
            info = cluster_entry(ctx.api.cluster(), self.host.node)
        except ApiError:
            return Started(status, None, None)  # a passing API error is no verdict on this node; the deadline is
        seen = Started(status, info.state if info else None, info.version if info else None)
        if seen.active and seen.version == self.version:
            return replace(seen, view=ctx.api.view_page(self.host.node.url))
        return seen

    def _serving(self, seen: Started) -> bool:
        return seen.active and seen.version == self.version and seen.view is not None and seen.view.ok

    def is_done(self, ctx: StepContext) -> bool:
        return self._serving(self._observe(ctx))

    def apply(self, ctx: StepContext) -> None:
        # Started already (a re-run, or the connection dropped after the start): wait for it, do not start twice.
        if not process_alive(ctx, self.install):
            ctx.shell.run(self._command(), timeout=120)
        errors_seen = 0
        views_failing_since: float | None = None

        def judge(seen: Started) -> None:
            nonlocal errors_seen, views_failing_since
            ctx.on_wait(str(seen))
            if seen.view is None or seen.view.ok:
                views_failing_since = None
            elif views_failing_since is None:
                views_failing_since = ctx.clock.monotonic()
            elif ctx.clock.monotonic() - views_failing_since >= self.host.node.timeouts.page_view_seconds:
                # Apps still enabling may fail a fresh node's first page reads; this long of nothing else is a
                # verdict, well before a long start deadline, while the node is still out of the pool.
                grace = self.host.node.timeouts.page_view_seconds
                raise NodeFailed(self._no_page(seen, f"for {grace:.0f} s"), hint=self._hint())
            errors_seen = errors_seen + 1 if StatusState.ERROR is seen.status or seen.state is NodeState.ERROR else 0
            if errors_seen >= ERROR_POLLS:
                raise NodeFailed(f"{self.node}: started on {self.version} but reports ERROR ({seen})",
                                 hint=self._hint())  # fmt: skip
            if seen.status is StatusState.FIRST_RUN:
                raise NodeFailed(
                    f"{self.node}: the installation shows the setup wizard (FIRST_RUN): it does not find its home",
                    hint=self._hint(),
                )

        deadline = Deadline.after(ctx.clock, self.deadline_seconds)
        try:
            poll(lambda: self._observe(ctx), until=self._serving, deadline=deadline, on_wait=judge)
        except TimedOut as timed_out:
            last: Started = timed_out.last
            message = (
                self._no_page(last, f"by the start deadline ({self.deadline_seconds:.0f} s)")
                if last.view is not None
                else f"{self.node}: not ACTIVE on {self.version} within {self.deadline_seconds:.0f} s ({last})"
            )
            raise WaitTimedOut(message, hint=self._hint()) from timed_out

    def _no_page(self, seen: Started, how_long: str) -> str:
        assert seen.view is not None
        return (
            f"{self.node}: ACTIVE on {self.version}, but no page can be viewed on its own URL {how_long} "
            f"({seen.view.seen})"
        )

    def _hint(self) -> str:
        logs = posixpath.join(self.install, "logs/catalina.out")
        return f"look at {logs} and {self.host.node.home}/logs/atlassian-confluence.log on the node"
