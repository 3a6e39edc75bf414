"""A node's shell as confluo uses it: argv lists in, `sudo -n` only where root is needed, every command logged.

PRIVILEGED lists every binary confluo runs as root, AS_RUN_USER what it runs as the Confluence user beside the
start and stop scripts; the README's sudoers snippet is built from them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluo.inventory import Access, Node
from confluo.transport.base import CommandFailed, CommandResult, Transport, quote_argv

# The only commands confluo runs through sudo (absolute paths, as sudoers matches them).
MKDIR = "/usr/bin/mkdir"
TAR = "/usr/bin/tar"
CP = "/usr/bin/cp"
LN = "/usr/bin/ln"
MV = "/usr/bin/mv"
CHOWN = "/usr/bin/chown"
RM = "/usr/bin/rm"
TEE = "/usr/bin/tee"
SYSTEMCTL = "/usr/bin/systemctl"
PRIVILEGED = (MKDIR, TAR, CP, LN, MV, CHOWN, RM, TEE)
KILL = "/usr/bin/kill"  # the hard stop of a node that ignores its stop script: a signal only its owner may send
AS_RUN_USER = (KILL,)

CommandListener = Callable[[CommandResult], None]
Shown = Callable[[CommandResult], CommandResult]  # what the listeners (the log) get of a result


def contents_not_logged(result: CommandResult) -> CommandResult:
    """A result whose stdout is a file's content, as the log may keep it: its size and sha256 only."""
    data = result.stdout.encode()
    summary = f"({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}: contents not logged)"
    return dataclasses.replace(result, stdout=summary)


def service_binary(node: Node) -> str | None:
    """The extra command an initd or systemd service needs as root."""
    if node.service.kind == "initd":
        return str(node.service.definition)
    if node.service.kind == "systemd":
        return SYSTEMCTL
    return None


def privileged_commands(node: Node) -> tuple[str, ...]:
    extra = service_binary(node)
    return (*PRIVILEGED, extra) if extra else PRIVILEGED


@dataclass(frozen=True)
class Command:
    """One command as confluo will run it on a node; `display` is what plans and logs show."""

    argv: tuple[str, ...]
    root: bool = False
    as_run_user: bool = False
    stdout_to_null: bool = False

    def line(self, node: Access, login_user: str | None = None) -> str:
        """`login_user`: who SSH logs in as, when known (an ssh_config alias may name it, not the inventory)."""
        prefix: tuple[str, ...] = ()
        if self.root and node.sudo:
            prefix = ("sudo", "-n")
        elif self.as_run_user and node.run_as and node.run_as != (login_user or node.ssh.user):
            prefix = ("sudo", "-n", "-u", node.run_as)
        text = quote_argv(prefix + self.argv)
        return text + " >/dev/null" if self.stdout_to_null else text


def root(*argv: str) -> Command:
    return Command(tuple(argv), root=True)


def as_user(*argv: str) -> Command:
    return Command(tuple(argv), as_run_user=True)


def plain(*argv: str) -> Command:
    return Command(tuple(argv))


def write_file_command(path: str) -> Command:
    """`tee` as root writes a file whose content arrives on stdin (nothing secret is on argv)."""
    return Command((TEE, path), root=True, stdout_to_null=True)


class HostShell:
    """Runs Commands on one machine (a Confluence or a Synchrony node) through its Transport and reports each
    result to the listeners."""

    def __init__(self, machine: Access, transport: Transport, listeners: Sequence[CommandListener] = ()) -> None:
        self.machine = machine
        self.transport = transport
        self.login_user: str | None = None  # learned by the probe
        self._listeners = tuple(listeners)

    def run(
        self, command: Command, *, stdin: bytes | None = None, timeout: float = 120.0, check: bool = True
    ) -> CommandResult:
        return self.shell(command.line(self.machine, self.login_user), stdin=stdin, timeout=timeout, check=check)

    def _reported(self, result: CommandResult, check: bool = True, shown: Shown | None = None) -> CommandResult:
        logged = shown(result) if shown else result
        for listener in self._listeners:
            listener(logged)
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    def shell(
        self,
        line: str,
        *,
        stdin: bytes | None = None,
        timeout: float = 120.0,
        check: bool = True,
        shown: Shown | None = None,
    ) -> CommandResult:
        """A command line that is already quoted (read-only probes built by confluo itself). `shown`: what the
        listeners get instead of the result, where its output holds file contents."""
        result = self.transport.run(line, stdin=stdin, timeout=timeout, check=False)
        return self._reported(result, check, shown)

    def download(self, line: str, local_path: str, *, timeout: float) -> CommandResult:
        """A command line whose output (a file's bytes) goes into `local_path` here; the log keeps its size and
        sha256 only. CommandFailed when it exits non-zero."""
        result = self.transport.download(line, local_path, timeout=timeout)
        with open(local_path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        summary = f"({result.stdout} bytes, sha256 {digest}: written to {local_path})"
        self._reported(dataclasses.replace(result, stdout=summary), check=False)
        if not result.ok:
            raise CommandFailed(result)
        return result


class Remote(HostShell):
    """A Confluence node's shell: `node` says which node, with all its settings."""

    def __init__(self, node: Node, transport: Transport, listeners: Sequence[CommandListener] = ()) -> None:
        super().__init__(node, transport, listeners)
        self.node = node
