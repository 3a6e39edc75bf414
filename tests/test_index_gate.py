"""After each start the node's search index must catch up with the other nodes' (their journal/main_index files)
before it goes back in the pool; past timeouts.index_seconds the run goes on and says how far behind. Fakes: local
hosts whose journal files the test writes, the fake clock."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes import TARGET, FakeSite

from confluo.cli.env import Env
from confluo.cli.main import cli
from confluo.errors import ExitCode


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FakeSite]:
    site = FakeSite.build(tmp_path, defaults={"transport": "local", "sudo": False, "timeouts": {"index_seconds": 5}})
    yield site
    site.stop_all()


def indexed(site: FakeSite, **positions: int) -> None:
    for host in site.hosts:
        if host.name in positions:
            (host.home / "journal").mkdir(exist_ok=True)
            (host.home / "journal" / "main_index").write_text(f"{positions[host.name]}\n")


def upgrade(site: FakeSite) -> tuple[int, list[dict[str, object]]]:
    events = io.StringIO()
    env = Env(stdin_isatty=False, stdout_isatty=False, stdout=events, ports=site.ports())
    result = CliRunner().invoke(cli, ["upgrade", "--yes", "--json", "-i", str(site.inventory)], obj=env)
    lines = (events.getvalue() + result.stdout).splitlines()
    return result.exit_code, [json.loads(line) for line in lines if line.startswith("{")]


def test_a_node_whose_index_stays_behind_is_named_and_the_upgrade_goes_on(site: FakeSite) -> None:
    indexed(site, node1=9, node2=5, node3=9)  # node2's index queue never gets past entry 5
    code, events = upgrade(site)
    assert code == ExitCode.SUCCESS and set(site.versions().values()) == {TARGET}
    notes = [e["message"] for e in events if e["event"] == "note" and "search index" in str(e["message"])]
    assert notes == [
        "node2: its search index is 4 journal entries behind the other nodes' after 5 s (timeouts.index_seconds): "
        "searches on it miss recent changes until it catches up; the run goes on"
    ]
    waited = [e for e in events if e["event"] == "phase_started" and e.get("step") == "index"]
    assert [e["node"] for e in waited] == ["node2"], "the others were caught up: nothing to wait for"


def test_nodes_caught_up_or_without_journal_files_are_not_waited_for(site: FakeSite) -> None:
    indexed(site, node1=7, node2=7)  # node3 keeps no journal file: nothing to compare
    code, events = upgrade(site)
    assert code == ExitCode.SUCCESS
    assert not [e for e in events if e["event"] == "phase_started" and e.get("step") == "index"]
    skipped = [e["node"] for e in events if e["event"] == "phase_skipped" and e.get("step") == "index"]
    assert skipped == ["node1", "node2", "node3"]
