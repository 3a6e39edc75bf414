"""The hard stop of a node whose graceful stop ran past its deadline: SIGTERM again, then SIGKILL.

Each signal goes to the pid in the installation's work/catalina.pid, sent as the Confluence user (only the
process's owner may signal it, and sudoers grants no more), and only once that pid is shown to be the
installation's own process: a pid file outlives its process, and the kernel hands its pid to the next process
that starts, which may be anything.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from confluo.layout import PID_FILE
from confluo.steps.base import Host, NodeFailed, StepContext, WaitTimedOut, process_alive
from confluo.transport.base import quote_argv
from confluo.transport.remote import KILL, Command, as_user
from confluo.waits import Deadline, TimedOut, poll

# Prints the pid in $1 and exits 0 when it runs a program of the installation $2: some argument of its command
# line (split at NULs, ':' of a classpath and '=' of a -Dcatalina.base=...) is a path inside it, symlinks resolved
# (Tomcat may have been started through `current`). Exits 3 when no live process has that pid (a zombie is dead);
# exits 5, printing the pid and the command line, when the pid runs something else.
_OWNED_PID = r"""
pid=$(cat -- "$1" 2>/dev/null) || exit 3
case $pid in ''|*[!0-9]*) exit 3 ;; esac
state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
case $state in ''|Z|X) exit 3 ;; esac
install=$(readlink -f -- "$2") || exit 5
while IFS= read -r part; do
  case $part in /*) ;; *) continue ;; esac
  real=$(readlink -f -- "$part" 2>/dev/null) || real=$part
  if [ "$real" = "$install" ] || [ "${real#"$install"/}" != "$real" ]; then echo "$pid"; exit 0; fi
done < <(tr '\0:=' '\n\n\n' < "/proc/$pid/cmdline" 2>/dev/null)
echo "$pid"; tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-200
exit 5
"""
_GONE, _FOREIGN = 3, 5


@dataclass(frozen=True)
class PidFound:
    """What an installation's pid file names: a live process of that installation, or of something else."""

    install: str
    pid: str
    owned: bool
    command_line: str = ""

    @property
    def pid_file(self) -> str:
        return posixpath.join(self.install, PID_FILE)


def installation_process(ctx: StepContext, install: str) -> PidFound | None:
    """None when the pid file names no live process."""
    pid_file = posixpath.join(install, PID_FILE)
    line = quote_argv(["bash", "-c", _OWNED_PID, "confluo-pid", pid_file, install])
    result = ctx.shell.shell(line, timeout=60, check=False)
    if result.exit_status == _GONE:
        return None
    pid, _, command_line = result.stdout.partition("\n")
    return PidFound(install, pid.strip(), result.ok, command_line.strip())


def signal_command(signal: str, pid: str) -> Command:
    return as_user(KILL, f"-{signal}", pid)


@dataclass(frozen=True)
class HardStop:
    """The escalation for one node; `installs` are those whose process is watched (the running one first)."""

    host: Host
    installs: tuple[str, ...]
    grace_seconds: float
    offline_seconds: float

    @property
    def node(self) -> str:
        return self.host.node.name

    def describe(self) -> tuple[str, ...]:
        pid = f"<pid in {posixpath.join(self.installs[0], PID_FILE)}, if that installation's process>"
        term, kill = (self.host.line(signal_command(s, pid)) for s in ("TERM", "KILL"))
        return (
            f"(only if it still runs at the deadline) {term}",
            f"(only if it still runs {self.grace_seconds:.0f} s later) {kill}",
        )

    def run(self, ctx: StepContext, offline: Callable[[], bool]) -> None:
        """After the graceful deadline passed with the process alive: returns once it is gone and `offline()`."""
        ctx.on_wait("graceful stop timed out; SIGTERM again")
        if not self._signal_and_wait(ctx, "TERM"):
            killed = self._signal_and_wait(ctx, "KILL")
            if not killed:
                raise NodeFailed(
                    f"{self.node}: its process still runs after SIGKILL ({self.grace_seconds:.0f} s)",
                    hint=f"{self.node} is out of service and unchanged: the stop command, SIGTERM twice and SIGKILL "
                    "were sent, its installation and the service still point where they did. A process SIGKILL "
                    "does not end waits in the kernel (often on a hung NFS mount): look at `ps -o pid,stat,wchan` "
                    "on the node; once the process is gone, run confluo again",
                )
        self._wait_offline(ctx, offline)

    def _signal_and_wait(self, ctx: StepContext, signal: str) -> bool:
        """Sends `signal` to every watched installation's live process; true once none runs (within the grace)."""
        for found in filter(None, (installation_process(ctx, install) for install in self.installs)):
            self._send(ctx, signal, found)
        try:
            poll(
                lambda: self._alive(ctx),
                until=lambda alive: not alive,
                deadline=Deadline.after(ctx.clock, self.grace_seconds),
                on_wait=lambda _: ctx.on_wait(f"SIG{signal} sent; the process still runs"),
            )
        except TimedOut:
            return False
        return True

    def _send(self, ctx: StepContext, signal: str, found: PidFound) -> None:
        if not found.owned:
            raise NodeFailed(
                f"{self.node}: {found.pid_file} names pid {found.pid}, which is not a process of {found.install} "
                f"(it runs `{found.command_line or '?'}`): refusing to kill it",
                hint="the pid file is stale and the pid reused: Confluence may have stopped already. Check on the "
                "node; if no Confluence process of that installation runs, remove the stale pid file and run "
                "confluo again. Nothing on the node was changed",
            )
        if signal == "KILL":
            ctx.on_wait(f"SIGKILL pid {found.pid}")
        command = signal_command(signal, found.pid)
        result = ctx.shell.run(command, check=False)
        if not result.ok and installation_process(ctx, found.install) is not None:
            raise NodeFailed(
                f"{self.node}: `{self.host.line(command)}` failed ({result.exit_status}): {result.tail(3)}",
                hint=f"{self.node} is out of service, its installation unchanged. The Confluence user must be "
                f"able to signal its own process: add {KILL} to the run user's sudoers line (README, Security), "
                "end the process by hand, then run confluo again",
            )

    def _alive(self, ctx: StepContext) -> bool:
        return any(process_alive(ctx, install) for install in self.installs)

    def _wait_offline(self, ctx: StepContext, offline: Callable[[], bool]) -> None:
        try:
            poll(
                offline,
                until=bool,
                deadline=Deadline.after(ctx.clock, self.offline_seconds),
                on_wait=lambda _: ctx.on_wait(
                    "process ended; the cluster notices it OFFLINE once its heartbeat times out"
                ),
            )
        except TimedOut as timed_out:
            raise WaitTimedOut(
                f"{self.node}: its process was ended, but the cluster does not show it OFFLINE within "
                f"{self.offline_seconds:.0f} s",
                hint=f"{self.node} no longer runs and is unchanged (installation and service as before); look at "
                "the other nodes' logs for why the cluster still lists it, then run confluo again",
            ) from timed_out
