"""confluo run against a lab (tests/labkit.py), as an administrator or cron would: a subprocess without a terminal
(`confluo`, `upgrade_watching`), pages read through the load balancer meanwhile (`Traffic`), and what a run must
never lose or leave behind (`snapshot`, `Kept`, `assert_serving`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from labkit import NEXT, LabHandle


def confluo_env(state: Path | None = None) -> dict[str, str]:
    """The environment of a confluo run; `state` holds its journal and local lock (else one folder for all)."""
    folder = state or Path(os.environ.get("TMPDIR", "/tmp")) / "confluo-test-state"
    return {**os.environ, "XDG_STATE_HOME": str(folder)}


def confluo(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confluo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env or confluo_env(),
    )


def variant(lab: LabHandle, tmp_path: Path, change: Callable[[Any], object]) -> Path:
    """A copy of the lab's inventory with `change(document)` applied."""
    document = yaml.safe_load(lab.inventory.read_text())
    change(document)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@dataclass
class Watched:
    """A `confluo ... --json` run whose events a test reacted to as they came."""

    exit_code: int
    events: list[dict[str, Any]]
    stderr: str

    def nodes_started(self) -> list[str]:
        return [event["node"] for event in self.events if event["event"] == "node_started"]


def upgrade_watching(
    inventory: Path,
    react: Callable[[dict[str, Any], subprocess.Popen[str]], None],
    *,
    to: str = NEXT,
    env: dict[str, str] | None = None,
) -> Watched:
    """Runs the upgrade in the background and calls `react` with each JSON event, while the run goes on."""
    process = subprocess.Popen(
        [sys.executable, "-m", "confluo", "upgrade", "-i", str(inventory), "--to", to, "--yes", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    events = []
    for line in process.stdout:
        events.append(json.loads(line))
        react(events[-1], process)
    exit_code = process.wait(120)
    return Watched(exit_code, events, process.stderr.read())


class Traffic:
    """A client reading pages through the load balancer the whole time, counting answers and failures."""

    def __init__(self, url: str) -> None:
        self.url, self.ok, self.failed = url, 0, 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url + "/", timeout=5) as response:
                    self.ok += response.status == 200
            except (urllib.error.URLError, OSError) as error:
                self.failed += 1
                self.errors.append(str(error))
            time.sleep(0.02)


def snapshot(lab: LabHandle) -> dict[str, Any]:
    """Everything an upgrade could change: files on every host (but logs), the login users' homes, the cluster."""
    record = lab.record
    entries: dict[str, tuple[Any, ...]] = {}
    roots = [lab.dir / "hosts", lab.dir / "shared"] + [Path("/home") / node.user for node in record.nodes if node.user]
    for root in roots:
        for path in sorted(root.rglob("*")):
            relative = str(path)
            if "/logs/" in relative or "/sshd/" in relative or relative.endswith(("/logs", "/sshd")):
                continue
            info = path.lstat()
            link = os.readlink(path) if path.is_symlink() else None
            entries[relative] = (info.st_mode, info.st_uid, info.st_size, info.st_mtime_ns, link)
    status = lab.status()
    cluster = (status["cluster"]["state"], status["cluster"]["upgrade_mode"])
    nodes = {node["name"]: (node["state"], node["version"]) for node in status["nodes"]}
    return {"files": entries, "cluster": cluster, "nodes": nodes}


def kept(lab: LabHandle, installs: dict[str, Path]) -> tuple[set[str], dict[str, str]]:
    """What must never be lost: every path in the local homes and the shared home (Confluence itself writes in
    them), and every file of `installs` with its sha256 (but logs/, work/ and temp/, which a running node writes)."""
    homes = [Path(node["home"]) for node in lab.status()["nodes"]] + [lab.dir / "shared"]
    paths = {str(path) for root in homes for path in root.rglob("*") if "logs" not in path.parts}
    files = {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for root in installs.values()
        for path in root.rglob("*")
        if path.is_file() and not {"logs", "work", "temp"} & set(path.relative_to(root).parts)
    }
    return paths, files


class Kept:
    """The homes and the old installations as they were before a run: `check` asserts none of it was lost."""

    def __init__(self, lab: LabHandle) -> None:
        self.lab = lab
        self.installs = {node["name"]: Path(node["install_dir"]).resolve() for node in lab.status()["nodes"]}
        self.paths, self.files = kept(lab, self.installs)

    def check(self) -> None:
        paths, files = kept(self.lab, self.installs)
        assert self.paths <= paths, f"lost from the homes: {sorted(self.paths - paths)}"
        assert files == self.files, "the old installations are untouched"


# Deadlines that end a faulty run in seconds rather than the lab inventory's minutes, with room for a busy machine.
SHORT_TIMEOUTS = {"start_seconds": 20, "stop_seconds": 10, "finalize_seconds": 20, "kill_grace_seconds": 3}


def quick(lab: LabHandle, folder: Path, **timeouts: float) -> Path:
    """The lab's inventory, in `folder`, with SHORT_TIMEOUTS and then `timeouts`."""
    folder.mkdir(parents=True, exist_ok=True)
    return variant(lab, folder, lambda doc: doc["defaults"]["timeouts"].update({**SHORT_TIMEOUTS, **timeouts}))


def installation_running(pid: int) -> Path:
    """The installation the node process `pid` was started from (the lab's node names it in --install)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return Path(argv[argv.index("--install") + 1]).resolve()


def assert_serving(
    lab: LabHandle, state: str, upgrade_mode: bool, versions: dict[str, str], *, failed: Collection[str] = ()
) -> None:
    """The cluster's state and upgrade mode, and every node ACTIVE (or, `failed`, UPGRADE_TASKS_FAILED) and serving
    on its version: the installation in use (the `current` link) and the one its running process came from are
    that version's."""
    status = lab.status()
    assert (status["cluster"]["state"], status["cluster"]["upgrade_mode"]) == (state, upgrade_mode)
    assert sorted(node["name"] for node in status["nodes"]) == sorted(versions)
    for node in status["nodes"]:
        version, active = versions[node["name"]], "UPGRADE_TASKS_FAILED" if node["name"] in failed else "ACTIVE"
        assert (node["state"], node["status"], node["version"]) == (active, "RUNNING", version), node
        in_use = Path(node["install_dir"]).resolve()
        assert in_use.name == version and installation_running(node["pid"]) == in_use, node


def every_node(version: str, count: int = 3) -> dict[str, str]:
    return {f"node{k}": version for k in range(1, count + 1)}
