"""The node's log lines, in Confluence's format, in logs/catalina.out and the home's atlassian-confluence.log."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path


class NodeLog:
    """Appends Confluence-style lines to logs/catalina.out and <home>/logs/atlassian-confluence.log."""

    def __init__(self, install: Path) -> None:
        self._files = [install / "logs" / "catalina.out"]
        self._lock = threading.Lock()

    def add_home(self, home: Path) -> None:
        log = home / "logs" / "atlassian-confluence.log"
        if log in self._files:
            return
        with contextlib.suppress(OSError):
            log.parent.mkdir(parents=True, exist_ok=True)
        self._files.append(log)

    def write(self, level: str, logger: str, message: str) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now * 1000) % 1000:03d}"
        line = f"{stamp} {level} [{threading.current_thread().name}] [{logger}] {message}\n"
        with self._lock:
            for path in self._files:
                with contextlib.suppress(OSError), path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
