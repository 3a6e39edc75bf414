"""One run against a cluster at a time from this machine: cron and a person at a terminal must not overlap.
The lock across machines, in the shared home, is run_lock.py's."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluo.errors import RefusedError


@contextmanager
def cluster_lock(api_url: str, lock_dir: Path) -> Iterator[None]:
    """Held for the whole run; the kernel releases it if confluo dies, so a lock is never left stale."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / (hashlib.sha256(api_url.encode()).hexdigest()[:16] + ".lock")
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RefusedError(
                [f"another confluo run against {api_url} is under way on this machine ({holder})"],
                hint="wait for it to finish; `confluo status` shows the cluster meanwhile",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
