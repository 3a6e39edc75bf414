"""The log file: every remote command with its exit status and output, every event, secrets masked."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from confluo.events import Event
from confluo.secrets import Masker, mask_secrets
from confluo.transport.base import CommandResult


class CommandLog:
    """The log file: every remote command with its exit status and output, secrets masked."""

    def __init__(self, path: Path, masker: Masker) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._masker = masker
        self._lock = threading.Lock()
        self._handle = path.open("a", encoding="utf-8")
        path.chmod(0o600)

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
            self._handle.write(mask_secrets(self._masker.mask(text)))
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()


LOG_LINE_LIMIT = 300


def _clip(line: str) -> str:
    """Long lines are file contents in transit (base64): they may hold secrets and help nobody."""
    return line if len(line) <= LOG_LINE_LIMIT else f"{line[:80]}... ({len(line)} characters not logged)"
