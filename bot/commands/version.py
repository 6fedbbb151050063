"""`lphedge version [--json]`: the installed lphedge version (and the Python running it).

Light on purpose (stdlib and typer only): it is one of the two commands whose start-up
time bench/startup.py measures."""

from __future__ import annotations

import json
import platform
from typing import Annotated

import typer


def installed_version() -> str:
    """The version pip installed (pyproject's), read from the package metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lphedge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def register(app: typer.Typer) -> None:
    """Add `version` to the app."""

    @app.command("version")
    def version_cmd(
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        """Print the lphedge version."""
        if as_json:
            print(json.dumps({"name": "lphedge", "version": installed_version(),
                              "python": platform.python_version()}))
        else:
            print(installed_version())
