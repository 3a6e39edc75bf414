"""Standalone Synchrony against a lab (`confluo lab up --synchrony 2`): real sshd and login user per Synchrony host,
the release's jar started by start-synchrony.sh, its heartbeat over HTTP; the real command line in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from labkit import LabHandle, start_lab

from confluo.lab import hosts
from confluo.lab.tarball import synchrony_jar

pytestmark = pytest.mark.lab

SOURCE, NEXT = "9.2.13", "9.2.14"


def confluo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    return subprocess.run(
        [sys.executable, "-m", "confluo", *args],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip


def upgrade(lab: LabHandle, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    done = confluo(tmp_path, "upgrade", "-i", str(lab.inventory), "--yes", "--json")
    return done, [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def synchrony(lab: LabHandle) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in lab.status()["synchrony"]}


def test_an_upgrade_takes_both_synchrony_nodes_onto_the_new_jar_one_at_a_time(tmp_path: Path) -> None:
    with start_lab(nodes=2, lb="none", synchrony=2) as lab:
        record = lab.record
        before = synchrony(lab)
        assert {name: (s["version"], s["heartbeat"]) for name, s in before.items()} == {
            "synchrony1": (SOURCE, "OK"),
            "synchrony2": (SOURCE, "OK"),
        }
        homes = {host.name: host for host in record.synchrony}
        old = {name: host.jar.stat() for name, host in homes.items()}
        done, events = upgrade(lab, tmp_path)
        assert done.returncode == 0, done.stderr
        after = synchrony(lab)
        for name, host in homes.items():
            assert (after[name]["version"], after[name]["heartbeat"]) == (NEXT, "OK")
            assert after[name]["pid"] != before[name]["pid"]
            assert host.jar.read_bytes() == synchrony_jar(NEXT)  # the jar Confluence put in its local home
            backup = host.home / f"synchrony-standalone.jar.before-{NEXT}"
            assert backup.read_bytes() == synchrony_jar(SOURCE)  # the old one kept beside it
            jar = host.jar.stat()
            assert (jar.st_uid, jar.st_mode) == (old[name].st_uid, old[name].st_mode)
            assert not list(host.home.glob("*.confluo-*"))
        # One at a time: synchrony2 is stopped only once synchrony1 answers again; both after the first node.
        marks = [(e["event"], e.get("node"), e.get("step")) for e in events]
        first = next(e["node"] for e in events if e["event"] == "node_done")
        first_done = marks.index(("node_done", first, None))
        s1_started = marks.index(("phase_done", "synchrony1", "synchrony_start"))
        s2_stop = marks.index(("phase_started", "synchrony2", "synchrony_stop"))
        assert first_done < s1_started < s2_stop
        users = [host.user for host in record.synchrony]
        pids = [after[name]["pid"] for name in homes]
        lab.down()
        assert not any(hosts.pid_alive(pid) for pid in pids)
        if record.ssh:
            assert not any(hosts.user_exists(user) for user in users if user)


def test_a_synchrony_node_that_will_not_come_back_is_restored_and_the_run_halts_naming_it(tmp_path: Path) -> None:
    with start_lab(nodes=2, lb="none", synchrony=2) as lab:
        assert "fail-upgrade set" in lab.fault("synchrony2", "fail-upgrade")
        done, events = upgrade(lab, tmp_path)
        assert done.returncode == 5, done.stderr
        assert "synchrony2: step 'start Synchrony' failed" in done.stderr
        assert "restored: Synchrony on synchrony2 serves its old jar again" in done.stderr
        state = synchrony(lab)
        assert (state["synchrony2"]["version"], state["synchrony2"]["heartbeat"]) == (SOURCE, "OK")
        assert (state["synchrony1"]["version"], state["synchrony1"]["heartbeat"]) == (NEXT, "OK")
        versions = sorted(node["version"] for node in lab.status()["nodes"])
        assert versions == [SOURCE, NEXT]  # halted after the first Confluence node, which keeps serving
        assert [e["node"] for e in events if e["event"] == "node_rolled_back"] == ["synchrony2"]
        # Fixed, the same upgrade continues: synchrony1 is left serving, synchrony2 and node2 follow.
        lab.fault("synchrony2", "clear")
        done, events = upgrade(lab, tmp_path)
        assert done.returncode == 0, done.stderr
        state = synchrony(lab)
        assert {s["version"] for s in state.values()} == {NEXT}
        skipped = [e for e in events if e.get("node") == "synchrony1" and e["event"] == "phase_skipped"]
        assert len(skipped) == 4
        assert {node["version"] for node in lab.status()["nodes"]} == {NEXT}
