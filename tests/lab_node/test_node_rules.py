"""Pure parts of the node program: version rules, the cluster state calculation, config readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from confluo.lab import provision
from confluo.lab.node.cluster_state import calculate_cluster_state
from confluo.lab.node.install import read_confluence_home, read_connector, read_node_name
from confluo.lab.node.states import (
    ACTIVE,
    ERROR,
    MIXED,
    OFFLINE,
    READY_TO_RUN_UPGRADE_TASKS,
    READY_TO_UPGRADE,
    RUNNING_FINALIZE,
    RUNNING_UPGRADE_TASKS,
    STABLE,
    STARTING,
    TASKS_FAILED,
    UPGRADE_TASKS_FAILED,
)
from confluo.lab.node.versions import build_number_for, rolling_step_allowed, version_refusal


@pytest.mark.parametrize(
    ("original", "target", "allowed"),
    [
        ("9.2.13", "9.2.14", True),  # bug-fix
        ("7.9.0", "7.9.4", True),  # bug-fix from 7.9
        ("7.8.1", "7.8.3", False),  # before ZDU existed
        ("7.13.0", "7.14.0", False),  # feature step needs 7.14
        ("7.14.2", "7.15.0", True),  # the next feature release
        ("7.14.2", "7.17.0", False),  # more than one feature release
        ("9.2.13", "10.0.0", False),  # platform release
        ("9.2.13", "9.2.12", False),  # downgrade
        ("9.2.13", "9.2.13", False),  # not an upgrade
        ("9.2.13", "garbage", False),
    ],
)
def test_rolling_step_rules(original: str, target: str, allowed: bool) -> None:
    assert rolling_step_allowed(original, target) is allowed


def test_version_refusal_depends_on_upgrade_mode() -> None:
    assert version_refusal("9.2.13", cluster_version="9.2.13", upgrade_mode=False, original_version=None) is None
    off = version_refusal("9.2.14", cluster_version="9.2.13", upgrade_mode=False, original_version=None)
    assert off is not None and "upgrade mode is off" in off
    assert version_refusal("9.2.14", cluster_version="9.2.13", upgrade_mode=True, original_version="9.2.13") is None
    assert version_refusal("10.0.0", cluster_version="9.2.13", upgrade_mode=True, original_version="9.2.13")


def test_build_numbers_are_deterministic_and_grow_with_the_version() -> None:
    versions = ["7.9.0", "7.9.10", "7.14.0", "8.5.4", "9.2.13", "9.2.14", "9.3.0", "10.0.0"]
    numbers = [build_number_for(v) for v in versions]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert build_number_for("9.2.13") == build_number_for("9.2.13")


@pytest.mark.parametrize(
    ("nodes", "mode", "pending", "expected"),
    [
        ([(ACTIVE, "1.0"), (ACTIVE, "1.0")], False, False, STABLE),
        ([(ACTIVE, "1.0"), (ERROR, "1.1")], False, False, STABLE),  # ERROR only matters in upgrade mode
        ([(ACTIVE, "1.1")], False, True, UPGRADE_TASKS_FAILED),
        ([(TASKS_FAILED, "1.1")], False, False, UPGRADE_TASKS_FAILED),
        ([(RUNNING_FINALIZE, "1.1"), (ACTIVE, "1.1")], False, True, RUNNING_UPGRADE_TASKS),
        ([(ACTIVE, "1.0"), (ACTIVE, "1.0")], True, False, READY_TO_UPGRADE),
        ([(ACTIVE, "1.0"), (OFFLINE, "1.0")], True, False, READY_TO_UPGRADE),
        ([(ACTIVE, "1.0"), (ERROR, "1.0")], True, False, MIXED),
        ([(ACTIVE, "1.0"), (STARTING, "1.1")], True, False, MIXED),
        ([(OFFLINE, "1.0"), (ACTIVE, "1.1")], True, False, READY_TO_RUN_UPGRADE_TASKS),  # OFFLINE ignored
        ([(ACTIVE, "1.1"), (ACTIVE, "1.1")], True, False, READY_TO_RUN_UPGRADE_TASKS),
    ],
)
def test_calculate_cluster_state(nodes: list[tuple[str, str]], mode: bool, pending: bool, expected: str) -> None:
    state = calculate_cluster_state(nodes, upgrade_mode=mode, original_version="1.0", has_finalization_tasks=pending)
    assert state == expected


def test_confluence_home_is_the_last_uncommented_line_and_allows_spaces(tmp_path: Path) -> None:
    props = tmp_path / "confluence-init.properties"
    props.write_text("# confluence.home=/commented\nconfluence.home=/first\n  confluence.home = /var/data/c \n")
    assert read_confluence_home(props) == Path("/var/data/c")
    props.write_text("# confluence.home=/only/a/comment\n")
    assert read_confluence_home(props) is None


def test_node_name_comes_from_live_setenv_lines_only(tmp_path: Path) -> None:
    setenv = tmp_path / "setenv.sh"
    setenv.write_text('#CATALINA_OPTS="-Dconfluence.cluster.node.name=example"\nCATALINA_OPTS="-Xmx1g"\n')
    assert read_node_name(setenv) is None
    setenv.write_text(provision.set_node_name(setenv.read_text(), "node7"))
    assert read_node_name(setenv) == "node7"
    setenv.write_text(provision.set_node_name(setenv.read_text(), "node8"))  # renaming, not adding
    assert read_node_name(setenv) == "node8" and setenv.read_text().count("node.name=node8") == 1


def test_connector_address_skips_commented_connectors(tmp_path: Path) -> None:
    server_xml = tmp_path / "server.xml"
    server_xml.write_text(
        '<Server><!-- <Connector port="1" address="9.9.9.9"/> -->'
        '<Service><Connector port="8090" protocol="HTTP/1.1"/></Service></Server>'
    )
    assert read_connector(server_xml) == (None, 8090)
    server_xml.write_text(provision.set_connector_address(server_xml.read_text(), "127.0.0.11"))
    assert read_connector(server_xml) == ("127.0.0.11", 8090)
    assert 'address="9.9.9.9"' in server_xml.read_text()  # the comment is untouched
    server_xml.write_text(provision.set_connector_address(server_xml.read_text(), "127.0.0.12"))
    assert read_connector(server_xml) == ("127.0.0.12", 8090)
