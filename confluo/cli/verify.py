"""verify: the cluster test of Atlassian's set-up guide — a page created through the load balancer, read on every
node, found by search on every node, deleted again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from confluo import app
from confluo.cli.env import Env
from confluo.cli.options import EXIT_CODES_HELP, inventory_option, json_option, lock_wait_option
from confluo.cli.outcome import session_for
from confluo.errors import CheckFailed, LeftBehind
from confluo.execute.verify import VerifyReport
from confluo.ui.lines import JsonLines, PlainLines
from confluo.ui.live import terminal_console
from confluo.ui.verify_view import verify_summary, verify_table

DEFAULT_TIMEOUT = 60.0  # Confluence's index takes new content every few seconds; a loaded node may lag more
SPACE_KEY = re.compile(r"[A-Za-z0-9]+|~\S+")  # a space's key, or a personal space's ~username
INTERRUPTED = "confluo deleted the test page before it stopped, or says above why it could not; nothing else changed"


def _space_key(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not SPACE_KEY.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a space key (letters and digits, or ~username)")
    return value


@click.command(epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@click.option(
    "--space",
    metavar="KEY",
    callback=_space_key,
    help="The space the test page is created in (default: the first global space the API lists).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long every node may take to read the page and find it in a search.",
)
@json_option
@lock_wait_option
@click.pass_obj
def verify(env: Env, inventory_path: Path, space: str | None, timeout: float, as_json: bool, lock_wait: float) -> None:
    """Test the cluster as Atlassian's set-up guide does: create a page through the load balancer (api_url), read
    it on every node's own URL, find it with a CQL search on every node, then delete it (always). Changes nothing
    else; exit 7 names every node that missed. It holds the cluster lock: a node an upgrade or a restart has
    taken down would be reported as a miss, and none starts while the test page exists."""
    with (
        session_for(env, inventory_path, as_json=as_json, interrupted_hint=INTERRUPTED) as session,
        app.run_lock(session, "verify", wait_seconds=lock_wait) as lock_notes,
    ):
        session.events.subscribe(JsonLines(env.stdout) if as_json else PlainLines(env.stdout))
        for note in lock_notes:
            session.events.emit("note", note)
        report = app.verify(session, space=space, deadline_seconds=timeout)
        document = report.as_json()
        if as_json:
            click.echo(json.dumps({"v": 1, "event": "verify_report", **document}, separators=(",", ":")))
        else:
            console = terminal_console(env.stdout)
            console.print(verify_table(document))
            console.print(verify_summary(document), highlight=False)
        _raise_for(report)
        if as_json:
            click.echo(json.dumps({"v": 1, "event": "run_finished", "result": "success", "exit_code": 0}))


def _raise_for(report: VerifyReport) -> None:
    """A page left behind needs a person (exit 5); a missed check is the cluster's problem (exit 7)."""
    page = report.page
    if report.cleanup.left_behind:
        misses = "; and the check failed: " + "; ".join(report.failures()) if not report.passed else ""
        raise LeftBehind(
            f"the test page {page.id} {page.title!r} is left in space {report.space.key}: {report.cleanup.problem}"
            + misses,
            hint=f"delete it by hand ({report.api_url}/pages/viewpage.action?pageId={page.id}), then purge it "
            "from the space's trash",
        )
    if not report.passed:
        unread = any(not check.read_ok for check in report.nodes)
        raise CheckFailed(report.failures(), hint=_hint(unread))


def _hint(unread: bool) -> str:
    searching = (
        "a node whose search misses the page has a search index that is behind or broken: look at its "
        "atlassian-confluence.log, and rebuild its index if it does not catch up (Administration > Content Indexing)"
    )
    if not unread:
        return searching
    return (
        "a node that cannot read the page does not answer, or does not share the cluster's database (its "
        f"confluence.cfg.xml, its database connection); {searching}"
    )
