"""`confluo rollback` over the fakes: which nodes go back, when upgrade mode goes off, and every refusal."""

from __future__ import annotations

import json

import pytest
from fakes import SOURCE, TARGET, FakeSite
from test_cli_fakes import confluo

from confluo import app
from confluo.errors import ExitCode


def halted_after(site: FakeSite, failing: str) -> None:
    """An upgrade that upgraded the nodes before `failing`, rolled `failing` back and halted: MIXED."""
    site.load.update(node1=0, node2=1, node3=2)
    site.fail_start(failing)
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES and site.api.upgrade_mode
    site.failing.clear()


def test_rollback_all_from_mixed_puts_every_node_back_and_turns_upgrade_mode_off(site: FakeSite) -> None:
    halted_after(site, "node2")
    assert site.versions() == {"node1": TARGET, "node2": SOURCE, "node3": SOURCE}
    before = site.snapshot()
    code, out, _ = confluo(site, "rollback", "--all", "--yes")
    assert code == ExitCode.SUCCESS, out
    assert set(site.versions().values()) == {SOURCE} and not site.api.upgrade_mode
    assert site.api.calls[-1] == "cancel" and "is STABLE" in out
    assert all(site.host(n).in_use().endswith(SOURCE) for n in ("node1", "node2", "node3"))
    assert site.snapshot() == before  # homes and the old installations untouched
    assert (site.host("node1").base / TARGET).is_dir()  # the new installation is kept for the next try


def test_rollback_dry_run_shows_the_steps_and_changes_nothing(site: FakeSite) -> None:
    halted_after(site, "node2")
    calls = list(site.api.calls)
    code, out, _ = confluo(site, "rollback", "--dry-run", "--json")
    plan = json.loads(out)
    assert code == 0 and (plan["goal"], plan["source_version"], plan["target_version"]) == ("rollback", TARGET, SOURCE)
    assert [(s["node"], s["step"]) for s in plan["steps"]][:3] == [("node1", "stop"), ("node1", "repoint service"),
                                                                   ("node1", "start")]  # fmt: skip
    assert plan["steps"][-1]["step"] == "POST /rest/zdu/cancel"
    assert site.api.calls == calls and site.versions()["node1"] == TARGET
    code, out, _ = confluo(site, "rollback", "--dry-run")
    assert code == 0 and "rolling back: node1" in out and "finalize" in out


def test_rollback_of_one_node_keeps_upgrade_mode_on_while_another_runs_the_new_version(site: FakeSite) -> None:
    halted_after(site, "node3")
    code, out, _ = confluo(site, "rollback", "--node", "node1", "--yes")
    assert code == 0 and site.versions() == {"node1": SOURCE, "node2": TARGET, "node3": SOURCE}
    assert site.api.upgrade_mode and "upgrade mode stays on" in out and "STABLE" not in out
    code, _, _ = confluo(site, "rollback", "--yes")
    assert code == 0 and set(site.versions().values()) == {SOURCE} and not site.api.upgrade_mode


def test_rollback_starts_an_old_version_node_that_was_left_stopped(site: FakeSite) -> None:
    halted_after(site, "node2")
    site.host("node3").kill()  # e.g. a run killed between its stop and its start
    code, _, _ = confluo(site, "rollback", "--yes")
    assert code == 0 and site.versions() == {"node1": SOURCE, "node2": SOURCE, "node3": SOURCE}


def test_rollback_refuses_when_no_upgrade_is_in_progress_and_says_why(site: FakeSite) -> None:
    code, _, err = confluo(site, "rollback", "--yes")
    assert code == ExitCode.REFUSED and "no upgrade is in progress" in err and "restoring the database" in err
    assert site.api.calls == []


def test_rollback_refuses_once_the_upgrade_tasks_failed(site: FakeSite) -> None:
    site.finalize_fails = True
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES
    code, _, err = confluo(site, "rollback", "--yes")
    assert code == ExitCode.REFUSED and "UPGRADE_TASKS_FAILED" in err and "finalize --retry" in err
    assert set(site.versions().values()) == {TARGET}


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("--node", "node9"), ExitCode.REFUSED, "no such node"),
        (("--node", "node2"), ExitCode.REFUSED, "nothing to roll back on it"),
        (("--node", "node1", "--all"), ExitCode.USAGE, "exclude each other"),
    ],
)
def test_rollback_refuses_a_node_it_cannot_roll_back(
    site: FakeSite, args: tuple[str, ...], code: int, says: str
) -> None:
    halted_after(site, "node2")
    calls = list(site.api.calls)
    got, _, err = confluo(site, "rollback", *args, "--yes")
    assert got == code and says in err
    assert site.api.calls == calls and site.versions()["node1"] == TARGET


def test_rollback_without_yes_and_without_a_terminal_changes_nothing(site: FakeSite) -> None:
    halted_after(site, "node2")
    code, _, err = confluo(site, "rollback")
    assert code == ExitCode.NEEDS_CONFIRMATION and "--yes" in err and site.versions()["node1"] == TARGET


def test_an_interrupted_rollback_finishes_putting_its_node_back_and_says_so(site: FakeSite) -> None:
    halted_after(site, "node3")  # node1 and node2 run the new version
    session = app.open_session(site.inventory, ports=site.ports())
    plan = app.rollback_plan(session, node=None)
    seen: list[str] = []

    def interrupt(event: object) -> None:
        seen.append(getattr(event, "message", ""))
        if (getattr(event, "kind", ""), getattr(event, "phase", "")) == ("phase_done", "repoint service"):
            raise KeyboardInterrupt

    session.events.subscribe(interrupt)
    with pytest.raises(KeyboardInterrupt):
        app.run_plan(session, plan)
    first = plan.order[0]
    assert site.versions()[first] == SOURCE and site.host(first).in_use().endswith(SOURCE)
    assert f"{first}: ACTIVE on {SOURCE} again" in seen and site.api.upgrade_mode
    code, _, _ = confluo(site, "rollback", "--yes")  # the same command again finishes the rest
    assert code == 0 and set(site.versions().values()) == {SOURCE} and not site.api.upgrade_mode
