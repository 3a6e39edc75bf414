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


def test_a_first_node_that_fails_to_start_is_rolled_back_and_the_cluster_is_stable_on_the_old_version(
    site: FakeSite,
) -> None:
    site.load.update(node1=0, node2=1, node3=2)
    site.fail_start("node1")
    before = site.snapshot()
    with pytest.raises(ConfluoError) as failure:
        upgrade(site)
    assert failure.value.exit_code is ExitCode.ROLLED_BACK
    assert "node1" in failure.value.message and "ERROR" in failure.value.message
    assert "node1 is ACTIVE on 9.2.13 again; upgrade mode is off" in failure.value.message
    assert site.versions() == dict.fromkeys(("node1", "node2", "node3"), SOURCE)
    assert all(host.in_use().endswith(SOURCE) for host in site.hosts)
    assert site.api.cluster().state is ClusterState.STABLE and not site.api.upgrade_mode
    assert site.snapshot() == before
    assert (site.host("node1").base / TARGET).is_dir()  # the new installation is kept for a look


def test_a_later_node_that_fails_is_rolled_back_and_the_run_halts_with_the_cluster_serving(site: FakeSite) -> None:
    site.load.update(node1=0, node2=1, node3=2)
    site.fail_start("node2")
    with pytest.raises(ConfluoError) as failure:
        upgrade(site)
    assert failure.value.exit_code is ExitCode.FAILED_AFTER_CHANGES
    assert "node1 run 9.2.14, so upgrade mode stays on" in failure.value.message
    assert site.versions() == {"node1": TARGET, "node2": SOURCE, "node3": SOURCE}
    assert site.api.upgrade_mode and site.api.cluster().state is ClusterState.MIXED


def test_with_on_failure_halt_the_failed_node_is_left_as_it_is(site: FakeSite) -> None:
    site.load.update(node1=0, node2=1, node3=2)
    site.fail_start("node1")
    site.write_inventory(on_failure="halt")
    session = app.open_session(site.inventory, ports=site.ports())
    plan, _ = app.make_plan(session)
    with pytest.raises(ConfluoError) as failure:
        app.run_plan(session, plan)
    assert failure.value.exit_code is ExitCode.FAILED_AFTER_CHANGES
    assert site.host("node1").in_use().endswith(TARGET) and site.api.upgrade_mode


def test_an_interrupt_during_a_nodes_upgrade_brings_the_node_back_before_it_goes_on(site: FakeSite) -> None:
    site.load.update(node1=0, node2=1, node3=2)
    session = app.open_session(site.inventory, ports=site.ports())
    plan, _ = app.make_plan(session)

    def interrupt(event: object) -> None:
        if getattr(event, "kind", "") == "phase_done" and getattr(event, "phase", "") == "repoint service":
            raise KeyboardInterrupt

    session.events.subscribe(interrupt)
    with pytest.raises(KeyboardInterrupt):
        app.run_plan(session, plan)
    assert site.versions() == dict.fromkeys(("node1", "node2", "node3"), SOURCE)
    assert site.host("node1").in_use().endswith(SOURCE) and not site.api.upgrade_mode


def test_a_run_that_stopped_mid_roll_is_resumed_by_the_same_command(site: FakeSite) -> None:
    """The first run dies after node1 (as if killed): upgrade mode stays on, node2 is left stopped. The same
    upgrade again continues: node1 is not touched again, node2 is started on the new version."""
    site.load.update(node1=0, node2=1, node3=2)
    session = app.open_session(site.inventory, ports=site.ports())
    plan, _ = app.make_plan(session)

    class Killed(BaseException):
        pass

    def die(event: object) -> None:
        if (getattr(event, "kind", ""), getattr(event, "node", ""), getattr(event, "phase", "")) == (
            "phase_done",
            "node2",
            "stop",
        ):
            raise Killed

    session.events.subscribe(die)
    with pytest.raises(Killed):
        app.run_plan(session, plan)
    assert site.versions() == {"node1": TARGET, "node2": None, "node3": SOURCE} and site.api.upgrade_mode

    node1_pid = (Path(site.host("node1").base / TARGET) / "work/catalina.pid").read_text()
    session = app.open_session(site.inventory, ports=site.ports())
    plan, _ = app.make_plan(session)
    assert plan.source_version == SOURCE and [w.node for w in plan.rolling if w.upgraded] == ["node1"]
    app.run_plan(session, plan)
    assert site.versions() == dict.fromkeys(("node1", "node2", "node3"), TARGET)
    assert (Path(site.host("node1").base / TARGET) / "work/catalina.pid").read_text() == node1_pid
    assert site.api.cluster().state is ClusterState.STABLE


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
