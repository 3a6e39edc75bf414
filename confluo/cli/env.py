"""What a command reads of its surroundings, built once and passed down: tests hand in their own."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

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
