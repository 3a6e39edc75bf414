"""Issue 8's fault matrix against the lab, the rows no other lab test covers: each fault injected with
`confluo lab fault` (or a signal to confluo itself), then what every node, the cluster and confluo's answer are,
that nothing was lost, and that no page read through the load balancer failed meanwhile.

The other rows: fail-start on the first node, hang-start, the crash of a node waiting its turn, a lost SSH
connection, the API answering 500 (tests/test_upgrade.py); hang-stop (test_upgrade.py, tests/test_hard_stop.py);
SIGKILL during pre-staging (test_upgrade.py); two runs from two HOMEs (tests/test_lock_lab.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from labkit import NEXT, LabHandle
from labruns import Kept, Traffic, assert_serving, confluo, confluo_env, every_node, quick, upgrade_watching

pytestmark = pytest.mark.lab

OLD = "9.2.13"


# -- a node fails ------------------------------------------------------------------------------------------------


def test_fail_start_on_the_last_node_rolls_it_back_and_the_same_upgrade_then_completes(
    lab: LabHandle, tmp_path: Path
) -> None:
    """node2, the busiest, goes last; its new release ends in ERROR: it goes back to 9.2.13 while node3 and node1
    keep 9.2.14 (MIXED, upgrade mode on, exit 5). Once the cause is gone, the same upgrade completes."""
    lab.set("node1", tasks=1)
    lab.set("node2", tasks=2)
    lab.fault("node2", "fail-start")
    inventory, env, kept = quick(lab, tmp_path / "short"), confluo_env(tmp_path / "state"), Kept(lab)

    def new_release_only(event: dict[str, Any], _: object) -> None:
        if event["event"] == "rollback_started":
            lab.fault("node2", "clear")

    with Traffic(lab.lb_url) as traffic:
        run = upgrade_watching(inventory, new_release_only, env=env)
        assert run.exit_code == 5, run.stderr
        assert run.nodes_started() == ["node3", "node1", "node2"]
        assert "node2" in run.stderr and "ERROR" in run.stderr
        assert f"rolled back: node2 is ACTIVE on {OLD} again; node1, node3 run {NEXT}" in run.stderr
        assert "`confluo upgrade` again continues where this stopped" in run.stderr
        assert_serving(lab, "MIXED", True, {"node1": NEXT, "node2": OLD, "node3": NEXT})
        status = json.loads(confluo("status", "-i", str(inventory), "--json", env=env).stdout)
        assert status["unfinished_run"]["next"] == f"confluo upgrade -i INVENTORY --to {NEXT}"

        again = confluo("upgrade", "-i", str(inventory), "--yes", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_serving(lab, "STABLE", False, every_node(NEXT))
    kept.check()
    assert traffic.ok > 0 and traffic.failed == 0, traffic.errors


# -- confluo itself is stopped ---------------------------------------------------------------------------------


def test_confluo_killed_between_a_nodes_stop_and_its_start_is_resumed_by_the_same_upgrade(
    lab: LabHandle, tmp_path: Path
) -> None:
    """SIGKILL (nothing can catch it) once node1 is stopped: node1 stays down, upgrade mode on. The same upgrade
    again starts node1 and goes on to the end."""
    inventory, env, kept = quick(lab, tmp_path / "short"), confluo_env(tmp_path / "state"), Kept(lab)

    def kill_after_the_stop(event: dict[str, Any], process: subprocess.Popen[str]) -> None:
        if event["event"] == "phase_done" and event.get("step") == "stop":
            process.kill()

    with Traffic(lab.lb_url) as traffic:
        killed = upgrade_watching(inventory, kill_after_the_stop, env=env)
        assert killed.exit_code == -signal.SIGKILL
        assert killed.nodes_started() == ["node1"]
        node1 = lab.node("node1")
        assert (node1["state"], node1["status"]) == ("OFFLINE", "UNREACHABLE")
        assert lab.status()["cluster"]["upgrade_mode"] is True

        again = confluo("upgrade", "-i", str(inventory), "--yes", "--json", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert next(e["node"] for e in events if e["event"] == "node_started") == "node1", "found down, so first"
    assert not [e for e in events if e["event"] == "phase_done" and e.get("node") == "node1" and e["step"] == "stop"]
    assert [e for e in events if e["event"] == "phase_done" and e.get("node") == "node1" and e["step"] == "start"]
    assert_serving(lab, "STABLE", False, every_node(NEXT))
    kept.check()
    assert traffic.ok > 0 and traffic.failed == 0, traffic.errors


@pytest.mark.parametrize(
    ("signum", "code", "result", "said"),
    [(signal.SIGTERM, 143, "terminated", "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted", "interrupted")],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_signal_during_a_stop_brings_the_node_back_and_the_same_upgrade_then_completes(
    lab_factory: Any, tmp_path: Path, signum: int, code: int, result: str, said: str
) -> None:
    """While node1 stops (slowly: 5 s), confluo gets the signal cron or Ctrl-C sends: node1 is started again on
    9.2.13 before confluo exits, with its own exit code and a last JSON event that says so."""
    lab: LabHandle = lab_factory(stop_seconds=0.5)  # slow-stop: ten times as long
    lab.fault("node1", "slow-stop")
    inventory, env, kept = quick(lab, tmp_path / "short"), confluo_env(tmp_path / "state"), Kept(lab)

    def signal_during_the_stop(event: dict[str, Any], process: subprocess.Popen[str]) -> None:
        if (event["event"], event.get("phase")) == ("phase_started", "stop"):  # not the rollback's stop
            lab.wait_for_state("node1", "TERMINATING")
            process.send_signal(signum)
            lab.fault("node1", "clear")  # the stop under way stays slow; the next one is not

    with Traffic(lab.lb_url) as traffic:
        run = upgrade_watching(inventory, signal_during_the_stop, env=env)
        assert run.exit_code == code, run.stderr
        assert run.events[-1] == {**run.events[-1], "event": "run_finished", "result": result, "exit_code": code}
        assert f"error: {said}" in run.stderr and "the same command again continues" in run.stderr
        assert [e["node"] for e in run.events if e["event"] == "node_rolled_back"] == ["node1"]
        assert_serving(lab, "STABLE", False, every_node(OLD))

        again = confluo("upgrade", "-i", str(inventory), "--yes", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_serving(lab, "STABLE", False, every_node(NEXT))
    kept.check()
    assert traffic.ok > 0 and traffic.failed == 0, traffic.errors
