"""`confluo lab`: start, inspect, disturb and stop a simulated Confluence Data Center cluster."""

from __future__ import annotations

import click


@click.group()
def lab() -> None:
    """A simulated Confluence Data Center cluster, reached over real SSH."""
