"""`lphedge positions`: the Safe's LP positions, their amounts, fees, value and greeks."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.errors import LphedgeError, Transient, UserError

if TYPE_CHECKING:  # the observer (web3) and settings load inside the command: fast start-up
    from bot.observe.errors import ObserveError
    from bot.positions import PositionRow


def _fmt_amount(raw: int, decimals: int) -> str:
    whole, frac = divmod(raw, 10**decimals)
    if decimals == 0:
        return str(whole)
    text = f"{whole}.{frac:0{decimals}d}".rstrip("0").rstrip(".")
    return text


def _fmt_price(x: float) -> str:
    if x == 0:
        return "0"
    if x >= 1e12 or x < 1e-6:
        return f"{x:.4e}"
    return f"{x:,.6g}"


# the observer names configuration fields; only this layer knows their flags
FLAGS = {
    "rpc_urls": "--rpc-url",
    "owner": "--owner",
    "position_manager": "--position-manager",
    "multicall": "--multicall",
    "chain_id": "--chain-id",
}


def as_flag_error(exc: ObserveError) -> LphedgeError:
    """The observer's error, with the field it names spelled as the command's flag; the
    branch is kept (an unreachable RPC stays Transient, a bad address InvalidInput)."""
    cls: type[LphedgeError] = Transient if exc.transient else UserError
    if exc.field is None:
        return cls(exc.problem)
    return cls(f"{FLAGS.get(exc.field, exc.field)}: {exc.problem}")


def render_table(rows: list[PositionRow], title: str) -> Table:
    """Prices shown in the direction that reads naturally (above 1), units named."""
    table = Table(title=title)
    for col in ("id", "pair", "fee", "range", "price", "in", "amounts", "fees owed", "value", "delta", "gamma"):
        table.add_column(col, justify="left" if col in ("pair", "range", "amounts", "fees owed") else "right")
    for r in rows:
        p, m, pool = r.position, r.metrics, r.position.pool
        t0, t1 = pool.token0, pool.token1
        if m.price >= 1 or m.price == 0:
            unit, lo, hi, px = f"{t1.symbol}/{t0.symbol}", m.price_lower, m.price_upper, m.price
        else:  # show token0 per token1
            unit, lo, hi, px = f"{t0.symbol}/{t1.symbol}", 1 / m.price_upper, 1 / m.price_lower, 1 / m.price
        table.add_row(
            str(p.token_id),
            f"{t0.symbol}/{t1.symbol}",
            f"{pool.fee / 10_000:g}%",
            f"{_fmt_price(lo)}–{_fmt_price(hi)} {unit}",
            _fmt_price(px),
            "[green]yes[/]" if m.in_range else "[red]no[/]",
            f"{_fmt_amount(m.amount0, t0.decimals)} {t0.symbol}\n{_fmt_amount(m.amount1, t1.decimals)} {t1.symbol}",
            f"{_fmt_amount(m.fees0, t0.decimals)} {t0.symbol}\n{_fmt_amount(m.fees1, t1.decimals)} {t1.symbol}",
            f"{m.value:,.6g} {t1.symbol}",
            f"{m.delta:,.6g} {t0.symbol}",
            f"{m.gamma:.4g}",
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    def positions(
        rpc_url: Annotated[list[str] | None, typer.Option("--rpc-url", help="RPC URL (repeat for failover)")] = None,
        owner: Annotated[str | None, typer.Option(help="owner of the positions (the Safe)")] = None,
        position_manager: Annotated[str | None, typer.Option(help="NonfungiblePositionManager address")] = None,
        multicall: Annotated[str | None, typer.Option(help="Multicall3 address")] = None,
        chain_id: Annotated[int | None, typer.Option(help="refuse an RPC serving another chain")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
        record: Annotated[bool, typer.Option(help="store the positions and a snapshot in the database")] = False,
    ) -> None:
        """List an owner's Uniswap v3 positions: range, amounts, fees owed, value, delta, gamma."""
        from bot.observe.errors import ObserveError
        from bot.positions import read_positions
        from bot.settings import load_settings

        settings = load_settings()
        urls = rpc_url or settings.rpc_url_list
        if not urls:
            raise UserError("--rpc-url: at least one RPC URL is required (or LPHEDGE_RPC_URLS)")
        try:
            chain, rows = asyncio.run(
                read_positions(
                    urls,
                    owner or settings.owner,
                    position_manager or settings.position_manager,
                    multicall or settings.multicall_address,
                    expected_chain_id=chain_id if chain_id is not None else settings.chain_id,
                    timeout=settings.rpc_timeout,
                    chunk_size=settings.multicall_chunk,
                )
            )
        except ObserveError as exc:
            raise as_flag_error(exc) from None
        if record and rows:
            from bot.store import PositionStore

            PositionStore(settings.sqlalchemy_url).record(chain, [(r.position, r.metrics) for r in rows])
        if as_json:
            json.dump([r.to_json() for r in rows], sys.stdout, indent=2)
            sys.stdout.write("\n")
            return
        console = Console(width=None if sys.stdout.isatty() else 200)
        if not rows:
            console.print("no positions for this owner")
            return
        console.print(render_table(rows, f"{len(rows)} positions on chain {chain}"))
