"""rollback · cancel · finalize [--retry]: bring an upgrade in progress to an end — back, or through."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from confluo import app
from confluo.app import Session
from confluo.cli.env import Env
from confluo.cli.options import EXIT_CODES_HELP, RunOptions, inventory_option, run_options
from confluo.cli.outcome import session_for
from confluo.cli.upgrade import confirm, run_with_view, say
from confluo.plan.model import Plan
from confluo.secrets import Masker
from confluo.ui.log import CommandLog
from confluo.ui.plan_view import recovery_plan_as_json, recovery_plan_as_text


def carry_out(env: Env, inventory_path: Path, command: str, make: Callable[[Session], Plan], run: RunOptions) -> None:
    if run.dry_run:
        with session_for(env, inventory_path, as_json=run.as_json, read_only=True) as session:
            _show(make(session), run.as_json)
        return
    masker = Masker()
    log = CommandLog(run.log_file or env.default_log_path(), masker)
    with (
        session_for(env, inventory_path, log=log, masker=masker, as_json=run.as_json) as session,
        app.run_lock(session, command, wait_seconds=run.lock_wait) as lock_notes,
    ):
        session.events.subscribe(log.event)
        plan = make(session)
        if plan.nothing_to_do:
            say(run.as_json, "the cluster is STABLE and upgrade mode is off; nothing to do", "nothing_to_do")
            return
        if not run.yes:
            if not run.as_json and env.stdin_isatty:
                _show(plan, run.as_json)
            confirm(env, f"{plan.goal.capitalize()} on {plan.cluster_name} now, as above?", run.as_json)
        run_with_view(env, session, run.as_json, lambda: app.run_plan(session, plan), lock_notes)
        say(run.as_json, plan.ending(), "done")


def _show(plan: Plan, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(recovery_plan_as_json(plan), indent=2))
    else:
        click.echo(recovery_plan_as_text(plan), nl=False)


@click.command(epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@click.option("--node", "only", metavar="NODE", help="Roll back this node only (upgrade mode stays on while others "
              "run the new version).")  # fmt: skip
@click.option("--all", "every", is_flag=True, help="Every upgraded node (the default), then upgrade mode off.")
@run_options
@click.pass_obj
def rollback(env: Env, inventory_path: Path, only: str | None, every: bool, run: RunOptions) -> None:
    """Before finalize: put upgraded nodes back on the installation of the version the upgrade started from, one
    at a time with the same gates as an upgrade; then turn upgrade mode off once no node runs the new version."""
    if only is not None and every:
        raise click.UsageError("--node and --all exclude each other: one node, or every upgraded node")

    def plan(session: Session) -> Plan:
        return app.rollback_plan(session, node=only)

    carry_out(env, inventory_path, "rollback", plan, run)


@click.command(epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@run_options
@click.pass_obj
def cancel(env: Env, inventory_path: Path, run: RunOptions) -> None:
    """Turn upgrade mode off again while no node runs the new version (READY_TO_UPGRADE)."""
    carry_out(env, inventory_path, "cancel", app.cancel_plan, run)


@click.command(epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@click.option("--retry", is_flag=True, help="After UPGRADE_TASKS_FAILED: run the upgrade tasks again.")
@run_options
@click.pass_obj
def finalize(env: Env, inventory_path: Path, retry: bool, run: RunOptions) -> None:
    """Finalize an upgrade whose nodes all run the new version: approve, then wait until STABLE."""

    def plan(session: Session) -> Plan:
        return app.finalize_plan(session, retry=retry)

    carry_out(env, inventory_path, "finalize", plan, run)
