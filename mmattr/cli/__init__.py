"""The `mmattr` command line: thin Typer commands over the library."""

from .main import app, main

__all__ = ["app", "main"]
