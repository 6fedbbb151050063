"""`lphedge positions`: the Safe's LP positions, their amounts, fees, value and greeks."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.errors import LphedgeError, Transient, UserError

if TYPE_CHECKING:  # the observer (web3) and settings load inside the command: fast start-up
    from bot.observe.errors import ObserveError
    from bot.positions import PositionRow


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


def render_table(rows: Sequence[PositionRow], title: str) -> Table:
    """The operator's units (policies/quote.py), one number format (fmt_num): pair as traders
    quote it, range and price in quote per base (e.g. "3,000 USDC" for ETH/USDC) ("full range" for full-range positions),
    amounts by asset, value and fees owed in USD (the source in the caption; "unknown" when no
    source prices the pair), delta and gamma per 1% move in the base token; totals per base
    token and in USD as the last rows. `plan` renders its positions with this function."""
    from policies.quote import fmt_num, totals

    table = Table(title=title)
    for col in ("id", "pair", "fee", "range", "price", "in", "amounts", "value USD", "fees owed USD",
                "delta", "gamma /1%"):
        table.add_column(col, justify="left" if col in ("pair", "range", "amounts") else "right")
    views = [r.view() for r in rows]
    sources: set[str] = set()
    for r, v in zip(rows, views, strict=True):
        b, q = v.base_token, v.quote_token
        fees_b, fees_q = (r.metrics.fees0, r.metrics.fees1) if v.orientation == "base=token0" else (
            r.metrics.fees1, r.metrics.fees0)
        if v.usd_source:
            sources.add(v.usd_source)
        rng = "full range" if v.full_range else f"{fmt_num(v.price_lower)}–{fmt_num(v.price_upper)} {v.quote}"
        fees = fmt_num(v.fees_usd) if v.fees_usd is not None else (
            f"{fmt_num(fees_b / 10**b.decimals)} {v.base} + {fmt_num(fees_q / 10**q.decimals)} {v.quote}")
        table.add_row(
            str(r.position.token_id),
            v.pair,
            f"{fmt_num(r.position.pool.fee / 10_000)}%",
            rng,
            f"{fmt_num(v.price)} {v.quote}",  # quote per one base
            "[green]yes[/]" if v.in_range else "[red]no[/]",
            f"{fmt_num(v.base_amount / 10**b.decimals)} {v.base}\n{fmt_num(v.quote_amount / 10**q.decimals)} {v.quote}",
            fmt_num(v.value_usd),
            fees,
            f"{fmt_num(v.delta)} {v.base}",
            f"{fmt_num(v.gamma_1pct)} {v.base}",
        )
    t = totals(views)
    if len(views) > 1:
        for base, delta, gamma in t.by_base:
            table.add_row("total", base, "", "", "", "", "", "", "", f"{fmt_num(delta)} {base}",
                          f"{fmt_num(gamma)} {base}")
        table.add_row("total", "USD", "", "", "", "", "", fmt_num(t.value_usd), fmt_num(t.fees_usd), "", "")
    notes = [f"USD from: {', '.join(sorted(sources))}"] if sources else []
    if t.unknown_usd:
        notes.append(f"USD unknown for {t.unknown_usd} position(s): no stable leg and no USD source")
    table.caption = "; ".join(notes) if notes else None
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
        if chain_id is not None and chain_id <= 0:
            raise UserError(f"--chain-id must be > 0, got {chain_id}")
        if record:  # before the chain is read: a bad database used to fail after it
            from bot.commands.files import check_database

            check_database(settings.sqlalchemy_url, settings.origins.get("db.url", "db.url"))
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
                    rate_limit=settings.rpc_rate_limit,
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
