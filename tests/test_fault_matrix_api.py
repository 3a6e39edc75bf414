"""Issue 8's fault matrix against the lab, continued: the rows about the cluster's ZDU API and the commands that
end an upgrade (`cancel`, `finalize`). tests/test_fault_matrix.py has the node faults and the signals, and names the
tests that cover the other rows."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from labkit import NEXT, LabHandle
from labruns import (
    Kept,
    Traffic,
    assert_serving,
    confluo,
    confluo_env,
    every_node,
    quick,
    snapshot,
    upgrade_watching,
    variant,
)

pytestmark = pytest.mark.lab

OLD = "9.2.13"


def start_upgrade_mode(lab: LabHandle) -> None:
    """Upgrade mode on, by hand, as the Rolling upgrade page's toggle does."""
    url, user, password = lab.api
    headers = {"X-Atlassian-Token": "no-check", "Content-Type": "application/json"}
    assert httpx.post(url + "/rest/zdu/start", auth=(user, password), headers=headers, timeout=10).status_code == 200


# -- the API -------------------------------------------------------------------------------------------------------


def test_an_api_url_that_is_a_node_is_replaced_while_that_node_is_down(lab_factory: Any, tmp_path: Path) -> None:
    """Without a load balancer, the lab's inventory names node1's own URL as api_url: confluo says so, asks the
    other nodes while node1 is stopped, and completes."""
    lab: LabHandle = lab_factory(lb="none")
    inventory, kept = quick(lab, tmp_path / "short"), Kept(lab)
    assert lab.lb_url == lab.node("node1")["url"]
    result = confluo("upgrade", "-i", str(inventory), "--yes", "--json", env=confluo_env(tmp_path / "state"))
    assert result.returncode == 0, result.stdout + result.stderr
    notes = [json.loads(line)["message"] for line in result.stdout.splitlines() if '"event":"note"' in line]
    assert any("cluster.api_url is node1's own URL" in note for note in notes), notes
    assert_serving(lab, "STABLE", False, every_node(NEXT))
    kept.check()


def test_wrong_api_credentials_are_refused_before_any_change(lab: LabHandle, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    inventory = variant(lab, tmp_path, lambda doc: doc["cluster"]["credentials"].update(password_file=str(wrong)))
    before = snapshot(lab)
    with Traffic(lab.lb_url) as traffic:
        result = confluo("upgrade", "-i", str(inventory), "--yes", env=confluo_env(tmp_path / "state"))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "401; the credentials are not a system administrator's" in result.stderr
    assert "nothing was changed" in result.stderr and "not-the-password" not in result.stderr
    assert snapshot(lab) == before
    assert_serving(lab, "STABLE", False, every_node(OLD))
    assert traffic.ok > 0 and traffic.failed == 0, traffic.errors


# -- finalize and cancel -----------------------------------------------------------------------------------------


def test_failed_upgrade_tasks_are_shown_and_finalize_retry_ends_stable(lab: LabHandle, tmp_path: Path) -> None:
    """node2's upgrade tasks fail at finalize (UPGRADE_TASKS_FAILED, upgrade mode off): confluo shows the API's
    errors and names `confluo finalize --retry`. While the cause remains, the same upgrade again runs the tasks
    again and fails the same way; finalize without --retry and cancel refuse. Once the cause is gone, --retry ends
    STABLE."""
    lab.fault("node2", "finalize-fail")
    inventory, env, kept = quick(lab, tmp_path / "short"), confluo_env(tmp_path / "state"), Kept(lab)
    error = "node2: LabFinalizationUpgradeTask: fault injected: finalize-fail"
    with Traffic(lab.lb_url) as traffic:
        for attempt in ("upgrade", "the same upgrade again"):
            failed = confluo("upgrade", "-i", str(inventory), "--yes", env=env)
            assert failed.returncode == 5, (attempt, failed.stdout + failed.stderr)
            assert "UPGRADE_TASKS_FAILED" in failed.stderr and error in failed.stderr
            assert "`confluo finalize --retry`" in failed.stderr
            assert_serving(lab, "UPGRADE_TASKS_FAILED", False, every_node(NEXT), failed={"node2"})
        assert "POST /rest/zdu/retryUpgrade" in failed.stdout, "the second run retried the tasks"

        for command in ("finalize", "cancel"):  # each refuses, showing the errors, naming the retry
            refused = confluo(command, "-i", str(inventory), "--yes", env=env)
            assert refused.returncode == 3, refused.stdout + refused.stderr
            assert error in refused.stderr and "nothing was changed" in refused.stderr
            assert "`confluo finalize --retry`" in refused.stderr
        status = json.loads(confluo("status", "-i", str(inventory), "--json", env=env).stdout)
        assert status["next"] == "confluo finalize -i INVENTORY --retry"

        lab.fault("node2", "clear")
        retried = confluo("finalize", "-i", str(inventory), "--retry", "--yes", env=env)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "the cluster is STABLE" in retried.stdout
    assert_serving(lab, "STABLE", False, every_node(NEXT))
    kept.check()
    assert traffic.ok > 0 and traffic.failed == 0, traffic.errors


def test_cancel_turns_upgrade_mode_off_while_no_node_is_upgraded(lab: LabHandle, tmp_path: Path) -> None:
    start_upgrade_mode(lab)
    inventory, kept = quick(lab, tmp_path / "short"), Kept(lab)
    with Traffic(lab.lb_url) as traffic:
        result = confluo("cancel", "-i", str(inventory), "--yes", env=confluo_env(tmp_path / "state"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cancel: done; the cluster is STABLE" in result.stdout
    assert_serving(lab, "STABLE", False, every_node(OLD))
    kept.check()
    assert traffic.ok > 0 and traffic.failed == 0, traffic.errors


def test_cancel_from_mixed_is_refused_naming_upgrade_and_rollback(lab: LabHandle, tmp_path: Path) -> None:
    """confluo is killed once node1 runs 9.2.14 (MIXED): cancel changes nothing and says how to go on; the
    upgrade it names then completes."""
    inventory, env, kept = quick(lab, tmp_path / "short"), confluo_env(tmp_path / "state"), Kept(lab)
    soaking = quick(lab, tmp_path / "soaking", min_ready_seconds=30)  # node2 waits: the kill comes first

    def kill_after_the_first_node(event: dict[str, Any], process: subprocess.Popen[str]) -> None:
        if event["event"] == "node_done":
            process.kill()

    with Traffic(lab.lb_url) as traffic:
        killed = upgrade_watching(soaking, kill_after_the_first_node, env=env)
        assert killed.exit_code == -signal.SIGKILL
        assert_serving(lab, "MIXED", True, {"node1": NEXT, "node2": OLD, "node3": OLD})
        before = snapshot(lab)
        refused = confluo("cancel", "-i", str(inventory), "--yes", env=env)
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "the cluster is MIXED" in refused.stderr and f"node1 ACTIVE on {NEXT}" in refused.stderr
        assert "`confluo upgrade`" in refused.stderr and "`confluo rollback" in refused.stderr
        assert snapshot(lab) == before

        finished = confluo("upgrade", "-i", str(inventory), "--yes", env=env)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert_serving(lab, "STABLE", False, every_node(NEXT))
    kept.check()
    assert traffic.ok > 0 and traffic.failed == 0, traffic.errors
