"""What every step is: a frozen value with plan-time parameters, and the context it runs in.

The runner walks steps the same way whatever they are: skip if `is_done`, `apply`, then `verify`. The same
Command builders serve `describe()` and `apply()`: the plan shows exactly what the run does.
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from confluo.api.base import ClusterApi
from confluo.errors import ConfluoError, ExitCode
from confluo.inventory import Node
from confluo.layout import PID_FILE
from confluo.loadbalancer.base import LoadBalancer
from confluo.transport.base import quote_argv
from confluo.transport.remote import Command, HostShell, Remote, contents_not_logged
from confluo.waits import SYSTEM_CLOCK, Clock


class StepKind(enum.Enum):
    """What a step does; the value is its name as plans and events show it."""

    TRANSFER = "transfer archive"
    EXTRACT = "extract release"
    STOP = "stop"
    SET_HOME = "set home"
    COPY_DRIVER = "copy JDBC driver"
    CARRY = "carry customizations"
    REPOINT = "repoint service"
    START = "start"
    DRAIN = "drain in load balancer"
    MAINT = "out of load balancer"
    READY = "back in load balancer"
    ADD_SERVER = "add to load balancer"
    PRUNE = "remove"
    UPGRADE_MODE_ON = "POST /rest/zdu/start"
    UPGRADE_MODE_OFF = "POST /rest/zdu/cancel"
    RETRY_FINALIZE = "POST /rest/zdu/retryUpgrade"
    FINALIZE = "POST /rest/zdu/approve"
    SYNCHRONY_COPY = "copy synchrony-standalone.jar"
    SYNCHRONY_STOP = "stop Synchrony"
    SYNCHRONY_SWAP = "swap synchrony-standalone.jar"
    SYNCHRONY_START = "start Synchrony"
    SYNCHRONY_RESTORE = "restore the old synchrony-standalone.jar"
    CLONE_INSTALL = "copy installation"
    SEED_HOME = "copy local home"
    IDENTITY = "set identity"
    JOIN = "start and join"
    INDEX = "search index caught up"


PRESTAGE_KINDS = frozenset({StepKind.TRANSFER, StepKind.EXTRACT})


class StepError(ConfluoError):
    """A step could not do its work; the runner adds the node, the step and what to do next."""

    exit_code = ExitCode.FAILED_AFTER_CHANGES


class WaitTimedOut(StepError):
    """A state the step waits for was not reached before its deadline."""


class NodeFailed(StepError):
    """The node itself reports a failure (ERROR, the setup wizard, a checksum that does not match)."""


@dataclass(frozen=True)
class FileChange:
    """A file a step writes: `diff` from the release's file to what is written; for a carried file also a
    one-line summary and the diffs that explain it (your changes, the release's, the conflict)."""

    path: str
    diff: str
    summary: str = ""
    parts: tuple[tuple[str, str], ...] = ()  # (title, diff or text)


@dataclass(frozen=True)
class Preview:
    """What a step will do, as `plan` prints it."""

    commands: tuple[str, ...] = ()
    files: tuple[FileChange, ...] = ()
    waits: tuple[str, ...] = ()


@dataclass(frozen=True)
class Host:
    """The node a step works on, and who SSH logs in as there (the probe learns it: an ssh alias may name it)."""

    node: Node
    login_user: str | None = None

    def line(self, command: Command) -> str:
        return command.line(self.node, self.login_user)

    def lines(self, commands: tuple[Command, ...]) -> tuple[str, ...]:
        return tuple(self.line(command) for command in commands)


@dataclass
class StepContext:
    api: ClusterApi
    remote: HostShell | None = None  # None for the cluster-wide steps
    clock: Clock = SYSTEM_CLOCK
    on_wait: Callable[[str], None] = field(default=lambda observed: None)
    on_note: Callable[[str], None] = field(default=lambda message: None)  # what the run goes on despite
    balancer: LoadBalancer | None = None  # None: the inventory has none, and no pool step is planned
    peer: Remote | None = None  # the Confluence node a step copies from (Step.peer), beside its own
    peers: Mapping[str, Remote] = field(default_factory=dict)  # every node's remote: add-node copies from a donor

    def remote_of(self, name: str) -> Remote:
        return self.peers[name]

    @property
    def shell(self) -> HostShell:
        assert self.remote is not None, "a node step runs with its node's remote"
        return self.remote

    @property
    def pool(self) -> LoadBalancer:
        assert self.balancer is not None, "a load-balancer step runs with the inventory's load balancer"
        return self.balancer

    @property
    def source(self) -> Remote:
        assert self.peer is not None, "a step that copies from a node runs with that node's remote as its peer"
        return self.peer

    def check(self, script: str, *args: str) -> bool:
        """A read-only check on the node: true when the bash snippet exits 0."""
        line = quote_argv(["bash", "-c", script, "confluo-check", *args])
        return self.shell.shell(line, timeout=60, check=False).ok

    def read(self, path: str) -> str | None:
        result = self.shell.shell(quote_argv(["cat", "--", path]), check=False, shown=contents_not_logged)
        return result.stdout if result.ok else None

    def run_all(self, commands: tuple[Command, ...], timeout: float = 300) -> None:
        for command in commands:
            self.shell.run(command, timeout=timeout)


Applied = dict[str, int]  # figures a step reports about its work (bytes sent, ...), carried on its event


class Step:
    """One unit of change. Subclasses are frozen dataclasses; `kind` names what they do."""

    kind: ClassVar[StepKind]

    @property
    def name(self) -> str:
        return self.kind.value

    @property
    def node(self) -> str | None:
        """The node it changes; None for a cluster-wide step."""
        return None

    @property
    def peer(self) -> str | None:
        """The Confluence node it reads from besides the one it changes (StepContext.peer); None for most."""
        return None

    @property
    def deadline_seconds(self) -> float | None:
        return None

    def describe(self) -> Preview:
        raise NotImplementedError

    def is_done(self, ctx: StepContext) -> bool:
        raise NotImplementedError

    def apply(self, ctx: StepContext) -> Applied | None:
        raise NotImplementedError

    def verify(self, ctx: StepContext) -> None:
        """After apply: the host must show the change, or the run stops here."""
        if not self.is_done(ctx):
            where = f"{self.node}: " if self.node else ""
            raise StepError(f"{where}{self.name}: done, but the host does not show the change")


class Waited(Step):
    """A step whose apply returns only once it has seen its done-condition hold (a poll under its deadline):
    asking the host again straight after would only repeat that look."""

    def verify(self, ctx: StepContext) -> None:
        return None


class NodeStep(Step):
    host: Host

    @property
    def node(self) -> str:
        return self.host.node.name


# A zombie (Z) has exited: a killed process may wait a while for its reaper (init here, in a container).
_ALIVE = """pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] || exit 1
state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]"""


def process_alive(ctx: StepContext, install: str) -> bool:
    """/proc, not kill -0: the process may belong to another user than the login user."""
    return pid_file_alive(ctx, posixpath.join(install, PID_FILE))


def pid_file_alive(ctx: StepContext, pid_file: str) -> bool:
    """Whether the pid in `pid_file` is a live process (a zombie is not)."""
    return ctx.check(_ALIVE, pid_file)
