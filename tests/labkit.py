"""Labs for tests: start one, drive it, and always take it down again.

    from labkit import start_lab

    with start_lab(nodes=2, lb="nginx") as lab:
        lab.status()["nodes"][0]["state"]          # "ACTIVE"
        subprocess.run(["confluo", "upgrade", "-i", str(lab.inventory), ...])

`tests/conftest.py` offers the same as the fixtures `lab` (3 nodes, HAProxy, MySQL) and `lab_factory`.
`tests/labruns.py` runs confluo against a lab.
Every lab gets a fresh folder under /tmp/confluo-test-labs (world-traversable, as the node users need; pytest's
tmp_path is not) and is removed after `down`, unless CONFLUO_KEEP_LABS=1 keeps it for a post-mortem.
Timings are short by default (start 0.5 s, stop 0.3 s, the search index every 0.5 s) so a lab is ACTIVE about a
second after `up` begins.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluo.lab import control, lifecycle, model
from confluo.lab.status import status as lab_status

LABS_BASE = Path("/tmp/confluo-test-labs")
NEXT = model.next_bugfix(model.DEFAULT_VERSION)  # the release the lab's inventory upgrades to: 9.2.14
FAST = model.Timings(start_seconds=0.5, stop_seconds=0.3, finalize_seconds=0.5, index_seconds=0.5)


@dataclass
class LabHandle:
    dir: Path
    inventory: Path

    @property
    def record(self) -> model.Lab:
        """What lab.json says: slot, mode, nodes (with their paths and users), admin password."""
        return model.load(self.dir)

    def status(self) -> dict[str, Any]:
        """The same document as `confluo lab status --json`."""
        return lab_status(self.dir)

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.status()["nodes"] if n["name"] == name)

    def down(self) -> None:
        """Idempotent: a lab already down is left alone."""
        if model.lab_json(self.dir).exists():
            lifecycle.down(self.dir)

    def fault(self, node: str, kind: str) -> str:
        return control.fault(self.dir, node, kind)

    def set(self, node: str, *, tasks: int | None = None, users: int | None = None) -> None:
        control.set_load(self.dir, node, tasks=tasks, users=users)

    def stop_node(self, node: str) -> None:
        """Run the node's stop script as its user (returns at once; the node goes OFFLINE after stop_seconds)."""
        control.stop(self.dir, node)

    def start_node(self, node: str) -> int | None:
        return control.start(self.dir, node)

    def wait_for_state(self, node: str, *states: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the node's cluster state is one of `states`; returns its status entry."""
        found: dict[str, Any] = {}

        def reached() -> bool:
            found.update(self.node(node))
            return found["state"] in states

        wait_until(reached, timeout, f"{node} to become {' or '.join(states)}", lambda: found.get("state"))
        return found

    @property
    def api(self) -> tuple[str, str, str]:
        """(url, username, password) of the ZDU REST API on node1."""
        record = self.record
        return record.nodes[0].url, model.ADMIN_USER, record.admin_password

    @property
    def lb_url(self) -> str:
        return self.record.api_url

    def ssh_argv(self, node: str, command: str, *, connect_timeout: int = 5) -> list[str]:
        """The real OpenSSH client, strict host key checking, the lab's key and known_hosts."""
        record = self.record
        target = record.node(node)
        return [
            "ssh",
            "-i", str(record.client_key),
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={record.known_hosts}",
            "-o", f"ConnectTimeout={connect_timeout}",
            "-o", "LogLevel=ERROR",
            "-p", "22",
            f"{target.user}@{target.address}",
            command,
        ]  # fmt: skip

    def ssh(self, node: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.ssh_argv(node, command), capture_output=True, text=True, timeout=30)


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    last_seen: Callable[[], object] = lambda: None,
    interval: float = 0.05,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last seen: {last_seen()})")
        time.sleep(interval)


def new_lab_dir(prefix: str = "lab-") -> Path:
    """A fresh folder every node user can reach (mode 755 all the way down from /)."""
    LABS_BASE.mkdir(parents=True, exist_ok=True)
    LABS_BASE.chmod(0o755)
    lab_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=LABS_BASE))
    lab_dir.chmod(0o755)
    return lab_dir


def lab_options(
    *,
    nodes: int = 3,
    version: str = model.DEFAULT_VERSION,
    db: str = "mysql",
    lb: str = "haproxy",
    start_seconds: float = FAST.start_seconds,
    stop_seconds: float = FAST.stop_seconds,
    finalize_seconds: float = FAST.finalize_seconds,
    index_seconds: float = FAST.index_seconds,
    local: bool = False,
    lb_retries: bool = False,
    synchrony: int = 0,
    spare_hosts: int = 0,
) -> model.LabOptions:
    timings = model.Timings(start_seconds, stop_seconds, finalize_seconds, index_seconds)
    return model.LabOptions(
        nodes=nodes,
        version=version,
        db=db,
        lb=lb,
        timings=timings,
        local=local,
        lb_retries=lb_retries,
        synchrony=synchrony,
        spare_hosts=spare_hosts,
    )


@contextlib.contextmanager
def start_lab(**options: Any) -> Iterator[LabHandle]:
    """Start a lab (options as `lab_options`) and take it down when the block ends, however it ends."""
    lab_dir = new_lab_dir()
    handle = LabHandle(lab_dir, lab_dir / "inventory.yaml")
    # A lab that failed to come up keeps its folder: its logs say why (`up` has stopped its processes).
    lifecycle.up(lab_dir, lab_options(**options))
    try:
        yield handle
    finally:
        try:
            handle.down()
        finally:
            if os.environ.get("CONFLUO_KEEP_LABS") != "1":
                shutil.rmtree(lab_dir, ignore_errors=True)
