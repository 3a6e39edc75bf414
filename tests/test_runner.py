"""The runner over fakes (tests/fakes.py): real bash and files on a scratch tree, the ZDU state machine, a fake
clock. Each test runs a whole upgrade in well under a second, without root, sshd or network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import SOURCE, TARGET, FakeSite

from confluo import app
from confluo.api.base import ClusterState
from confluo.errors import ConfluoError, ExitCode


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FakeSite]:
    site = FakeSite.build(tmp_path)
    yield site
    site.stop_all()


def upgrade(site: FakeSite) -> app.Session:
    session = app.open_session(site.inventory, ports=site.ports())
    plan, _ = app.make_plan(session)
    app.run_plan(session, plan)
    return session


def test_every_node_ends_active_on_the_target_with_old_installations_and_homes_kept(site: FakeSite) -> None:
    before = site.snapshot()
    upgrade(site)
    assert site.versions() == {"node1": TARGET, "node2": TARGET, "node3": TARGET}
    assert all(host.in_use() == str(host.base / TARGET) for host in site.hosts)
    assert site.api.cluster().state is ClusterState.STABLE and not site.api.upgrade_mode
    assert site.snapshot() == before  # the homes and the old installations, byte for byte
    home = (site.hosts[0].base / TARGET / "confluence/WEB-INF/classes/confluence-init.properties").read_text()
    assert f"confluence.home={site.hosts[0].home}" in home


def test_the_least_busy_node_goes_first_as_the_cluster_reports_it_when_its_turn_comes(site: FakeSite) -> None:
    site.load.update(node1=5, node2=0, node3=2)
    session = app.open_session(site.inventory, ports=site.ports())
    order: list[str] = []
    session.events.subscribe(lambda e: order.append(e.node) if e.kind == "node_started" and e.node else None)
    plan, _ = app.make_plan(session)
    app.run_plan(session, plan)
    assert order == ["node2", "node3", "node1"]


def test_a_node_that_fails_to_start_halts_the_run_before_the_next_node_is_touched(site: FakeSite) -> None:
    site.load.update(node1=0, node2=1, node3=2)
    site.fail_start("node1")
    with pytest.raises(ConfluoError) as failure:
        upgrade(site)
    assert failure.value.exit_code is ExitCode.FAILED_AFTER_CHANGES
    assert "node1" in failure.value.message and "ERROR" in failure.value.message
    assert site.versions()["node2"] == SOURCE and site.versions()["node3"] == SOURCE
    assert site.host("node2").in_use().endswith(SOURCE) and site.host("node3").in_use().endswith(SOURCE)


def test_a_second_run_after_success_has_nothing_to_do(site: FakeSite) -> None:
    upgrade(site)
    session = app.open_session(site.inventory, ports=site.ports())
    plan, _ = app.make_plan(session)
    assert plan.nothing_to_do


def test_a_node_that_crashed_before_its_turn_is_upgraded_first(site: FakeSite) -> None:
    site.load.update(node1=0, node2=1, node3=2)
    site.host("node3").kill()
    session = app.open_session(site.inventory, ports=site.ports())
    order: list[str] = []
    session.events.subscribe(lambda e: order.append(e.node) if e.kind == "node_started" and e.node else None)
    plan, _ = app.make_plan(session)
    app.run_plan(session, plan)
    assert order[0] == "node3" and site.versions() == dict.fromkeys(("node1", "node2", "node3"), TARGET)


def test_the_capacity_guard_waits_out_its_deadline_without_real_waiting(site: FakeSite) -> None:
    """node2 is down and stays down, after node2 the next node would be the second one out: confluo halts."""
    site.load.update(node1=0, node2=1, node3=2)
    site.write_inventory(defaults={"transport": "local", "sudo": False, "timeouts": {"start_seconds": 30}})
    session = app.open_session(site.inventory, ports=site.ports())
    plan, _ = app.make_plan(session)
    session.events.subscribe(
        lambda e: site.host("node1").kill() if e.kind == "node_done" and e.node == "node1" else None
    )
    with pytest.raises(ConfluoError, match="would take a second node out of service"):
        app.run_plan(session, plan)
    assert site.clock.slept >= 30  # the start deadline, passed on the fake clock
    assert site.versions()["node2"] == SOURCE and site.versions()["node3"] == SOURCE


def test_a_failure_before_any_change_says_nothing_was_changed(site: FakeSite) -> None:
    session = app.open_session(site.inventory, ports=site.ports())
    plan, _ = app.make_plan(session)
    site.api.unreachable = True  # the API goes away between the plan and the run
    with pytest.raises(ConfluoError) as failure:
        app.run_plan(session, plan)
    # Pre-staging wrote files, so changes had begun by the time the API was needed.
    assert failure.value.exit_code is ExitCode.FAILED_AFTER_CHANGES
