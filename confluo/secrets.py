"""Secrets: references to where one is read (never the value itself), a masked wrapper, and a log masker.

A revealed secret goes into a `Masker`, which every log line, event and rendered plan passes through.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shlex
import signal
import stat
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from confluo.errors import ConfluoError, ExitCode

MASK = "******"
COMMAND_TIMEOUT_SECONDS = 30.0
MAX_SECRET_BYTES = 64 * 1024  # a password or token is far shorter; more is a mistake (or /dev/zero)

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
        # O_NONBLOCK: opening a FIFO returns at once (instead of waiting for a writer), and fstat refuses it.
        try:
            fd = os.open(self.source, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as error:
            raise self._fail(f"cannot read the file: {error.strerror}") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # checked before fdopen, which refuses a directory with its own error
            os.close(fd)
            raise self._fail(f"cannot read the file: {_file_kind(mode)}, not a regular file")
        with os.fdopen(fd, "rb") as handle:
            if mode & stat.S_IROTH:
                raise self._fail(
                    f"the file is readable by every user (mode {stat.S_IMODE(mode):04o})",
                    f"chmod 600 {shlex.quote(self.source)}",
                )
            try:
                data = handle.read(MAX_SECRET_BYTES + 1)
            except OSError as error:
                raise self._fail(f"cannot read the file: {error.strerror}") from None
        if len(data) > MAX_SECRET_BYTES:
            raise self._fail(f"the file is larger than {MAX_SECRET_BYTES // 1024} KiB; it cannot be a secret")
        return self._first_line(data, "the file")

    def _run_command(self, timeout_seconds: float) -> str:
        try:
            argv = shlex.split(self.source)
        except ValueError as error:
            raise self._fail(f"cannot split the command into words: {error}") from None
        if not argv:
            raise self._fail("the command is empty")
        try:
            returncode, stdout = _run_bounded(argv, timeout_seconds)
        except FileNotFoundError:
            raise self._fail(f"command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise self._fail(f"the command did not finish within {timeout_seconds:g} s") from None
        except _TooMuchOutput:
            raise self._fail(f"the command printed more than {MAX_SECRET_BYTES // 1024} KiB") from None
        except OSError as error:
            raise self._fail(f"cannot run the command: {error.strerror}") from None
        if returncode != 0:
            # Its output is never shown: a failing secret command may still have printed the secret.
            raise self._fail(f"the command exited with status {returncode}")
        return self._first_line(stdout, "the command's output")

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


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    return "a device or socket"


class _TooMuchOutput(Exception):
    pass


def _run_bounded(argv: list[str], timeout_seconds: float) -> tuple[int, bytes]:
    """Runs a command without a shell; its exit status and at most MAX_SECRET_BYTES of its output.

    The command gets its own process group, killed whole on a timeout: a child it left behind holding the pipe
    open would otherwise keep confluo waiting for the end of the output after the command itself was killed.
    """
    deadline = time.monotonic() + timeout_seconds
    with subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    ) as process:
        assert process.stdout is not None
        output = bytearray()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise subprocess.TimeoutExpired(argv, timeout_seconds)
                    if not selector.select(left):
                        continue
                    block = os.read(process.stdout.fileno(), 65536)
                    if not block:
                        break
                    output += block
                    if len(output) > MAX_SECRET_BYTES:
                        raise _TooMuchOutput
            return process.wait(max(deadline - time.monotonic(), 0.01)), bytes(output)
        except BaseException:
            _kill_group(process)
            raise


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()


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


# --- secrets inside files: what the masker cannot know in advance ---------------------------------------------
# A key says it holds a secret when its name contains one of these words, in any case (keystorePass, passwd,
# ldap.bind.credential, api_token, ...). Keys are bounded runs of key characters that start a word: unbounded,
# a 100 000-character word took minutes (every start, every split); bounded, masking stays linear.
_WORD = r"(?:pass|pwd|secret|credential|token)"
_KEY = rf"(?<![\w.-])[\w.-]{{0,256}}?{_WORD}[\w.-]{{0,256}}"
_FILE_SECRETS = (
    # key="value" / key='value': XML attributes, shell assignments, -Dkey="value"
    re.compile(rf"""(?i)(?P<keep>{_KEY}\s*=\s*(?P<q>["']))(?P<value>[^"'\n]+)(?P=q)"""),
    # <property name="...password">value</property>, <param-name>..secret</param-name><param-value>value<
    re.compile(
        rf"""(?i)(?P<keep><property\b[^>]{{0,300}}?name\s*=\s*["'][^"']{{0,256}}?{_WORD}[^"']{{0,256}}["'][^>]{{0,300}}>)(?P<value>[^<]+)"""
    ),
    re.compile(
        rf"""(?i)(?P<keep><param-name>[^<]{{0,256}}?{_WORD}[^<]{{0,256}}</param-name>\s*<param-value>)(?P<value>[^<]+)"""
    ),
    # user:password@ in any URL (jdbc:mysql://, ldap://, https://), and Oracle's jdbc:oracle:thin:user/password@
    re.compile(r"""(?i)(?P<keep>(?<![\w+.-])[a-z][\w+.-]{0,30}://[^/\s:@"'<>]{0,256}:)(?P<value>[^@\s/"'<>]+)(?=@)"""),
    re.compile(r"""(?i)(?P<keep>jdbc:oracle:\w{1,20}:[^/\s:@"'<>]{0,256}/)(?P<value>[^@\s"'<>]+)(?=@)"""),
    # a properties line, key=value, key: value or Crowd's key<blanks>value (behind a diff's or the log's prefix)
    re.compile(rf"""(?im)^(?P<keep>[ \t+\-|#!]{{0,8}}{_KEY}(?:[ \t]*[=:][ \t]*|[ \t]+))(?P<value>[^\s"'].*?)[ \t]*$"""),
    # key=value anywhere else: -Djavax.net.ssl.trustStorePassword=..., ;password=...; in a JDBC URL, ?token=...&
    re.compile(rf"""(?i)(?P<keep>{_KEY}\s*[=:]\s*)(?P<value>[^\s"'<>&;,)]+)"""),
)


def mask_secrets(text: str) -> str:
    """`text` with every value a key, a URL or an XML property names as secret replaced by '******'."""
    for pattern in _FILE_SECRETS:
        text = pattern.sub(_masked, text)
    return text


def _masked(match: re.Match[str]) -> str:
    value = match.group("value")
    if value == MASK:
        return match.group(0)
    start, end = match.span("value")
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + MASK + whole[end - offset :]
