"""Secrets: references to where one is read (never the value itself), a masked wrapper, and a log masker.

A revealed secret goes into a `Masker`, which every log line, event and rendered plan passes through.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from confluo.errors import ConfluoError, ExitCode

MASK = "******"
COMMAND_TIMEOUT_SECONDS = 30.0

SecretKind = Literal["password", "token"]
SecretSource = Literal["env", "file", "command"]


class Secret:
    """A string that shows as '******' in repr, str and f-strings; `reveal()` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return MASK

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would write the value into whatever file or queue receives it.
        raise TypeError("a Secret cannot be pickled")


class SecretError(ConfluoError):
    """A secret reference could not be resolved. The message names the reference, never the secret."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class SecretRef:
    """Where to read a password or token: an environment variable, a file's first line, or a command's."""

    kind: SecretKind
    via: SecretSource
    source: str

    @property
    def key(self) -> str:
        """The inventory key this reference was written as, e.g. "password_env"."""
        return f"{self.kind}_{self.via}"

    def __str__(self) -> str:
        return f"{self.key} {self.source}"

    def resolve(self, *, command_timeout_seconds: float = COMMAND_TIMEOUT_SECONDS) -> Secret:
        if self.via == "env":
            value = self._read_env()
        elif self.via == "file":
            value = self._read_file()
        else:
            value = self._run_command(command_timeout_seconds)
        return Secret(value)

    def _fail(self, problem: str, hint: str | None = None) -> SecretError:
        return SecretError(f"cluster.credentials.{self.key} ({self.source}): {problem}", hint=hint)

    def _read_env(self) -> str:
        value = os.environ.get(self.source)
        if value is None:
            raise self._fail("the environment variable is not set", f"export {self.source}, then run again")
        if not value:
            raise self._fail("the environment variable is empty")
        return value

    def _read_file(self) -> str:
        path = Path(self.source)
        try:
            mode = path.stat().st_mode
            if mode & stat.S_IROTH:
                raise self._fail(
                    f"the file is readable by every user (mode {stat.S_IMODE(mode):04o})",
                    f"chmod 600 {shlex.quote(self.source)}",
                )
            data = path.read_bytes()
        except OSError as error:
            raise self._fail(f"cannot read the file: {error.strerror}") from None
        return self._first_line(data, "the file")

    def _run_command(self, timeout_seconds: float) -> str:
        try:
            argv = shlex.split(self.source)
        except ValueError as error:
            raise self._fail(f"cannot split the command into words: {error}") from None
        if not argv:
            raise self._fail("the command is empty")
        try:
            # No shell: the command line is split into words here and run as-is.
            completed = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_seconds, check=False
            )
        except FileNotFoundError:
            raise self._fail(f"command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise self._fail(f"the command did not finish within {timeout_seconds:g} s") from None
        except OSError as error:
            raise self._fail(f"cannot run the command: {error.strerror}") from None
        if completed.returncode != 0:
            # Its output is never shown: a failing secret command may still have printed the secret.
            raise self._fail(f"the command exited with status {completed.returncode}")
        return self._first_line(completed.stdout, "the command's output")

    def _first_line(self, data: bytes, what: str) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            # The codec's message quotes the offending byte, so it is replaced by one of ours.
            raise self._fail(f"{what} is not valid UTF-8 text") from None
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise self._fail(f"the first line of {what} is empty")
        return lines[0]


class Masker:
    """Replaces every secret revealed so far with '******' in any text about to be shown or written."""

    def __init__(self, secrets: Iterable[Secret] = ()) -> None:
        self._lock = threading.Lock()
        self._needles: tuple[str, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: Secret) -> None:
        value = secret.reveal()
        if not value:
            return
        # A value may also appear shell-quoted in a logged command, or percent-encoded in a URL.
        forms = {value, shlex.quote(value), urllib.parse.quote(value, safe="")}
        with self._lock:
            # Longest first, so a secret that contains another is masked whole.
            self._needles = tuple(sorted(set(self._needles) | forms, key=len, reverse=True))

    def mask(self, text: str) -> str:
        for needle in self._needles:
            text = text.replace(needle, MASK)
        return text
