"""restart: the seeds' cluster operations that are not an upgrade."""

from __future__ import annotations

from pathlib import Path

import click

from confluo import app
from confluo.app import Session
from confluo.cli.env import Env
from confluo.cli.options import EXIT_CODES_HELP, inventory_option, json_option, lock_wait_option, log_option, yes_option
from confluo.cli.recover import carry_out, dry_run_option
from confluo.plan.model import Plan


@click.command(epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@click.option("--node", "only", metavar="NODE", help="Restart this node only, the same way.")
@dry_run_option
@yes_option
@json_option
@log_option
@lock_wait_option
@click.pass_obj
def restart(env: Env, inventory_path: Path, only: str | None, dry_run: bool, yes: bool, as_json: bool,
            log_file: Path | None, lock_wait: float) -> None:  # fmt: skip
    """A rolling restart: one node at a time, least busy first and only while every other node serves, stopped
    gracefully (hard stop after its deadline), started, and ACTIVE again before the next one is stopped."""

    def plan(session: Session) -> Plan:
        return app.restart_plan(session, node=only)

    carry_out(env, inventory_path, "restart", plan, yes=yes, as_json=as_json, log_file=log_file,
              lock_wait=lock_wait, dry_run=dry_run)  # fmt: skip
