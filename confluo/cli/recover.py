"""cancel · finalize [--retry]: bring an upgrade in progress to its end without upgrading another node."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from confluo import app
from confluo.app import Session
from confluo.cli.env import Env
from confluo.cli.options import (
    EXIT_CODES_HELP,
    inventory_option,
    json_option,
    lock_wait_option,
    log_option,
    yes_option,
)
from confluo.cli.outcome import session_for
from confluo.cli.upgrade import confirm, run_with_view, say
from confluo.plan.model import Plan
from confluo.secrets import Masker
from confluo.ui.log import CommandLog


def _carry_out(env: Env, inventory_path: Path, command: str, make: Callable[[Session], Plan], yes: bool,
               as_json: bool, log_file: Path | None, lock_wait: float) -> None:  # fmt: skip
    masker = Masker()
    log = CommandLog(log_file or env.default_log_path(), masker)
    with (
        session_for(env, inventory_path, log=log, masker=masker, as_json=as_json) as session,
        app.run_lock(session, command, wait_seconds=lock_wait) as lock_notes,
    ):
        session.events.subscribe(log.event)
        plan = make(session)
        if plan.nothing_to_do:
            say(as_json, "the cluster is STABLE and upgrade mode is off; nothing to do", "nothing_to_do")
            return
        steps = ", then ".join(step.name for step in plan.finalize)
        if not yes:
            confirm(env, f"{plan.goal.capitalize()} on {plan.cluster_name}: {steps}?", as_json)
        run_with_view(env, session, as_json, lambda: app.run_plan(session, plan), lock_notes)
        say(as_json, f"{plan.goal}: done; the cluster is STABLE", "done")


@click.command(epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@yes_option
@json_option
@log_option
@lock_wait_option
@click.pass_obj
def cancel(env: Env, inventory_path: Path, yes: bool, as_json: bool, log_file: Path | None, lock_wait: float) -> None:
    """Turn upgrade mode off again while no node runs the new version (READY_TO_UPGRADE)."""
    _carry_out(env, inventory_path, "cancel", app.cancel_plan, yes, as_json, log_file, lock_wait)


@click.command(epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@click.option("--retry", is_flag=True, help="After UPGRADE_TASKS_FAILED: run the upgrade tasks again.")
@yes_option
@json_option
@log_option
@lock_wait_option
@click.pass_obj
def finalize(
    env: Env, inventory_path: Path, retry: bool, yes: bool, as_json: bool, log_file: Path | None, lock_wait: float
) -> None:
    """Finalize an upgrade whose nodes all run the new version: approve, then wait until STABLE."""

    def plan(session: Session) -> Plan:
        return app.finalize_plan(session, retry=retry)

    _carry_out(env, inventory_path, "finalize", plan, yes, as_json, log_file, lock_wait)
