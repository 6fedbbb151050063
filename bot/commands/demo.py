"""`lphedge demo`: a local chain holding the Safe's positions; a real swap pushes one out of range."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        as_json: Annotated[bool, typer.Option("--json", help="print both readings as JSON")] = False,
    ) -> None:
        """Start a local chain (anvil + real Uniswap v3 + Safe 1.4.1), show the Safe's positions,
        move the WETH/USDC price with a real swap so a position leaves its range, show them again."""
        from bot.commands.positions import render_table
        from bot.devchain import DevChain
        from bot.positions import read_positions

        console = Console(stderr=as_json, width=None if sys.stdout.isatty() else 200)
        with console.status("starting anvil and deploying Uniswap v3, Multicall3 and a 2-of-3 Safe…"):
            chain = DevChain.start()
        try:
            a = chain.addresses
            console.print(
                f"[bold]local chain[/] {chain.url} (chain {chain.chain_id})  Safe {a['safe']}  "
                f"position manager {a['position_manager']}"
            )

            def read() -> list:  # type: ignore[type-arg]
                _, rows = asyncio.run(
                    read_positions([chain.url], a["safe"], a["position_manager"], a["multicall3"])
                )
                return rows

            before = read()
            if not as_json:
                console.print(render_table(before, "Before: the Safe's positions"))
            pool = chain.pools["WETH/USDC/500"]
            target = next(r for r in before if r.position.pool.address == pool and r.metrics.in_range)
            p = target.position
            # WETH falls: push the pool tick past the position's edge on the WETH-cheap side.
            weth_is_token0 = p.pool.token0.symbol == "WETH"
            edge = p.tick_lower - 10 if weth_is_token0 else p.tick_upper + 10
            console.print(
                f"[bold]swap:[/] selling WETH into the pool until tick {edge} "
                f"(position {p.token_id} range {p.tick_lower}..{p.tick_upper}, tick now {p.pool.tick})"
            )
            chain.move_price(pool, edge)
            after = read()
            moved = next(r for r in after if r.position.token_id == p.token_id)
            if as_json:
                json.dump(
                    {"before": [r.to_json() for r in before], "after": [r.to_json() for r in after]},
                    sys.stdout,
                    indent=2,
                )
                sys.stdout.write("\n")
            else:
                console.print(render_table(after, "After the swap"))
                m, pool_state = moved.metrics, moved.position.pool
                state = "in range" if m.in_range else "OUT OF RANGE"
                held0 = m.amount0 / 10**pool_state.token0.decimals
                held1 = m.amount1 / 10**pool_state.token1.decimals
                console.print(
                    f"position {p.token_id} is now {state}: it holds {held0:,.6g} "
                    f"{pool_state.token0.symbol} and {held1:,.6g} {pool_state.token1.symbol} "
                    "(all of it in the token that fell: this is the loss outer protection hedges)."
                )
        finally:
            chain.close()
