"""The log file: every remote command with its exit status and output, every event, secrets masked."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TextIO

from confluo.errors import UnusableLocalFile
from confluo.events import Event
from confluo.secrets import Masker, mask_secrets
from confluo.transport.base import CommandResult


class CommandLog:
    """The log file: every remote command with its exit status and output, secrets masked."""

    def __init__(self, path: Path, masker: Masker) -> None:
        self.path = path
        self._masker = masker
        self._lock = threading.Lock()
        self._handle: TextIO | None = None

    def open(self) -> None:
        """Called once the run is valid: an invalid one leaves no log behind. A path that cannot be written is
        refused here, before any host is contacted."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._handle = os.fdopen(fd, "a", encoding="utf-8")
            self.path.chmod(0o600)
        except OSError as exc:
            raise UnusableLocalFile(
                f"the log file {self.path} cannot be written: {exc.strerror or exc}",
                hint="pass --log-file with a file in a folder you can write, or fix that folder",
            ) from exc

    def command(self, result: CommandResult) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        text = (
            f"{stamp} [{result.node}] $ {result.command}\n"
            f"  exit {result.exit_status} in {result.seconds:.3f} s\n"
            + "".join(f"  | {_clip(line)}\n" for line in (result.stdout + result.stderr).splitlines()[-200:])
        )
        self._write(text)

    def event(self, event: Event) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.at))
        self._write(f"{stamp} {event.kind}: {event.message}\n")

    def event_text(self, text: str) -> None:
        self._write(text if text.endswith("\n") else text + "\n")

    def _write(self, text: str) -> None:
        with self._lock:
            if self._handle is None:
                return  # not open: the run never became valid
            self._handle.write(mask_secrets(self._masker.mask(text)))
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


LOG_LINE_LIMIT = 300


def _clip(line: str) -> str:
    """Long lines are file contents in transit (base64): they may hold secrets and help nobody."""
    return line if len(line) <= LOG_LINE_LIMIT else f"{line[:80]}... ({len(line)} characters not logged)"
