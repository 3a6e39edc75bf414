"""restart: the seeds' cluster operations that are not an upgrade."""

from __future__ import annotations

from pathlib import Path

import click

from confluo import app
from confluo.app import Session
from confluo.cli.env import Env
from confluo.cli.options import EXIT_CODES_HELP, RunOptions, inventory_option, run_options
from confluo.cli.recover import carry_out
from confluo.plan.model import Plan


@click.command(epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@click.option("--node", "only", metavar="NODE", help="Restart this node only, the same way.")
@run_options
@click.pass_obj
def restart(env: Env, inventory_path: Path, only: str | None, run: RunOptions) -> None:
    """A rolling restart: one node at a time, least busy first and only while every other node serves, stopped
    gracefully (hard stop after its deadline), started, and ACTIVE again before the next one is stopped."""

    def plan(session: Session) -> Plan:
        return app.restart_plan(session, node=only)

    carry_out(env, inventory_path, "restart", plan, run)
