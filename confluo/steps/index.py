"""A node just started catches up with the search index changes the cluster made while it was down, before it
is put back in the pool: each node keeps the last journal entry it has indexed in `<local-home>/journal/main_index`
(Atlassian's KB compares it with the journal to see how far a node's index queue is behind), and the node's must
reach the other nodes'. Past the deadline the run goes on and says how far behind the node is: searches on it
miss recent changes until it catches up, which is no reason to halt an upgrade.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from confluo.inventory import Node
from confluo.steps.base import Host, NodeStep, Preview, StepContext, StepKind, Waited
from confluo.transport.base import TransportError, quote_argv
from confluo.transport.remote import HostShell
from confluo.waits import Deadline, TimedOut, poll

JOURNAL_FILE = "journal/main_index"
POLL_SECONDS = 1.0


def _position(shell: HostShell, home: str) -> int | None:
    """The last journal entry the node has indexed; None when its file is missing or unreadable."""
    result = shell.shell(quote_argv(["cat", "--", posixpath.join(home, JOURNAL_FILE)]), check=False)
    text = result.stdout.strip()
    return int(text) if result.ok and text.isdigit() else None


@dataclass(frozen=True)
class IndexCaughtUp(NodeStep, Waited):
    kind = StepKind.INDEX

    host: Host
    others: tuple[str, ...]  # the other nodes, whose journal files say how far the cluster's index is
    seconds: float

    @property
    def deadline_seconds(self) -> float:
        return self.seconds

    def describe(self) -> Preview:
        return Preview(
            waits=(
                f"{self.node}'s {JOURNAL_FILE} reaches the other nodes' (up to {self.seconds:.0f} s, then the run "
                "goes on and says how far behind it is)",
            )
        )

    def is_done(self, ctx: StepContext) -> bool:
        mine, theirs = self._mine(ctx), self._theirs(ctx)
        return mine is None or theirs is None or mine >= theirs  # nothing to compare: nothing to wait for

    def apply(self, ctx: StepContext) -> None:
        theirs = self._theirs(ctx)
        if theirs is None:
            return
        try:
            poll(
                lambda: self._mine(ctx),
                until=lambda mine: mine is None or mine >= theirs,
                deadline=Deadline.after(ctx.clock, self.seconds),
                on_wait=lambda mine: ctx.on_wait(f"search index at journal entry {mine}, the other nodes' at {theirs}"),
                interval=POLL_SECONDS,
            )
        except TimedOut as behind:
            ctx.on_note(
                f"{self.node}: its search index is {theirs - (behind.last or 0)} journal entries behind the other "
                f"nodes' after {self.seconds:.0f} s (timeouts.index_seconds): searches on it miss recent changes "
                "until it catches up; the run goes on"
            )

    def _mine(self, ctx: StepContext) -> int | None:
        return _position(ctx.shell, str(self.host.node.home))

    def _theirs(self, ctx: StepContext) -> int | None:
        known = [position for name in self.others if (position := _peer_position(ctx, name)) is not None]
        return max(known) if known else None


def _peer_position(ctx: StepContext, name: str) -> int | None:
    """Another node's position; None when it cannot be read (a node that cannot be reached holds nothing up)."""
    remote = ctx.peers.get(name)
    try:
        return _position(remote, str(remote.node.home)) if remote is not None else None
    except TransportError:
        return None


def index_caught_up(host: Host, nodes: Sequence[Node]) -> IndexCaughtUp:
    """The wait after `host`'s start, against every other node of the inventory."""
    others = tuple(node.name for node in nodes if node.name != host.node.name)
    return IndexCaughtUp(host, others, host.node.timeouts.index_seconds)
