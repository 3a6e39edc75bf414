"""Local transport: the same commands, run on this machine (the lab's local mode, and tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from confluo.errors import brief
from confluo.transport.base import CommandResult, CommandTimedOut, finished, private_file


class LocalTransport:
    """Runs commands with bash on this machine, as the current user."""

    def __init__(self, node: str) -> None:
        self.node = node

    def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float = 120.0,
        check: bool = True,
    ) -> CommandResult:
        started = time.monotonic()
        try:
            completed = subprocess.run(
                ["/bin/bash", "-c", command],
                input=stdin or b"",
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandTimedOut(f"{self.node}: `{brief(command)}` ran past {timeout:.0f} s") from exc
        return finished(
            self.node, command, completed.returncode, completed.stdout, completed.stderr, started, check=check
        )

    def upload(self, local_path: str, remote_path: str, *, timeout: float, offset: int = 0) -> int:
        with open(local_path, "rb") as source, open(remote_path, "ab" if offset else "wb") as target:
            source.seek(offset)
            shutil.copyfileobj(source, target)
        return os.path.getsize(local_path) - offset

    def download(self, command: str, local_path: str, *, timeout: float) -> CommandResult:
        started = time.monotonic()
        with private_file(local_path) as out:
            try:
                completed = subprocess.run(
                    ["/bin/bash", "-c", command], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                    timeout=timeout, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise CommandTimedOut(f"{self.node}: `{brief(command)}` ran past {timeout:.0f} s") from exc
        size = str(os.path.getsize(local_path)).encode()
        return finished(self.node, command, completed.returncode, size, completed.stderr, started, check=False)

    def close(self) -> None:
        return None
