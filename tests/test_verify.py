"""`confluo verify` over the typed fakes: the procedure (create, read and search on every node under a deadline,
delete always) and the command line (its table, JSON lines and exit codes), in milliseconds."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from fake_content import FakeContentApi
from fakes import FakeClock, FakeSite

from confluo.api.content import ContentError, cql_string, parse_page, parse_search
from confluo.cli.env import Env
from confluo.cli.main import cli
from confluo.errors import ExitCode, LeftBehind, RefusedError
from confluo.events import Event, EventBus
from confluo.execute.verify import VerifyReport, verify_cluster
from confluo.secrets import Masker

API = "http://lb.invalid"
URLS = [f"http://127.0.0.{10 + i}:8090" for i in (1, 2, 3)]


@dataclass(frozen=True)
class NodeUrl:
    name: str
    url: str


NODES = [NodeUrl(f"node{i}", url) for i, url in enumerate(URLS, start=1)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def content(clock: FakeClock) -> FakeContentApi:
    return FakeContentApi(clock, API, URLS)


def run(content: FakeContentApi, clock: FakeClock, *, space: str | None = "LAB", deadline: float = 30.0,
        notes: list[Event] | None = None) -> VerifyReport:  # fmt: skip
    events = EventBus(Masker())
    if notes is not None:
        events.subscribe(notes.append)
    return verify_cluster(content, api_url=API, nodes=NODES, space_key=space, deadline_seconds=deadline,
                          marker="3f9a2c1b7e12", clock=clock, events=events)  # fmt: skip


def test_a_healthy_cluster_passes_and_the_page_is_gone_afterwards(content: FakeContentApi, clock: FakeClock) -> None:
    content.node(URLS[1]).lag = 2.0
    notes: list[Event] = []
    report = run(content, clock, notes=notes)
    assert report.passed and report.failures() == []
    assert [c.read_ok and c.search_ok for c in report.nodes] == [True, True, True]
    seconds = {c.name: c.search_seconds for c in report.nodes}
    assert 2.0 <= (seconds["node2"] or 0) < 2.5 and (seconds["node1"] or 0) < 1.0  # each node's own index lag
    assert report.page.title == "confluo verify 3f9a2c1b7e12" and report.space.key == "LAB"
    assert report.cql == 'space = "LAB" AND title ~ "3f9a2c1b7e12"'
    assert content.pages == {} and (report.cleanup.trashed, report.cleanup.purged) == (True, True)
    assert [c.split()[0] for c in content.calls if not c.startswith(("read", "search"))] == [
        "space", "create", "delete", "purge"]  # fmt: skip
    creates = [c for c in content.calls if c.split()[0] in ("create", "delete", "purge")]
    assert all(c.endswith(API) for c in creates)  # through the load balancer ...
    reads = {c.split()[1] for c in content.calls if c.startswith(("read", "search"))}
    assert reads == set(URLS)  # ... and every node on its own URL
    assert any("node2: found the test page by search after 2." in n.message for n in notes)


def test_a_node_whose_index_is_broken_is_named_and_the_page_is_still_deleted(
    content: FakeContentApi, clock: FakeClock
) -> None:
    content.node(URLS[1]).index_broken = True
    report = run(content, clock, deadline=20.0)
    assert not report.passed
    assert [(c.name, c.read_ok, c.search_ok) for c in report.nodes] == [
        ("node1", True, True), ("node2", True, False), ("node3", True, True)]  # fmt: skip
    (failure,) = report.failures()
    assert failure.startswith(f"node2: search {URLS[1]}: not found within 20 s") and "index" in failure
    assert clock.slept >= 20.0 and content.pages == {}


def test_a_node_that_is_down_or_on_another_database_fails_its_read_too(
    content: FakeContentApi, clock: FakeClock
) -> None:
    content.node(URLS[0]).down = True
    content.node(URLS[2]).own_database = True
    report = run(content, clock, deadline=5.0)
    failures = report.failures()
    assert [f.split(":")[0] for f in failures] == ["node1", "node1", "node3", "node3"]
    assert "Connection refused" in failures[0] and "404, no such page" in failures[2]
    assert report.nodes[1].read_ok and report.nodes[1].search_ok and content.pages == {}


def test_refused_credentials_on_a_node_end_its_checks_at_once(content: FakeContentApi, clock: FakeClock) -> None:
    content.node(URLS[2]).refuses = 401
    report = run(content, clock, deadline=600.0)
    assert not report.passed and "HTTP 401" in report.failures()[0]
    assert clock.slept < 5.0  # asking again would not change a 401: no waiting for the deadline


@pytest.mark.parametrize(("space", "expected"), [("ops", "OPS"), (None, "LAB")])
def test_the_space_is_the_one_named_or_the_first_global_one(
    content: FakeContentApi, clock: FakeClock, space: str | None, expected: str
) -> None:
    assert run(content, clock, space=space).space.key == expected


def test_an_unknown_space_is_refused_before_anything_is_created(content: FakeContentApi, clock: FakeClock) -> None:
    with pytest.raises(RefusedError, match="there is no space 'NOPE'"):
        run(content, clock, space="NOPE")
    assert not any(c.startswith("create") for c in content.calls)


def test_a_create_the_cluster_refuses_changes_nothing(content: FakeContentApi, clock: FakeClock) -> None:
    content.create_fails = ContentError("POST .../rest/api/content: HTTP 403", status=403)
    with pytest.raises(RefusedError, match=r"cannot create the test page in space LAB: .*403"):
        run(content, clock)
    assert content.pages == {} and not any(c.startswith(("find", "delete")) for c in content.calls)


def test_a_create_refused_after_a_retry_made_the_page_deletes_that_page(
    content: FakeContentApi, clock: FakeClock
) -> None:
    """A load balancer that sent the create again to another node: the first made the page, the second found
    the title taken (400). The page is found by its title and deleted."""
    content.create_fails = ContentError("POST ...: HTTP 400: A page with this title already exists", status=400)
    content.create_fails_after_creating = True
    with pytest.raises(RefusedError, match="already exists"):
        run(content, clock)
    assert content.pages == {} and [c.split()[0] for c in content.calls][-3:] == ["find", "delete", "purge"]


def test_a_create_that_failed_after_it_took_effect_is_found_by_its_title_and_deleted(
    content: FakeContentApi, clock: FakeClock
) -> None:
    content.create_fails = ContentError("POST .../rest/api/content: ReadTimeout", sent=True)
    content.create_fails_after_creating = True
    with pytest.raises(RefusedError, match="ReadTimeout"):
        run(content, clock)
    assert content.pages == {} and [c.split()[0] for c in content.calls][-3:] == ["find", "delete", "purge"]


def test_a_page_that_cannot_be_deleted_is_reported_left_behind(content: FakeContentApi, clock: FakeClock) -> None:
    content.delete_fails = ContentError("DELETE ...: HTTP 403", status=403)
    report = run(content, clock)
    assert report.passed and report.cleanup.left_behind and "deleting it failed" in (report.cleanup.problem or "")


def test_a_page_that_cannot_be_purged_stays_in_the_trash_and_says_so(content: FakeContentApi, clock: FakeClock) -> None:
    content.purge_fails = ContentError("DELETE ...?status=trashed: HTTP 403", status=403)
    report = run(content, clock)
    assert not report.cleanup.left_behind and not report.cleanup.purged
    assert "in the trash of space LAB" in (report.cleanup.problem or "")
    assert [p.status for p in (s.page for s in content.pages.values())] == ["trashed"]


def test_ctrl_c_while_waiting_still_deletes_the_page(content: FakeContentApi, clock: FakeClock) -> None:
    content.node(URLS[1]).index_broken = True
    content.interrupt_on_search = 7
    with pytest.raises(KeyboardInterrupt):
        run(content, clock)
    assert content.pages == {} and content.calls[-1].startswith("purge")


def test_the_content_parsers_and_cql_quoting() -> None:
    assert cql_string('a "b" \\c') == '"a \\"b\\" \\\\c"'
    page = parse_page({"id": "65601", "title": "T", "status": "current", "space": {"key": "LAB"}})
    assert (page.id, page.space_key) == ("65601", "LAB")
    answer = {"results": [{"content": {"id": "1"}}, {"user": {}}, {"content": {"id": 2}}], "size": 3}
    assert parse_search(answer) == ["1", "2"] and parse_search({"results": "nonsense"}) == []


# --- the command line -----------------------------------------------------------------------------------


def confluo(site: FakeSite, *args: str) -> tuple[int, str, str]:
    shown = io.StringIO()  # where the command's progress lines and table go (the terminal, in real life)
    env = Env(stdin_isatty=False, stdout_isatty=False, stdout=shown, ports=site.ports())
    result = CliRunner().invoke(cli, ["verify", "-i", str(site.inventory), *args], obj=env)
    return result.exit_code, shown.getvalue() + result.stdout, result.stderr


def test_verify_prints_a_row_per_node_and_exits_0(site: FakeSite) -> None:
    code, out, err = confluo(site)
    assert code == ExitCode.SUCCESS, err
    assert "cluster check passed" in out and all(f"node{i}" in out for i in (1, 2, 3))
    assert "deleted, and purged from the trash" in out and site.content.pages == {} and site.content.closed


def test_verify_exits_7_naming_the_node_whose_index_is_broken(site: FakeSite) -> None:
    site.content.node(site.host("node2").url).index_broken = True
    code, out, err = confluo(site, "--timeout", "5", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    report = next(line for line in lines if line["event"] == "verify_report")
    assert code == ExitCode.CHECK_FAILED and "node2: search" in err and "node1" not in err
    assert [n["search"] for n in report["nodes"]] == [True, False, True] and report["cleanup"]["purged"]
    assert (lines[-1]["event"], lines[-1]["exit_code"]) == ("run_finished", 7) and site.content.pages == {}


def test_verify_exits_5_when_the_test_page_is_left_behind(site: FakeSite) -> None:
    site.content.delete_fails = ContentError("DELETE ...: HTTP 500", status=500)
    code, _, err = confluo(site)
    assert code == ExitCode.FAILED_AFTER_CHANGES and "is left in space LAB" in err and "delete it by hand" in err


def test_verify_refuses_an_unknown_space_and_a_malformed_key(site: FakeSite) -> None:
    code, _, err = confluo(site, "--space", "NOPE")
    assert code == ExitCode.REFUSED and "there is no space 'NOPE'" in err and "nothing was changed" in err
    code, _, err = confluo(site, "--space", "LA B")
    assert code == ExitCode.USAGE and "not a space key" in err
    assert not any(call.startswith("create") for call in site.content.calls)


def test_left_behind_is_an_error_with_exit_5() -> None:
    assert LeftBehind("x").exit_code is ExitCode.FAILED_AFTER_CHANGES
