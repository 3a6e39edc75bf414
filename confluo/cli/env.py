"""What a command reads of its surroundings, built once and passed down: tests hand in their own."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from confluo.app import Ports


def _state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "confluo"


@dataclass
class Env:
    """The terminal, the streams, the ports to the world, and where confluo keeps its logs and locks."""

    stdin_isatty: bool = field(default_factory=lambda: sys.stdin.isatty())
    stdout_isatty: bool = field(default_factory=lambda: sys.stdout.isatty())
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    ports: Ports = field(default_factory=Ports)
    state_dir: Path = field(default_factory=_state_home)

    def default_log_path(self) -> Path:
        return self.state_dir / "logs" / time.strftime("upgrade-%Y%m%d-%H%M%S.log")
