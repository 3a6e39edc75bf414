"""`confluo restart` over the fakes: every node stopped and started once, least busy first, each ACTIVE again on
the version it ran; refusals before any change."""

from __future__ import annotations

import json
from pathlib import Path

from fakes import SOURCE, FakeSite
from test_cli_fakes import confluo

from confluo.errors import ExitCode


def pids(site: FakeSite) -> dict[str, str]:
    return {h.name: (Path(h.base / SOURCE) / "work/catalina.pid").read_text() for h in site.hosts}


def test_restart_restarts_every_node_once_least_busy_first(site: FakeSite) -> None:
    site.load.update(node1=5, node2=0, node3=2)
    before, files = pids(site), site.snapshot()
    code, out, _ = confluo(site, "restart", "--yes", "--json")
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["node"] for e in events if e["event"] == "node_started"] == ["node2", "node3", "node1"]
    assert all(pids(site)[name] != before[name] for name in before)
    assert set(site.versions().values()) == {SOURCE} and site.api.calls == []
    assert "restarted, each ACTIVE again on" in events[-1]["message"] and site.snapshot() == files


def test_restart_of_one_node_touches_no_other(site: FakeSite) -> None:
    before = pids(site)
    code, _, _ = confluo(site, "restart", "--node", "node2", "--yes")
    after = pids(site)
    assert code == 0 and after["node2"] != before["node2"]
    assert (after["node1"], after["node3"]) == (before["node1"], before["node3"])


def test_restart_starts_a_node_found_stopped_without_stopping_it_first(site: FakeSite) -> None:
    site.host("node3").kill()
    code, out, _ = confluo(site, "restart", "--yes", "--json")
    assert code == 0 and set(site.versions().values()) == {SOURCE}
    events = [json.loads(line) for line in out.splitlines()]
    assert next(e["node"] for e in events if e["event"] == "node_started") == "node3"  # it serves nobody: first
    assert {"event": "phase_skipped", "node": "node3", "step": "stop"}.items() <= next(
        e for e in events if e.get("node") == "node3" and e.get("step") == "stop"
    ).items()


def test_restart_dry_run_shows_each_nodes_stop_and_start_and_changes_nothing(site: FakeSite) -> None:
    before = pids(site)
    code, out, _ = confluo(site, "restart", "--dry-run")
    assert code == 0 and "restarting: node1" in out and "stop-confluence.sh" in out and "start-confluence.sh" in out
    assert pids(site) == before


def test_restart_refuses_during_an_upgrade(site: FakeSite) -> None:
    site.api.start_upgrade()
    before = pids(site)
    code, _, err = confluo(site, "restart", "--yes")
    assert code == ExitCode.REFUSED and "an upgrade is in progress" in err and "confluo rollback" in err
    assert pids(site) == before


def test_restart_refuses_an_unknown_node(site: FakeSite) -> None:
    code, _, err = confluo(site, "restart", "--node", "node7", "--yes")
    assert code == ExitCode.REFUSED and "no such node" in err


def test_a_node_that_does_not_come_back_halts_the_restart_before_the_next(site: FakeSite) -> None:
    site.load.update(node1=0, node2=1, node3=2)
    site.failing.add("node1")
    site.fails = lambda name, version: name in site.failing  # type: ignore[method-assign]
    before = pids(site)
    code, _, err = confluo(site, "restart", "--yes")
    assert code == ExitCode.FAILED_AFTER_CHANGES and "node1" in err and "ERROR" in err
    after = pids(site)
    assert (after["node2"], after["node3"]) == (before["node2"], before["node3"])  # never touched
