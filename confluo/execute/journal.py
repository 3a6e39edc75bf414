"""The run journal: which upgrade a confluo run on this machine has under way, so that the same command can
resume it. A record, not the truth: every step still asks the hosts. Versioned JSON, written atomically, with
no secrets in it."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

JOURNAL_VERSION = 1


@dataclass(frozen=True)
class JournalEntry:
    cluster: str
    api_url: str
    source_version: str
    target_version: str
    started_at: str
    host: str
    pid: int


class Journal:
    """One file per cluster in confluo's state folder."""

    def __init__(self, state_dir: Path, api_url: str) -> None:
        self.api_url = api_url
        self.path = state_dir / "runs" / (hashlib.sha256(api_url.encode()).hexdigest()[:16] + ".json")

    def read(self) -> JournalEntry | None:
        try:
            record = json.loads(self.path.read_text())
            if record.pop("v", None) != JOURNAL_VERSION:
                return None
            return JournalEntry(**record)
        except (OSError, ValueError, TypeError):
            return None

    def started(self, cluster: str, source: str, target: str) -> None:
        entry = JournalEntry(
            cluster, self.api_url, source, target, datetime.now(UTC).isoformat(timespec="seconds"),
            socket.gethostname(), os.getpid(),
        )  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".part")
        partial.write_text(json.dumps({"v": JOURNAL_VERSION, **asdict(entry)}, indent=2) + "\n")
        partial.replace(self.path)

    def finished(self) -> None:
        self.path.unlink(missing_ok=True)
