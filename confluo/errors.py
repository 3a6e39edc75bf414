"""The errors confluo reports to its user, each tied to the exit code the process ends with.

The codes separate "nothing was changed" (USAGE, REFUSED, NEEDS_CONFIRMATION) from "a step failed after
changes began" (FAILED_AFTER_CHANGES), so a script or cron job can tell whether the cluster needs attention.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import ClassVar


class ExitCode(enum.IntEnum):
    SUCCESS = 0
    INTERNAL = 1
    USAGE = 2
    REFUSED = 3
    NEEDS_CONFIRMATION = 4
    FAILED_AFTER_CHANGES = 5
    ROLLED_BACK = 6
    CHECK_FAILED = 7
    INTERRUPTED = 130
    TERMINATED = 143

    @property
    def description(self) -> str:
        """One line for --help and the README."""
        return _EXIT_CODE_DESCRIPTIONS[self]


_EXIT_CODE_DESCRIPTIONS: dict[ExitCode, str] = {
    ExitCode.SUCCESS: "success",
    ExitCode.INTERNAL: "internal error (a bug in confluo); the message says what it was doing",
    ExitCode.USAGE: "bad arguments or invalid inventory; nothing was changed",
    ExitCode.REFUSED: "refused, or something needed could not be reached or read; nothing was changed",
    ExitCode.NEEDS_CONFIRMATION: "would act, but no --yes and no terminal to ask; nothing was changed",
    ExitCode.FAILED_AFTER_CHANGES: "a step failed after changes began; halted safely (see the hint)",
    ExitCode.ROLLED_BACK: "a node failed and was rolled back; the cluster serves on the old version (see the hint)",
    ExitCode.CHECK_FAILED: "the cluster check found a problem (`confluo verify`); the message names each node",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C or SIGINT); the node in progress was brought back first",
    ExitCode.TERMINATED: "terminated (SIGTERM, as cron, systemd and CI send); the node in progress was brought back",
}


class ConfluoError(Exception):
    """An error meant for the user: a message, an optional hint on what to do, and an exit code."""

    exit_code: ClassVar[ExitCode] = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _indented(lines: Iterable[str]) -> str:
    return "\n".join(f"  {line}" for line in lines)


class InventoryError(ConfluoError):
    """The inventory is unreadable or invalid; every problem found is listed, one per line."""

    exit_code = ExitCode.USAGE

    def __init__(self, problems: Iterable[str], *, source: str | None = None, hint: str | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        # Prefixing each line with the file lets editors and terminals jump straight to it.
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(f"{prefix}{problem}" for problem in self.problems), hint=hint)


class UnusableLocalFile(ConfluoError):
    """A file or folder of this machine's own (the log file, the state folder) cannot be written."""

    exit_code = ExitCode.USAGE


class RefusedError(ConfluoError):
    """Preflight refused to start; every reason is listed, and nothing was changed."""

    exit_code = ExitCode.REFUSED

    def __init__(self, reasons: Iterable[str], *, hint: str | None = None) -> None:
        self.reasons = tuple(reasons)
        super().__init__(f"refused, nothing was changed:\n{_indented(self.reasons)}", hint=hint)


class NeedsConfirmation(ConfluoError):
    """confluo would change the cluster, but there is neither --yes nor a terminal to ask on."""

    exit_code = ExitCode.NEEDS_CONFIRMATION

    def __init__(
        self,
        message: str = "this would change the cluster and there is no terminal to confirm on",
        *,
        hint: str | None = "review the plan, then run again with --yes",
    ) -> None:
        super().__init__(message, hint=hint)


COMMAND_SHOWN_CHARACTERS = 240


def brief(command: str) -> str:
    """A command as a message shows it: a script confluo sends (the probe) is thousands of characters that only
    the log needs in full."""
    first = command.splitlines()[0] if command else ""
    if first == command and len(command) <= COMMAND_SHOWN_CHARACTERS:
        return command
    return f"{first[:COMMAND_SHOWN_CHARACTERS]} … ({len(command)} characters in all, in the log)"


class StepFailed(ConfluoError):
    """A step failed after changes began; the run halted and `hint` says what to run next."""

    exit_code = ExitCode.FAILED_AFTER_CHANGES

    def __init__(
        self,
        *,
        node: str,
        step: str,
        command: str | None,
        exit_status: int | None,
        output_tail: str,
        hint: str,
    ) -> None:
        self.node = node
        self.step = step
        self.command = command
        self.exit_status = exit_status
        self.output_tail = output_tail
        super().__init__(self._describe(), hint=hint)

    def while_putting_back(self, first: StepFailed | None, doing: str, not_serving: str) -> StepFailed:
        """This failure, met while undoing `first` (None: undoing after an interrupt), as the user reads it."""
        return StepFailed(
            node=self.node,
            step=f"rollback ({self.step})",
            command=self.command,
            exit_status=self.exit_status,
            output_tail=(f"{first.message}\nthen, {doing}:\n" if first else "") + self.output_tail,
            hint=f"{not_serving} is not serving: {self.hint}",
        )

    def _describe(self) -> str:
        lines = [f"{self.node}: step '{self.step}' failed"]
        if self.command is not None:
            lines.append(f"  command: {brief(self.command)}")
        if self.exit_status is not None:
            lines.append(f"  exit status: {self.exit_status}")
        tail = self.output_tail.rstrip("\n")
        if tail:
            lines.append("  output (last lines):")
            lines.append(_indented(f"  {line}" for line in tail.splitlines()))
        return "\n".join(lines)


class NothingChanged(ConfluoError):
    """A failure before any change was made (or in a command that only reads): the cluster needs no attention."""

    exit_code = ExitCode.REFUSED

    def __init__(self, cause: ConfluoError) -> None:
        hint = cause.hint or "nothing was changed on any host or in the cluster"
        super().__init__(f"{cause.message}\n  (nothing was changed)", hint=hint)
        self.cause = cause


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that it unwinds like Ctrl-C: the node in progress is brought back."""


class RolledBack(ConfluoError):
    """A node failed, was put back on its old installation, and the cluster serves on the old version."""

    exit_code = ExitCode.ROLLED_BACK


class CheckFailed(ConfluoError):
    """A check of the cluster found a problem (`confluo verify`: a node did not read or find the test page)."""

    exit_code = ExitCode.CHECK_FAILED

    def __init__(self, failures: Iterable[str], *, hint: str | None = None) -> None:
        self.failures = tuple(failures)
        super().__init__(f"the cluster check failed:\n{_indented(self.failures)}", hint=hint)


class LeftBehind(ConfluoError):
    """Something confluo made for a while could not be removed again (the test page of `confluo verify`)."""

    exit_code = ExitCode.FAILED_AFTER_CHANGES
