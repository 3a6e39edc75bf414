"""Port 1, how confluo reaches a node: the Transport protocol, its results and its errors.

`ssh.py` is the only module that imports Fabric/paramiko; `local.py` runs the same commands on this machine.
Commands are argv sequences; every element is quoted before it reaches a remote shell.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from confluo.errors import ConfluoError, ExitCode, brief

OUTPUT_TAIL_LINES = 20


@dataclass(frozen=True)
class CommandResult:
    """What one command did on a node."""

    node: str
    command: str
    exit_status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def tail(self, lines: int = OUTPUT_TAIL_LINES) -> str:
        text = (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).rstrip()
        return "\n".join(text.splitlines()[-lines:])


class TransportError(ConfluoError):
    """A node could not be reached, or a command on it could not be completed."""

    exit_code = ExitCode.FAILED_AFTER_CHANGES


class ConnectionFailed(TransportError):
    """The connection could not be opened (refused, timed out, authentication, unknown host key)."""


class ConnectionLost(TransportError):
    """An open connection broke while a command ran; the command's outcome is unknown."""


class CommandTimedOut(TransportError):
    """A command ran past its deadline."""


class CommandFailed(TransportError):
    """A command exited non-zero."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(
            f"{result.node}: `{brief(result.command)}` exited {result.exit_status}"
            + (f"\n{result.tail()}" if result.tail() else "")
        )
        self.result = result


def finished(
    node: str, command: str, status: int, stdout: bytes, stderr: bytes, started: float, *, check: bool
) -> CommandResult:
    """The result of a command that ran to its end; CommandFailed when `check` and it exited non-zero."""
    result = CommandResult(
        node,
        command,
        status,
        stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
        time.monotonic() - started,
    )
    if check and not result.ok:
        raise CommandFailed(result)
    return result


def private_file(path: str) -> BinaryIO:
    """A new local file only its owner can read: a download may hold a node's secrets (its local home)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def quote_argv(argv: Sequence[str]) -> str:
    """One shell-safe command line from an argv list."""
    return " ".join(shlex.quote(arg) for arg in argv)


class Transport(Protocol):
    """Runs commands on one node."""

    node: str

    def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float = 120.0,
        check: bool = True,
    ) -> CommandResult:
        """Run a shell command line (already quoted) as the login user."""
        ...

    def upload(self, local_path: str, remote_path: str, *, timeout: float, offset: int = 0) -> int:
        """Stream a local file to `remote_path` (writable by the login user); return bytes sent.

        With `offset`, the remote file already holds the first `offset` bytes: only the rest is sent, appended.
        """
        ...

    def download(self, command: str, local_path: str, *, timeout: float) -> CommandResult:
        """Run a command line (already quoted) and write its stdout, as bytes, into `local_path` on this machine;
        the result's stdout is the number of bytes written."""
        ...

    def close(self) -> None: ...
