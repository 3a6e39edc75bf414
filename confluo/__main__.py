"""`python -m confluo` runs the command line."""

from confluo.cli import main

main()
