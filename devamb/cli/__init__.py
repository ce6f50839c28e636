"""The command line: the click group (main.py) and one module per command family."""

from devamb.cli.main import main

__all__ = ["main"]
