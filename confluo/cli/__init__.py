"""The command line: the only package that imports click. It parses, calls `app`, renders through `ui`, exits."""

from confluo.cli.main import cli, main

__all__ = ["cli", "main"]
