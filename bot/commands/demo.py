"""CLI commands: demo (placeholder until the foundation lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""

    @app.command()
    def version() -> None:
        """Print the lphedge version."""
        from importlib.metadata import version as v

        print(v("lphedge"))
