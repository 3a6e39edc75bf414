"""confluo lb status | lb ready NODE: the load balancer as confluo sees it, and one node put back by hand."""

from __future__ import annotations

import json
from pathlib import Path

import click

from confluo.cli.env import Env
from confluo.cli.options import EXIT_CODES_HELP, accept_new_option, inventory_option, json_option
from confluo.cli.outcome import session_for
from confluo.errors import RefusedError
from confluo.loadbalancer.ops import pool_report, put_back, shown


@click.group()
def lb() -> None:
    """The inventory's load balancer: each node's state in it, and putting a node back."""


def _no_balancer(inventory_path: Path) -> RefusedError:
    return RefusedError(
        [f"{inventory_path} has no load_balancer section"], hint="see inventory.sample.yaml for the kinds"
    )


@lb.command("status", epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@inventory_option
@json_option
@accept_new_option
@click.pass_obj
def status(env: Env, inventory_path: Path, as_json: bool, accept_new_host_keys: bool) -> None:
    """Every node's server: administrative state (ready, drain, maint), health, sessions."""
    with session_for(
        env, inventory_path, accept_new_host_keys=accept_new_host_keys, as_json=as_json, read_only=True
    ) as session:
        if session.balancer is None:
            raise _no_balancer(inventory_path)
        report = pool_report(session.inventory, session.balancer)
        if as_json:
            click.echo(json.dumps(report, indent=2))
            return
        click.echo(f"load balancer: {report['kind']}")
        for node in report["nodes"]:
            what = node.get("error") or f"{node['shown']}, {node['sessions']} sessions ({node['detail']})"
            click.echo(f"  {node['name']} (server {node['server']}): {what}")
        for warning in report["warnings"]:
            click.echo(f"  warning: {warning}")


@lb.command("ready", epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@click.argument("node")
@inventory_option
@accept_new_option
@click.pass_obj
def ready(env: Env, node: str, inventory_path: Path, accept_new_host_keys: bool) -> None:
    """Put NODE back in the pool (once it answers RUNNING) and wait until the load balancer shows it UP."""
    with session_for(env, inventory_path, accept_new_host_keys=accept_new_host_keys) as session:
        if session.balancer is None:
            raise _no_balancer(inventory_path)
        state = put_back(session.inventory, session.balancer, session.api, node, session.clock)
        click.echo(f"{node}: {shown(state)} in the load balancer")
