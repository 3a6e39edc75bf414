"""inventory schema · inventory check: the inventory file on its own, without contacting anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from confluo.cli.options import inventory_option, to_option
from confluo.errors import ExitCode
from confluo.inventory import check_inventory, json_schema


@click.group()
def inventory() -> None:
    """The inventory file: its JSON Schema for editors, and a check that contacts nothing."""


@inventory.command()
def schema() -> None:
    """Print the inventory's JSON Schema (docs/inventory.schema.json holds the same)."""
    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@inventory.command()
@inventory_option
@to_option
def check(inventory_path: Path, target_version: str | None) -> None:
    """Validate the inventory and the local files it names; no host, API or secret is touched."""
    problems = check_inventory(inventory_path, target_version=target_version)
    for problem in problems:
        click.secho(problem, fg="red", err=True)
    if problems:
        sys.exit(int(ExitCode.USAGE))
    click.echo(f"{inventory_path}: valid")
