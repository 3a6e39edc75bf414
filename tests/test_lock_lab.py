"""The cluster lock in the shared home against a lab: real sshd per node, the lock taken over SSH as the nodes'
login users, two administrators' runs with two HOMEs (so two local locks, as on two machines) at once, and a lock
left behind by a run that was SIGKILLed."""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import LabHandle, wait_until

pytestmark = pytest.mark.lab

NEXT = "9.2.14"
SERVING = ("ACTIVE", "RUNNING_FINALIZE_UPGRADE_TASKS")  # the upgrade tasks run while every node serves


def with_shared_home(lab: LabHandle, tmp_path: Path) -> Path:
    document = yaml.safe_load(lab.inventory.read_text())
    document["target"]["shared_home"] = str(lab.dir / "shared")
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def administrator(tmp_path: Path, name: str, **extra: str) -> dict[str, str]:
    """The environment of one administrator: a HOME and a state folder (journal, local lock) of their own."""
    home = tmp_path / name
    (home / "state").mkdir(parents=True)
    return {**os.environ, "HOME": str(home), "XDG_STATE_HOME": str(home / "state"), **extra}


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "confluo", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confluo", *args], env=env, text=True, capture_output=True,
        stdin=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip


def events_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def out_of_service_overlaps(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of nodes that were between their `node_started` and `node_done` at the same time."""
    spans: dict[str, list[float]] = {}
    for event in events:
        if event["event"] == "node_started":
            spans[event["node"]] = [event["at"], float("inf")]
        elif event["event"] == "node_done" and event["node"] in spans:
            spans[event["node"]][1] = event["at"]
    names = sorted(spans)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]
            if spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]]  # fmt: skip


def test_two_runs_from_two_homes_at_once_one_proceeds_and_the_other_is_refused_naming_it(
    lab: LabHandle, tmp_path: Path
) -> None:
    inventory = with_shared_home(lab, tmp_path)
    args = ("upgrade", "-i", str(inventory), "--to", NEXT, "--yes", "--json")
    down_at_once: list[int] = []
    watching = threading.Event()

    def watch() -> None:  # what the cluster itself says, while both runs go
        while not watching.is_set():
            down_at_once.append(sum(node["state"] not in SERVING for node in lab.status()["nodes"]))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    runs = [start(administrator(tmp_path, "alice"), *args), start(administrator(tmp_path, "bob"), *args)]
    results = [(process.pid, *process.communicate(timeout=300), process.returncode) for process in runs]
    watching.set()
    watcher.join(30)

    assert sorted(code for *_, code in results) == [0, 3], results
    (winner, won_out, _, _), (_, lost_out, lost_err, _) = sorted(results, key=lambda result: result[-1])
    holder = f"{getpass.getuser()}@{socket.gethostname()} (pid {winner}, `confluo upgrade`"
    assert holder in lost_err and "last heartbeat" in lost_err and "refused, nothing was changed" in lost_err
    lost = events_of(lost_out)
    assert [e["event"] for e in lost] == ["run_finished"] and lost[0]["exit_code"] == 3
    won = events_of(won_out)
    assert [e["node"] for e in won if e["event"] == "node_started"] == ["node1", "node2", "node3"]
    assert out_of_service_overlaps(won) == []
    assert max(down_at_once) == 1, "one node out at a time (and the watcher saw it), never two"
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", NEXT)] * 3
    assert not (lab.dir / "shared" / ".confluo-lock").exists(), "released at the end"


def test_a_lock_left_by_a_sigkilled_run_goes_stale_and_is_released_on_request(lab: LabHandle, tmp_path: Path) -> None:
    inventory = with_shared_home(lab, tmp_path)
    lock = lab.dir / "shared" / ".confluo-lock"
    alice = administrator(tmp_path, "alice", CONFLUO_LOCK_HEARTBEAT_SECONDS="0.2")  # stale after 5.6 s
    bob = administrator(tmp_path, "bob")
    killed = start(alice, "upgrade", "-i", str(inventory), "--to", NEXT, "--yes", "--json")
    assert killed.stdout is not None
    for line in killed.stdout:
        if json.loads(line)["event"] == "node_started":
            killed.send_signal(signal.SIGKILL)
            break
    killed.wait(30)
    assert killed.returncode == -signal.SIGKILL and lock.is_dir()

    def lock_status() -> dict[str, Any]:
        result = run(bob, "lock", "status", "-i", str(inventory), "--json")
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    seen = lock_status()
    assert (seen["held"], seen["pid"], seen["command"], seen["holder_running"]) == (True, killed.pid, "upgrade", False)
    wait_until(lambda: lock_status()["stale"], 30, "the lock to go stale", lock_status)
    text = run(bob, "lock", "status", "-i", str(inventory))
    assert "STALE" in text.stdout and f"pid {killed.pid} is no longer running" in text.stdout

    unasked = run(bob, "lock", "release", "-i", str(inventory))
    assert unasked.returncode == 4 and f"pid {killed.pid}" in unasked.stdout and lock.is_dir()
    released = run(bob, "lock", "release", "-i", str(inventory), "--yes")
    assert released.returncode == 0 and "released the cluster lock" in released.stdout, released.stderr
    assert not lock.exists() and lock_status()["held"] is False

    resumed = run(alice, "upgrade", "-i", str(inventory), "--to", NEXT, "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [(n["state"], n["version"]) for n in lab.status()["nodes"]] == [("ACTIVE", NEXT)] * 3
    assert not lock.exists()
