"""`confluo add-node`: grow the cluster by one node, copied from a serving one."""

from __future__ import annotations

import json
from pathlib import Path

import click

from confluo import app, growth
from confluo.cli.env import Env
from confluo.cli.options import EXIT_CODES_HELP, RunOptions, accept_new_option, inventory_option, run_options
from confluo.cli.outcome import session_for
from confluo.cli.upgrade import confirm, run_with_view, say
from confluo.configfiles import unified_diff
from confluo.inventory import Inventory
from confluo.plan.model import Plan
from confluo.secrets import Masker
from confluo.ui.log import CommandLog
from confluo.ui.plan_view import recovery_plan_as_json, recovery_plan_as_text


@click.command("add-node", epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@click.argument("new")
@click.option("--from", "donor", required=True, metavar="NODE", help="The serving node to copy (it keeps serving).")
@click.option("--host", help="Where SSH reaches the new node (default: --address).")
@click.option("--address", help="The new node's own address: its Connector binds it (default: --host).")
@click.option("--url", help="The new node's own URL (default: the donor's, at the new address).")
@click.option("--ssh-port", type=click.IntRange(1, 65535), help="Its SSH port, when not the donor's.")
@click.option("--ssh-user", help="Its login user, when not the donor's.")
@click.option("--run-as", help="The user Confluence runs as there, when not the donor's (bin/user.sh follows).")
@click.option("--install-base", metavar="DIR", help="Its install base (install.path in the plain layout).")
@click.option("--home", metavar="DIR", help="Its local home, when not at the donor's path.")
@run_options
@accept_new_option
@click.pass_obj
def add_node(env: Env, inventory_path: Path, new: str, donor: str, host: str | None, address: str | None,
             url: str | None, ssh_port: int | None, ssh_user: str | None, run_as: str | None,
             install_base: str | None, home: str | None, run: RunOptions,
             accept_new_host_keys: bool) -> None:  # fmt: skip
    """Add NEW to the cluster: the donor's installation directory and local home copied to its host while the
    donor serves on, made its own (name, address, no copied node id), started once no other node starts, ACTIVE
    in the cluster; then its entry is added to the inventory, comments kept. Refuses, before any change, what
    would not work. NEW's own entry in the inventory, if you wrote one, is used as it is."""
    options = growth.Options(new, donor, host, address, url, ssh_port, ssh_user, run_as, install_base, home)
    chosen: list[growth.Candidate] = []

    def load(path: Path) -> Inventory:
        chosen.append(growth.candidate(path, options))
        return chosen[0].inventory

    dry_run, as_json = run.dry_run, run.as_json
    masker = Masker()
    log = None if dry_run else CommandLog(run.log_file or env.default_log_path(), masker)
    with session_for(env, inventory_path, accept_new_host_keys=accept_new_host_keys, log=log, masker=masker,
                     as_json=as_json, read_only=dry_run, load=load) as session:  # fmt: skip
        if dry_run:
            _show(growth.add_node_plan(session, chosen[0], options, write_marker=False), chosen[0], as_json)
            return
        assert log is not None
        with app.run_lock(session, "add-node", wait_seconds=run.lock_wait) as lock_notes:
            session.events.subscribe(log.event)
            plan = growth.add_node_plan(session, chosen[0], options, write_marker=True)
            if not run.yes:
                if not as_json and env.stdin_isatty:
                    _show(plan, chosen[0], as_json)
                confirm(env, f"Add {new} to {plan.cluster_name} now, as above?", as_json)
            run_with_view(env, session, as_json, lambda: app.run_plan(session, plan), lock_notes)
        say(as_json, plan.ending(), "done")
        _inventory_written(chosen[0], as_json)


def _inventory_diff(chosen: growth.Candidate) -> str:
    if chosen.after is None:
        return ""
    return unified_diff(str(chosen.inventory.path), chosen.before, chosen.after, labels=("now", "with the new node"))


def _show(plan: Plan, chosen: growth.Candidate, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**recovery_plan_as_json(plan), "inventory_diff": _inventory_diff(chosen)}, indent=2))
        return
    click.echo(recovery_plan_as_text(plan), nl=False)
    if chosen.after is not None:
        click.echo(f"\n== then, once {plan.order[0]} is ACTIVE: the inventory\n{_inventory_diff(chosen)}", nl=False)


def _inventory_written(chosen: growth.Candidate, as_json: bool) -> None:
    written = growth.write_inventory(chosen)
    path = chosen.inventory.path
    if written is None:
        return
    if written:
        say(as_json, f"{path}: the new node's entry added (comments kept)", "inventory_written")
        return
    say(as_json, f"{path} changed while confluo ran, so it was not rewritten; add this entry yourself:\n"
        f"{_inventory_diff(chosen)}", "inventory_not_written")  # fmt: skip
