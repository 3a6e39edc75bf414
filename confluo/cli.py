"""The command line: the only module that imports click. It parses, calls the core, renders, exits."""

from __future__ import annotations

import click

from confluo import __version__
from confluo.lab.cli import lab


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="confluo")
def cli() -> None:
    """Zero-downtime rolling upgrades of Confluence Data Center clusters over SSH."""


cli.add_command(lab)


def main() -> None:
    cli(prog_name="confluo")
