"""The `lphedge` command line. Each command group lives in bot/commands/<name>.py
and registers itself on the app; this module only wires them and turns errors
into one clear line on stderr with a non-zero exit."""

from __future__ import annotations

import sys

import typer

from bot.commands import backtest, db, demo, governance, plan, positions, signals
from bot.errors import LphedgeError

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


for module in (positions, demo, plan, signals, governance, backtest, db):
    module.register(app)


def main() -> None:
    try:
        app()
    except LphedgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # last resort: still one line, never a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
