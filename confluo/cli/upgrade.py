"""plan · upgrade · status."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from confluo import app
from confluo.app import Session
from confluo.cli.env import Env
from confluo.cli.options import (
    EXIT_CODES_HELP,
    accept_new_option,
    inventory_option,
    json_option,
    lock_wait_option,
    log_option,
    to_option,
    yes_option,
)
from confluo.cli.outcome import session_for
from confluo.errors import NeedsConfirmation
from confluo.execute.report import RunReport
from confluo.plan.model import Plan
from confluo.secrets import Masker
from confluo.ui.lines import JsonLines, PlainLines
from confluo.ui.live import LiveView, terminal_console
from confluo.ui.log import CommandLog
from confluo.ui.plan_view import plan_as_json, plan_as_text, plan_summary, status_table


@click.command()
@inventory_option
@to_option
@json_option
@accept_new_option
@click.pass_obj
def plan(env: Env, inventory_path: Path, target_version: str | None, as_json: bool, accept_new_host_keys: bool) -> None:
    """Probe every node and the cluster for real, and print the ordered plan. Changes nothing."""
    with session_for(
        env, inventory_path, target_version=target_version, accept_new_host_keys=accept_new_host_keys,
        as_json=as_json, read_only=True,
    ) as session:  # fmt: skip
        the_plan, facts = app.make_plan(session)
        if as_json:
            click.echo(json.dumps(plan_as_json(the_plan, facts), indent=2))
        else:
            click.echo(plan_as_text(the_plan, facts, session.inventory.nodes), nl=False)


@click.command(epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@to_option
@yes_option
@json_option
@accept_new_option
@log_option
@lock_wait_option
@click.pass_obj
def upgrade(
    env: Env,
    inventory_path: Path,
    target_version: str | None,
    yes: bool,
    as_json: bool,
    accept_new_host_keys: bool,
    log_file: Path | None,
    lock_wait: float,
) -> None:
    """Upgrade the cluster, one node at a time, without downtime."""
    masker = Masker()
    log = CommandLog(log_file or env.default_log_path(), masker)
    with (
        session_for(
            env, inventory_path, target_version=target_version, accept_new_host_keys=accept_new_host_keys,
            log=log, masker=masker, as_json=as_json,
        ) as session,
        app.run_lock(session, "upgrade", wait_seconds=lock_wait) as lock_notes,
    ):  # fmt: skip
        session.events.subscribe(log.event)
        the_plan, facts = app.make_plan(session)
        if the_plan.nothing_to_do:
            say(as_json, f"every node already runs {the_plan.target_version}; nothing to do", "nothing_to_do")
            return
        if not yes:
            if not as_json and env.stdin_isatty:
                click.echo(plan_as_text(the_plan, facts, session.inventory.nodes) if the_plan.goal != "upgrade"
                           else "\n".join(plan_summary(the_plan, facts, session.inventory.nodes)))  # fmt: skip
            confirm(env, _question(the_plan), as_json)
        report = run_with_view(env, session, as_json, lambda: app.run_plan(session, the_plan), lock_notes)
        _summary(report, as_json, log.path)


@click.command()
@inventory_option
@json_option
@accept_new_option
@click.pass_obj
def status(env: Env, inventory_path: Path, as_json: bool, accept_new_host_keys: bool) -> None:
    """The cluster's state, upgrade mode, and every node as the API and the hosts see it."""
    with session_for(
        env, inventory_path, accept_new_host_keys=accept_new_host_keys, as_json=as_json, read_only=True
    ) as session:
        report = app.status(session)
        if as_json:
            click.echo(json.dumps(report, indent=2))
        else:
            terminal_console(env.stdout).print(status_table(session.inventory.cluster.name, report))


def _question(plan: Plan) -> str:
    if plan.goal != "upgrade":  # the upgrade was approved already: its upgrade tasks are run again
        steps = ", then ".join(step.name for step in plan.finalize)
        return f"{plan.goal.capitalize()} {plan.cluster_name} ({steps}) now?"
    return f"Upgrade {plan.cluster_name} from {plan.source_version} to {plan.target_version} now?"


def confirm(env: Env, question: str, as_json: bool) -> None:
    if as_json or not env.stdin_isatty:
        raise NeedsConfirmation()
    try:
        confirmed = click.confirm(question, default=False)
    except click.Abort:  # Ctrl-D or a closed stdin at the prompt
        confirmed = False
    if not confirmed:
        raise NeedsConfirmation("not confirmed: nothing was changed", hint=None)


def run_with_view(
    env: Env, session: Session, as_json: bool, work: Callable[[], RunReport], notes: Sequence[str] = ()
) -> RunReport:
    """`notes`: what was found before the view was there (the cluster lock's), told first."""

    def noted_work() -> RunReport:
        for note in notes:
            session.events.emit("note", note)
        return work()

    if as_json:
        session.events.subscribe(JsonLines(env.stdout))
        return noted_work()
    if env.stdout_isatty:
        with LiveView(terminal_console(env.stdout), [n.name for n in session.inventory.nodes]) as view:
            session.events.subscribe(view)
            return noted_work()
    session.events.subscribe(PlainLines(env.stdout))
    return noted_work()


def _summary(report: RunReport, as_json: bool, log_path: Path) -> None:
    data: dict[str, Any] = {
        "prestage_seconds": round(report.prestage_seconds, 2),
        "rolling_seconds": round(report.rolling_seconds, 2),
        "finalize_seconds": round(report.finalize_seconds, 2),
        "bytes_sent": report.bytes_sent,
        "out_of_service_seconds": {k: round(v, 2) for k, v in report.out_of_service.items()},
        "stop_seconds": {k: round(v, 2) for k, v in report.stop_seconds.items()},
        "start_seconds": {k: round(v, 2) for k, v in report.start_seconds.items()},
        "log_file": str(log_path),
    }
    if report.out_of_pool:  # with a load balancer
        data["out_of_pool_seconds"] = {k: round(v, 2) for k, v in report.out_of_pool.items()}
        data["drain_seconds"] = {k: round(v, 2) for k, v in report.drain_seconds.items()}
    if as_json:
        click.echo(json.dumps({"v": 1, "event": "summary", **data}, separators=(",", ":")))
        return
    click.echo(
        f"done: pre-staging {data['prestage_seconds']} s, rolling {data['rolling_seconds']} s, finalize "
        f"{data['finalize_seconds']} s; each node out of service: "
        + ", ".join(f"{k} {v} s" for k, v in data["out_of_service_seconds"].items())
    )
    if "out_of_pool_seconds" in data:
        click.echo(
            "out of the load balancer's pool: "
            + ", ".join(f"{k} {v} s" for k, v in data["out_of_pool_seconds"].items())
        )
    click.echo(f"log: {log_path}")


def say(as_json: bool, message: str, kind: str) -> None:
    if as_json:
        click.echo(json.dumps({"v": 1, "event": kind, "message": message}, separators=(",", ":")))
    else:
        click.echo(message)
