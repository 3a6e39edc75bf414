"""What a command reads of its surroundings, built once and passed down: tests hand in their own."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from confluo.ports import Ports


@dataclass
class Env:
    """The terminal, the streams, the ports to the world, and where confluo keeps its logs and locks."""

    stdin_isatty: bool = field(default_factory=lambda: sys.stdin.isatty())
    stdout_isatty: bool = field(default_factory=lambda: sys.stdout.isatty())
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    ports: Ports = field(default_factory=Ports)

    @property
    def state_dir(self) -> Path:
        return self.ports.state_dir

    def default_log_path(self) -> Path:
        return self.state_dir / "logs" / time.strftime("upgrade-%Y%m%d-%H%M%S.log")
