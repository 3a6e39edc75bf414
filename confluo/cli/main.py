"""The `confluo` group and its commands."""

from __future__ import annotations

import signal
import sys

import click

from confluo import __version__
from confluo.cli import add_node, inventory, lb, lock, operate, recover, upgrade, verify
from confluo.cli.env import Env, ReaderSafe
from confluo.cli.options import EXIT_CODES_HELP
from confluo.errors import Terminated
from confluo.lab.cli import lab


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}")
@click.version_option(__version__, prog_name="confluo")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Zero-downtime rolling upgrades of Confluence Data Center clusters over SSH."""
    ctx.ensure_object(Env)


for command in (upgrade.plan, upgrade.upgrade, upgrade.status, recover.rollback, recover.cancel, recover.finalize):
    cli.add_command(command)
for command in (operate.restart, add_node.add_node, verify.verify, lock.lock, lb.lb, inventory.inventory, lab):
    cli.add_command(command)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (click's own), to source or save; the README shows where."""
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None  # every choice is one of click's built-in shells
    click.echo(completer(cli, {}, "confluo", "_CONFLUO_COMPLETE").source())


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main() -> None:
    # cron, systemd and CI stop a job with SIGTERM: unwind as for Ctrl-C, bringing the node in progress back.
    signal.signal(signal.SIGTERM, _terminate)
    if sys.stdout is not None:
        sys.stdout = ReaderSafe(sys.stdout)  # a file in all that is used of it
    if sys.stderr is not None:
        sys.stderr = ReaderSafe(sys.stderr)  # `2>&1 | head`: the exit code still says how the run ended
    cli(prog_name="confluo")
