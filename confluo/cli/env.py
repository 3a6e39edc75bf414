"""What a command reads of its surroundings, built once and passed down: tests hand in their own."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from confluo.ports import Ports


@dataclass
class Env:
    """The terminal, the streams, the ports to the world, and where confluo keeps its logs and locks."""

    stdin_isatty: bool = field(default_factory=lambda: _is_terminal(sys.stdin))
    stdout_isatty: bool = field(default_factory=lambda: _is_terminal(sys.stdout))
    stdout: IO[str] = field(default_factory=lambda: sys.stdout or _nowhere())
    ports: Ports = field(default_factory=Ports)

    @property
    def state_dir(self) -> Path:
        return self.ports.state_dir

    def default_log_path(self) -> Path:
        # The process id keeps apart runs started in the same second (cron jobs on several clusters).
        return self.state_dir / "logs" / time.strftime(f"upgrade-%Y%m%d-%H%M%S-{os.getpid()}.log")


def _is_terminal(stream: IO[str] | None) -> bool:
    """A stream the shell closed (`<&-`, `>&-`) is None in Python: not a terminal, so nothing prompts."""
    return stream is not None and stream.isatty()


def _nowhere() -> IO[str]:
    return open(os.devnull, "w")  # lives as long as the command


class ReaderSafe:
    """stdout for a run that must not stop because its reader did (`confluo plan | head`, a terminal closed while
    an upgrade runs): once a write meets a closed pipe, output goes nowhere and the run goes on — a node half-way
    through its upgrade is finished, and the log keeps every line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.reader_gone = True
        try:  # the interpreter flushes stdout once more at exit: that flush must find somewhere to go too
            nowhere = os.open(os.devnull, os.O_WRONLY)
            os.dup2(nowhere, self._stream.fileno())
            os.close(nowhere)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
