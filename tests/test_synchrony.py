"""Standalone Synchrony over the fakes: hosts as folders reached through the real local shell (real jars, real
start/stop scripts and processes), the heartbeat as the fake cluster API sees those processes, an instant clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import SOURCE, TARGET, FakeSite, synchrony_jar
from test_cli_fakes import confluo

from confluo.errors import ExitCode, StepFailed
from confluo.events import EventBus
from confluo.execute.synchrony import upgrade_synchrony
from confluo.inventory import check_inventory
from confluo.plan.model import NodeWork
from confluo.secrets import Masker
from confluo.steps.base import Step, StepKind

OLD, NEW = synchrony_jar(SOURCE), synchrony_jar(TARGET)
BACKUP = f"synchrony-standalone.jar.before-{TARGET}"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FakeSite]:
    site = FakeSite.build(tmp_path, synchrony=2)
    yield site
    site.stop_all()


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def started(found: list[dict[str, Any]]) -> list[str]:
    return [e["node"] for e in found if e["event"] == "node_started"]


def test_the_upgrade_takes_each_synchrony_node_onto_the_first_upgraded_nodes_jar(site: FakeSite) -> None:
    site.load.update(node1=3, node2=0, node3=5)
    pids = {n.name: n.pid() for n in site.synchrony}
    code, out, _ = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, out
    found = events(out)
    # node2 goes first (least busy); the Synchrony nodes follow it, one at a time, before node1.
    assert started(found) == ["node2", "synchrony1", "synchrony2", "node1", "node3"]
    for node in site.synchrony:
        assert node.jar.read_bytes() == NEW and (node.home / BACKUP).read_bytes() == OLD
        assert node.pid() is not None and node.pid() != pids[node.name]
        assert not list(node.home.glob("*.confluo-*"))  # nothing staged or half-written is left
    copies = [e for e in found if e.get("step") == "synchrony_copy" and e["event"] == "phase_done"]
    assert [e["jar_bytes"] for e in copies] == [len(NEW), len(NEW)]


def test_a_synchrony_node_already_on_the_new_jar_is_left_serving(site: FakeSite) -> None:
    first = site.synchrony[0]
    first.stop()
    first.jar.write_bytes(NEW)
    first.start()
    pid = first.pid()
    code, out, _ = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, out
    skipped = {e["step"] for e in events(out) if e.get("node") == "synchrony1" and e["event"] == "phase_skipped"}
    assert skipped == {"synchrony_copy", "synchrony_stop", "synchrony_swap", "synchrony_start"}
    assert first.pid() == pid and not (first.home / BACKUP).exists()
    assert site.synchrony[1].jar.read_bytes() == NEW


def test_a_stale_staged_jar_beside_the_new_one_is_removed_not_swapped_in(site: FakeSite) -> None:
    first = site.synchrony[0]
    first.stop()
    first.jar.write_bytes(NEW)
    (first.home / BACKUP).write_bytes(OLD)
    (first.home / "synchrony-standalone.jar.confluo-new").write_bytes(NEW)
    first.start()
    pid = first.pid()
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.SUCCESS
    assert (first.home / BACKUP).read_bytes() == OLD and first.pid() == pid
    assert not (first.home / "synchrony-standalone.jar.confluo-new").exists()


def test_a_synchrony_node_that_does_not_come_back_gets_its_old_jar_and_the_run_halts_naming_it(
    site: FakeSite,
) -> None:
    site.synchrony_failing.add("synchrony2")
    code, out, err = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.FAILED_AFTER_CHANGES
    assert "synchrony2: step 'start Synchrony' failed" in err
    assert "restored: Synchrony on synchrony2 serves its old jar again" in err
    failed, ok = site.synchrony[1], site.synchrony[0]
    assert failed.jar.read_bytes() == OLD and failed.pid() is not None and (failed.home / BACKUP).read_bytes() == OLD
    assert ok.jar.read_bytes() == NEW  # the node before it keeps the new jar
    assert sorted(site.versions().values()) == [SOURCE, SOURCE, TARGET]  # the run halted after the first node
    assert [e["node"] for e in events(out) if e["event"] == "node_rolled_back"] == ["synchrony2"]
    # Fixed, the same upgrade continues: synchrony1 is left alone, synchrony2 gets the jar, the rest follow.
    site.synchrony_failing.clear()
    code, out, _ = confluo(site, "upgrade", "--yes", "--json")
    assert code == ExitCode.SUCCESS, out
    assert failed.jar.read_bytes() == NEW and set(site.versions().values()) == {TARGET}
    skipped = [e["step"] for e in events(out) if e.get("node") == "synchrony1" and e["event"] == "phase_skipped"]
    assert len(skipped) == 4


def test_with_on_failure_halt_the_failed_synchrony_node_is_left_as_it_is(tmp_path: Path) -> None:
    site = FakeSite.build(tmp_path, synchrony=1, on_failure="halt")
    try:
        site.synchrony_failing.add("synchrony1")
        code, _, err = confluo(site, "upgrade", "--yes")
        assert code == ExitCode.FAILED_AFTER_CHANGES and "synchrony1" in err and "restored" not in err
        assert site.synchrony[0].jar.read_bytes() == NEW
    finally:
        site.stop_all()


def test_the_plan_shows_the_synchrony_steps_after_the_first_node_and_their_way_back(site: FakeSite) -> None:
    code, out, _ = confluo(site, "plan")
    assert code == 0, out
    first = out.index("== rolling: node1")
    synchrony = out.index("== synchrony: synchrony1 (jar from node1)")
    assert first < synchrony < out.index("== synchrony: synchrony2") < out.index("== rolling: node2")
    assert f"ln -f -- {site.synchrony[0].jar} {site.synchrony[0].home / BACKUP}" in out
    assert "synchrony1 (Synchrony): jar sha256" in out and "heartbeat OK" in out
    assert "-- synchrony2: stop Synchrony" in out and "restore the old synchrony-standalone.jar" in out
    code, out, _ = confluo(site, "plan", "--json")
    plan = json.loads(out)
    assert [s["name"] for s in plan["synchrony"]] == ["synchrony1", "synchrony2"]
    assert [s["step"] for s in plan["rollback"]["synchrony1"]][1] == "restore the old synchrony-standalone.jar"


def test_a_broken_synchrony_node_is_refused_where_it_is_before_any_change(site: FakeSite) -> None:
    site.synchrony[0].jar.unlink()
    (site.synchrony[1].home / "stop-synchrony.sh").chmod(0o644)
    code, _, err = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.REFUSED
    assert "synchrony.nodes[0] (synchrony1): there is no synchrony-standalone.jar in the Synchrony home" in err
    assert f"synchrony.nodes[1] (synchrony2): {site.synchrony[1].home}/stop-synchrony.sh is missing or not" in err
    assert set(site.versions().values()) == {SOURCE} and site.api.calls == []


def test_a_synchrony_node_found_stopped_is_started_on_the_new_jar_and_the_plan_says_so(site: FakeSite) -> None:
    site.synchrony[1].kill()
    (site.synchrony[1].home / "synchrony.pid").write_text("999999\n")  # a pid file its process outlived
    code, out, _ = confluo(site, "plan")
    assert "note: Synchrony synchrony2's heartbeat answers unreachable" in out
    code, _, _ = confluo(site, "upgrade", "--yes")
    assert code == ExitCode.SUCCESS
    assert site.synchrony[1].jar.read_bytes() == NEW and site.synchrony[1].pid() is not None


def write(tmp_path: Path, synchrony: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "cluster: {name: c, api_url: http://lb.example, credentials: {username: a, password_env: HOME}}\n"
        "target: {version: '9.2.14', archive: /srv/a.tar.gz}\n"
        "database: postgresql\n"
        "defaults: {home: /var/h, install: {base: /opt/c}, ssh: {user: deploy, port: 2222}, run_as: confluence}\n"
        "nodes:\n"
        "  - {name: node1, host: 10.0.0.1, url: 'http://10.0.0.1:8090'}\n"
        "  - {name: node2, host: 10.0.0.2, url: 'http://10.0.0.2:8090'}\n" + synchrony
    )
    return path


def problems(path: Path) -> list[str]:
    return [problem.split(": ", 1)[1] for problem in check_inventory(path) if "does not exist" not in problem]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "synchrony: {nodes: [{name: s1, host: 10.0.0.21, heartbeat_url: 'http://10.0.0.21:8091/h'}]}",
            "line 8, column 21: synchrony.nodes[0].home: missing; the Synchrony home, which holds "
            "synchrony-standalone.jar (set it on the node or under synchrony)",
        ),
        (
            "synchrony: {home: /opt/s, nodes: [{name: node1, host: 10.0.0.21, heartbeat_url: 'http://h:8091/h'}]}",
            "line 8, column 42: synchrony.nodes[0].name: 'node1' is already used by nodes[0]",
        ),
        (
            "synchrony: {home: /opt/s, nodes: [{name: s1, heartbeat_url: 'http://h:8091/h'}]}",
            "line 8, column 35: synchrony.nodes[0].host: missing; where SSH connects (or give ssh.alias)",
        ),
        (
            "synchrony: {home: /opt/s, nodes: [{name: s1, host: h, heartbeat_url: 'ftp://h/'}]}",
            "line 8, column 70: synchrony.nodes[0].heartbeat_url: expected an http:// or https:// URL, got 'ftp://h/'",
        ),
        (
            "synchrony: {home: /opt/s, nodes: [{name: s1, host: h, heartbeat_url: 'http://h:1/', url: x}]}",
            "line 8, column 85: synchrony.nodes[0].url: unknown key",
        ),
        ("synchrony: {home: /opt/s, nodes: []}", "line 8, column 34: synchrony.nodes: list at least one Synchrony"),
        (
            "synchrony:\n  home: /opt/s\n  nodes:\n    - {name: s1, host: h, heartbeat_url: 'http://h:1/'}\n"
            "    - {name: s2, host: h, heartbeat_url: 'http://h:2/'}\n",
            "line 12, column 24: synchrony.nodes[1].host: h port 2222 is already used by synchrony.nodes[0]",
        ),
    ],
)
def test_the_synchrony_section_is_checked_where_it_is_written(tmp_path: Path, section: str, expected: str) -> None:
    found = problems(write(tmp_path, section))
    assert any(problem.startswith(expected) for problem in found), found


def test_synchrony_nodes_take_their_reach_from_defaults_but_not_confluences_user(tmp_path: Path) -> None:
    from confluo.inventory import load_inventory

    path = write(
        tmp_path,
        "synchrony:\n  home: /opt/s\n  timeouts: {stop_seconds: 20}\n  nodes:\n"
        "    - {name: s1, host: 10.0.0.21, heartbeat_url: 'http://10.0.0.21:8091/synchrony/heartbeat/',"
        " run_as: synchrony, timeouts: {start_seconds: 5}, ssh: {port: 22}}\n",
    )
    (node,) = load_inventory(path).synchrony
    assert (node.ssh.user, node.ssh.port, node.sudo, node.run_as) == ("deploy", 22, True, "synchrony")
    assert (node.timeouts.stop_seconds, node.timeouts.start_seconds) == (20.0, 5.0)
    assert node.heartbeat_url == "http://10.0.0.21:8091/synchrony/heartbeat"
    assert str(node.jar) == "/opt/s/synchrony-standalone.jar"


def test_the_synchrony_section_the_sample_documents_is_valid(tmp_path: Path) -> None:
    import re

    import jsonschema
    import yaml

    from confluo.inventory import json_schema

    sample = Path(__file__).parent.parent / "inventory.sample.yaml"
    (block,) = re.findall(r"^# synchrony:\n((?:#   .*\n)+)", sample.read_text(), re.MULTILINE)
    section = yaml.safe_load("\n".join(line[2:] for line in ["# synchrony:", *block.splitlines()]))
    document = {**yaml.safe_load(sample.read_text()), **section}
    jsonschema.validate(document, json_schema())
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(document))
    from confluo.inventory import load_inventory

    loaded = load_inventory(tmp_path / "inventory.yaml").synchrony
    assert [(n.name, n.run_as, n.ssh.user) for n in loaded] == [
        ("synchrony1", "synchrony", "deploy"),
        ("synchrony2", "synchrony", "deploy"),
    ]


class _Copy(Step):
    kind = StepKind.SYNCHRONY_COPY


class _Stop(Step):
    kind = StepKind.SYNCHRONY_STOP


class _Swap(Step):
    kind = StepKind.SYNCHRONY_SWAP


class _Start(Step):
    kind = StepKind.SYNCHRONY_START


class _Restore(Step):
    kind = StepKind.SYNCHRONY_RESTORE


@pytest.mark.parametrize(
    ("fails_at", "error", "restore", "restored"),
    [
        (_Copy, KeyboardInterrupt, True, False),  # nothing was stopped: nothing to put back
        (_Swap, KeyboardInterrupt, True, True),  # the node may be down: it is never left so
        (_Swap, KeyboardInterrupt, False, True),  # on_failure halt does not leave an interrupted node down either
        (_Copy, "failed", True, False),
        (_Start, "failed", True, True),
        (_Start, "failed", False, False),
    ],
)
def test_a_synchrony_node_is_put_back_once_its_stop_began(
    fails_at: type[Step], error: object, restore: bool, restored: bool
) -> None:
    done: list[str] = []

    def do(step: Step, *, phase: str) -> bool:
        done.append(type(step).__name__)
        if isinstance(step, fails_at) and not phase.startswith("synchrony rollback"):
            if error is KeyboardInterrupt:
                raise KeyboardInterrupt
            raise StepFailed(node="s1", step=step.name, command=None, exit_status=None, output_tail="", hint="h")
        return True

    work = NodeWork("synchrony1", (_Copy(), _Stop(), _Swap(), _Start()), (_Stop(), _Restore(), _Start()))
    with pytest.raises((KeyboardInterrupt, StepFailed)):
        upgrade_synchrony([work], do, EventBus(Masker()), source="node1", restore=restore, upgraded=["node1"],
                          target=TARGET)  # fmt: skip
    assert ("_Restore" in done) is restored
