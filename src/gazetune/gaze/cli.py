"""Command-line group for gazetune.gaze (mounted by gazetune.cli)."""

import typer

app = typer.Typer(no_args_is_help=True)
