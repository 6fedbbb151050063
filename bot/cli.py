"""The `lphedge` command line. Each command group lives in bot/commands/<name>.py
and registers itself on the app; this module only wires them and turns errors
into one clear line on stderr with a non-zero exit.

Start-up is lazy: COMMANDS names each top-level command, the module that registers it
and its one-line help, so `lphedge --help` lists them and `lphedge version` runs without
importing any command module (web3, ccxt, sqlalchemy... cost ~2 s). The module behind a
command is imported only when that command is run (or asked for its own --help).
tests/bot/test_startup.py checks the table against what the modules register."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from bot.errors import exit_code, one_line

# command -> (module in bot/commands that registers it, its help as listed by --help)
COMMANDS: dict[str, tuple[str, str]] = {
    "positions": ("positions", "List an owner's Uniswap v3 positions: range, amounts, fees "
                               "owed, value, delta, gamma."),
    "version": ("version", "Print the lphedge version."),
    "demo": ("demo", "Start a local chain (anvil + real Uniswap v3 + Safe 1.4.1), show the "
                     "Safe's positions, move the WETH/USDC price with a real swap so a "
                     "position leaves its range, show them again."),
    "plan": ("plan", "What the policy would do in a given state, with reasons (review "
                     "before approving)."),
    "signals": ("signals", "Current market readings, signal levels with evidence, and the "
                           "regime."),
    "backtest": ("backtest", "Backtest the policy on recorded history, hour by hour, with "
                             "the daemon's decide()."),
    "history": ("signals", "Market history files (CSV formats of the recorded set)."),
    "policy": ("governance", "Approve the policy the bot runs (a Safe signature over its "
                             "hash)."),
    "override": ("governance", "Threshold-signed overrides (EIP-712 typed messages)."),
    "roles": ("governance", "The bot's on-chain scope: a Zodiac Roles v2 modifier."),
    "db": ("db", "The bot's database: schema migrations (Alembic)."),
    "config": ("config", "The settings tree (env, .env, one TOML file)."),
}


def load_command(name: str) -> Any:
    """The real command (or group) ``name``, from the module that registers it."""
    sub = typer.Typer()
    importlib.import_module(f"bot.commands.{COMMANDS[name][0]}").register(sub)
    return typer.main.get_group(sub).commands[name]


class _Listed(TyperCommand):
    """Stands in for a command in the --help listing; never run."""


class LazyGroup(TyperGroup):
    """The root group: lists COMMANDS from the table, imports a command's module only
    when the command line resolves to it."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            return _Listed(cmd_name, help=COMMANDS[cmd_name][1])
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        if isinstance(cmd, _Listed) and name is not None:
            cmd = load_command(name)
        return name, cmd, rest


app = typer.Typer(
    name="lphedge",
    help="Layered outer protection (ALVH) for Uniswap v3 LP positions held by a Safe.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyGroup,
    # click's plain help and usage errors here: rich's help renderer alone imports
    # markdown-it and rich (~0.3 s); each command's own --help stays rich
    rich_markup_mode=None,
)



@app.callback()
def _root() -> None:
    """Layered outer protection (ALVH) for Uniswap v3 LP positions held by a Safe."""


def main() -> None:
    """Run the app; every error becomes one line on stderr and the exit code bot.errors
    gives it (2 for ours, 1 for anything unexpected, 130 for Ctrl-C), never a traceback."""
    # typer vendors click (typer._click); its exceptions are not re-exported elsewhere
    from typer._click import exceptions as click

    try:
        # not standalone: click's usage errors come back here, to be one line like ours
        code = app(standalone_mode=False)
    except click.NoArgsIsHelpError as exc:  # `lphedge policy`: the group's help, as before
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # unknown option, bad value, missing argument...
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        print(f"error: {' '.join(exc.format_message().split())}{where}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        print(f"error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:  # end of input at a prompt (typer turns Ctrl-C into exit 130)
        sys.exit(1)
    except KeyboardInterrupt:  # quietly, like typer does for one raised inside a command
        sys.exit(exit_code(KeyboardInterrupt()))
    except Exception as exc:  # ours (LphedgeError) or, last resort, anything else
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(exit_code(exc))
    # typer.Exit(n) and Ctrl-C (130) come back as a return value when not standalone
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
