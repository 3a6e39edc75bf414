"""Options shared by the commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from confluo.errors import ExitCode

EXIT_CODES_HELP = "\n".join(f"  {code.value:>3}  {code.description}" for code in ExitCode)

inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The YAML inventory of the cluster (see inventory.sample.yaml).",
)
to_option = click.option("--to", "target_version", metavar="VERSION", help="Target version (overrides target.version).")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
accept_new_option = click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust and remember host keys not yet in known_hosts (this run only). Changed keys are always refused.",
)
yes_option = click.option("--yes", is_flag=True, help="Act without asking (needed without a terminal, e.g. cron).")
log_option = click.option("--log-file", type=click.Path(path_type=Path), help="Where to log every remote command.")
lock_wait_option = click.option(
    "--lock-wait",
    "lock_wait",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="While another run holds the cluster lock, wait up to SECONDS for it (cron), then refuse. Default 0.",
)
force_option = click.option("--force", is_flag=True, help="Release even a live lock (its heartbeat is fresh).")
dry_run_option = click.option("--dry-run", is_flag=True, help="Probe for real and print the plan. Changes nothing.")


@dataclass(frozen=True)
class RunOptions:
    """How a command that changes the cluster runs: dry or for real, asking or not, its output, log and lock."""

    dry_run: bool
    yes: bool
    as_json: bool
    log_file: Path | None
    lock_wait: float


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--dry-run, --yes, --json, --log-file and --lock-wait, handed to `command` as one `run: RunOptions`."""

    @functools.wraps(command)
    def collect(*args: Any, dry_run: bool, yes: bool, as_json: bool, log_file: Path | None, lock_wait: float,
                **kwargs: Any) -> Any:  # fmt: skip
        return command(*args, run=RunOptions(dry_run, yes, as_json, log_file, lock_wait), **kwargs)

    for option in reversed((dry_run_option, yes_option, json_option, log_option, lock_wait_option)):
        collect = option(collect)
    return collect
