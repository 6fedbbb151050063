"""The `lphedge` command line. Each command group lives in bot/commands/<name>.py
and registers itself on the app; this module only wires them and turns errors
into one clear line on stderr with a non-zero exit."""

from __future__ import annotations

import sys

import typer

from bot.commands import backtest, config, db, demo, governance, plan, positions, signals
from bot.errors import exit_code, one_line

app = typer.Typer(
    name="lphedge",
    help="Layered outer protection (ALVH) for Uniswap v3 LP positions held by a Safe.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



@app.callback()
def _root() -> None:
    """Layered outer protection (ALVH) for Uniswap v3 LP positions held by a Safe."""


for module in (positions, demo, plan, signals, governance, backtest, db, config):
    module.register(app)


def main() -> None:
    """Run the app; every error becomes one line on stderr and the exit code bot.errors
    gives it (2 for ours, 1 for anything unexpected, 130 for Ctrl-C), never a traceback."""
    try:
        app()
    except KeyboardInterrupt:  # quietly, like typer does for one raised inside a command
        sys.exit(exit_code(KeyboardInterrupt()))
    except Exception as exc:  # ours (LphedgeError) or, last resort, anything else
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(exit_code(exc))


if __name__ == "__main__":
    main()
