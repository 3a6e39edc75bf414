"""A standalone Synchrony node taken onto a new synchrony-standalone.jar: stopped with its own stop-synchrony.sh,
the jar swapped (the old one kept beside it as a backup), started with start-synchrony.sh, and back only when its
heartbeat answers OK. The same steps with the backup restored put it back on its old jar.

The jar itself arrives first, from the first upgraded Confluence node (synchrony_copy.py): staged beside the live
one as `<jar>.confluo-new`, so that every step here can tell from the node alone what is left to do.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from confluo.api.base import Heartbeat
from confluo.inventory import SYNCHRONY_JAR, SynchronyNode
from confluo.steps.base import NodeFailed, Preview, Step, StepContext, StepKind, Waited, WaitTimedOut, pid_file_alive
from confluo.transport.base import quote_argv
from confluo.transport.remote import LN, MV, RM, Command, as_user, root
from confluo.waits import Deadline, TimedOut, poll

PID_FILE = "synchrony.pid"  # where Atlassian's start-synchrony.sh keeps the pid, in the Synchrony home
START_SCRIPT = "start-synchrony.sh"
STOP_SCRIPT = "stop-synchrony.sh"
EXIT_POLLS = 5  # the process gone this many polls in a row after its start: it exited, it will not serve
HEARTBEAT_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class SynchronyHost:
    """The Synchrony node a step works on, and who SSH logs in as there (the probe learns it)."""

    node: SynchronyNode
    login_user: str | None = None

    def line(self, command: Command) -> str:
        return command.line(self.node, self.login_user)

    def lines(self, commands: tuple[Command, ...]) -> tuple[str, ...]:
        return tuple(self.line(command) for command in commands)


@dataclass(frozen=True)
class JarPaths:
    """The files of one jar swap in the Synchrony home, for the upgrade to `version`."""

    home: str
    version: str

    def _in_home(self, name: str) -> str:
        return posixpath.join(self.home, name)

    @property
    def live(self) -> str:
        return self._in_home(SYNCHRONY_JAR)

    @property
    def staged(self) -> str:
        """The new jar, complete and checked, waiting for the swap."""
        return self.live + ".confluo-new"

    @property
    def part(self) -> str:
        return self.staged + ".part"

    @property
    def backup(self) -> str:
        """The jar Synchrony ran before the upgrade to `version`: kept, and put back by a rollback."""
        return f"{self.live}.before-{self.version}"

    @property
    def restoring(self) -> str:
        return self.live + ".confluo-restore"

    @property
    def pid_file(self) -> str:
        return self._in_home(PID_FILE)

    def script(self, name: str) -> str:
        return self._in_home(name)


def jar_paths(node: SynchronyNode, version: str) -> JarPaths:
    return JarPaths(str(node.home), version)


# One line per path: its sha256, or "-" when it is not a file.
_SHA256S = 'for f in "$@"; do if [ -f "$f" ]; then sha256sum -- "$f" | cut -d" " -f1; else echo -; fi; done'


def sha256s(ctx: StepContext, *paths: str) -> list[str | None]:
    """The sha256 of each file on the node (None: no such file), read as the login user."""
    result = ctx.shell.shell(quote_argv(["bash", "-c", _SHA256S, "confluo-sha256", *paths]), timeout=600)
    found = result.stdout.split()
    if len(found) != len(paths):
        raise NodeFailed(f"{ctx.shell.transport.node}: cannot read the sha256 of {', '.join(paths)}")
    return [None if value == "-" else value for value in found]


def exists(ctx: StepContext, path: str) -> bool:
    return ctx.check('[ -e "$1" ]', path)


class SynchronyStep(Step):
    host: SynchronyHost
    paths: JarPaths

    @property
    def node(self) -> str:
        return self.host.node.name

    def _alive(self, ctx: StepContext) -> bool:
        return pid_file_alive(ctx, self.paths.pid_file)

    def _heartbeat(self, ctx: StepContext) -> Heartbeat:
        return ctx.api.heartbeat(self.host.node.heartbeat_url, timeout=HEARTBEAT_TIMEOUT_SECONDS)

    def _logs_hint(self) -> str:
        return f"look at the Synchrony logs on {self.node} (start-synchrony.sh in {self.paths.home} says where)"


@dataclass(frozen=True)
class StopSynchrony(Waited, SynchronyStep):
    """stop-synchrony.sh, then wait until the process in synchrony.pid is gone and the heartbeat no longer
    answers. In the upgrade (`for_swap`) only while a new jar waits to be swapped in: a node already on it is
    left serving."""

    kind = StepKind.SYNCHRONY_STOP

    host: SynchronyHost
    paths: JarPaths
    for_swap: bool = True

    @property
    def deadline_seconds(self) -> float:
        return self.host.node.timeouts.stop_seconds

    def _command(self) -> Command:
        return as_user(self.paths.script(STOP_SCRIPT))

    def describe(self) -> Preview:
        when = f"while {self.paths.staged} waits to be swapped in: " if self.for_swap else ""
        return Preview(
            commands=(self.host.line(self._command()),),
            waits=(
                f"{when}the process in {self.paths.pid_file} is gone and {self.host.node.heartbeat_url} no longer "
                f"answers OK (deadline {self.deadline_seconds:.0f} s)",
            ),
        )

    def _observe(self, ctx: StepContext) -> tuple[bool, Heartbeat]:
        return self._alive(ctx), self._heartbeat(ctx)

    def is_done(self, ctx: StepContext) -> bool:
        if self.for_swap and not exists(ctx, self.paths.staged):
            return True
        alive, heartbeat = self._observe(ctx)
        return not alive and not heartbeat.ok

    def apply(self, ctx: StepContext) -> None:
        deadline = Deadline.after(ctx.clock, self.deadline_seconds)
        said = ""
        if self._alive(ctx):  # without a live pid the script refuses: there is nothing it could stop
            said = ctx.shell.run(self._command(), timeout=self.deadline_seconds, check=False).tail(3)
        try:
            poll(
                lambda: self._observe(ctx),
                until=lambda seen: not seen[0] and not seen[1].ok,
                deadline=deadline,
                on_wait=lambda seen: ctx.on_wait(_stopping(seen)),
            )
        except TimedOut as timed_out:
            alive, heartbeat = timed_out.last
            why = "its process still runs" if alive else f"{self.paths.pid_file} names no live process"
            raise WaitTimedOut(
                f"{self.node}: Synchrony did not stop within {self.deadline_seconds:.0f} s ({why}; heartbeat "
                f"{heartbeat.seen})" + (f"; {STOP_SCRIPT} said: {said}" if said else ""),
                hint=f"the jar was not touched. Stop Synchrony on {self.node} by hand (was it started by "
                f"{START_SCRIPT}?), then run confluo again",
            ) from timed_out


def _serving(seen: tuple[bool, Heartbeat]) -> bool:
    alive, heartbeat = seen
    return alive and heartbeat.ok


def _stopping(seen: tuple[bool, Heartbeat]) -> str:
    alive, heartbeat = seen
    return f"process {'running' if alive else 'gone'}, heartbeat {heartbeat.seen}"


@dataclass(frozen=True)
class SwapSynchronyJar(SynchronyStep):
    """The staged jar renamed over the live one; the live one hard-linked first as the backup, so that at every
    moment the home holds a whole jar under its own name."""

    kind = StepKind.SYNCHRONY_SWAP

    host: SynchronyHost
    paths: JarPaths

    def _commands(self) -> tuple[Command, ...]:
        paths = self.paths
        return (root(LN, "-f", "--", paths.live, paths.backup), root(MV, "-f", "--", paths.staged, paths.live))

    def describe(self) -> Preview:
        return Preview(commands=self.host.lines(self._commands()))

    def is_done(self, ctx: StepContext) -> bool:
        return not exists(ctx, self.paths.staged)

    def apply(self, ctx: StepContext) -> None:
        if self._alive(ctx):
            raise NodeFailed(f"{self.node}: Synchrony runs again; its jar is not swapped under it")
        ctx.run_all(self._commands())


@dataclass(frozen=True)
class RestoreSynchronyJar(SynchronyStep):
    """The backup put back as the live jar (the backup stays): the node's way back."""

    kind = StepKind.SYNCHRONY_RESTORE

    host: SynchronyHost
    paths: JarPaths

    def _commands(self) -> tuple[Command, ...]:
        paths = self.paths
        return (root(LN, "-f", "--", paths.backup, paths.restoring), root(MV, "-f", "--", paths.restoring, paths.live))

    def describe(self) -> Preview:
        return Preview(commands=self.host.lines(self._commands()))

    def is_done(self, ctx: StepContext) -> bool:
        live, backup = sha256s(ctx, self.paths.live, self.paths.backup)
        return backup is None or live == backup  # no backup: the jar was never swapped

    def apply(self, ctx: StepContext) -> None:
        if self._alive(ctx):
            raise NodeFailed(f"{self.node}: Synchrony runs; its jar is not swapped under it")
        ctx.run_all(self._commands())


@dataclass(frozen=True)
class StartSynchrony(Waited, SynchronyStep):
    """start-synchrony.sh (after removing a pid file its process outlived: the script refuses to start while one
    is there), then wait until the process runs and the heartbeat answers OK."""

    kind = StepKind.SYNCHRONY_START

    host: SynchronyHost
    paths: JarPaths

    @property
    def deadline_seconds(self) -> float:
        return self.host.node.timeouts.start_seconds

    def _commands(self) -> tuple[Command, Command]:
        return root(RM, "-f", "--", self.paths.pid_file), as_user(self.paths.script(START_SCRIPT))

    def describe(self) -> Preview:
        remove, start = self.host.lines(self._commands())
        return Preview(
            commands=(f"{remove}  # only when its process is gone", start),
            waits=(
                f"the process in {self.paths.pid_file} runs and {self.host.node.heartbeat_url} answers OK "
                f"(deadline {self.deadline_seconds:.0f} s)",
            ),
        )

    def _observe(self, ctx: StepContext) -> tuple[bool, Heartbeat]:
        return self._alive(ctx), self._heartbeat(ctx)

    def is_done(self, ctx: StepContext) -> bool:
        return _serving(self._observe(ctx))

    def apply(self, ctx: StepContext) -> None:
        remove, start = self._commands()
        if not self._alive(ctx):  # started already (a re-run): wait for it, never start a second one
            if exists(ctx, self.paths.pid_file):
                ctx.shell.run(remove)
            ctx.shell.run(start, timeout=120)
        gone = 0

        def judge(seen: tuple[bool, Heartbeat]) -> None:
            nonlocal gone
            ctx.on_wait(_stopping(seen).replace("gone", "not running"))
            gone = 0 if seen[0] else gone + 1
            if gone >= EXIT_POLLS:
                raise NodeFailed(
                    f"{self.node}: Synchrony exited after {START_SCRIPT} (heartbeat {seen[1].seen})",
                    hint=self._logs_hint(),
                )

        deadline = Deadline.after(ctx.clock, self.deadline_seconds)
        try:
            poll(lambda: self._observe(ctx), until=_serving, deadline=deadline, on_wait=judge)
        except TimedOut as timed_out:
            raise WaitTimedOut(
                f"{self.node}: Synchrony's heartbeat did not answer OK within {self.deadline_seconds:.0f} s "
                f"({_stopping(timed_out.last)})",
                hint=self._logs_hint(),
            ) from timed_out
