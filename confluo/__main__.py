"""`python -m confluo` runs the command line."""

from confluo.cli.main import main

main()
