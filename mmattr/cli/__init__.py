"""The `mmattr` command line: thin Typer commands over the library."""

from ._run import run
from .main import app, main

__all__ = ["app", "main", "run"]
