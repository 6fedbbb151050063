"""One-shot market observation for `lphedge signals`: a MarketObserver (bot/observe/market.py)
opened, read once and closed. The daemon keeps its own observer across ticks instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when collect runs: `lphedge --help` stays fast
    from bot.observe.market import MarketSnapshot
    from bot.settings import MarketSettings
    from policies.types import Level

# a level last known longer ago than this is no hysteresis state for the next run
STATE_MAX_AGE_S = 86400


async def collect(cfg: MarketSettings, now: int, previous: dict[str, Level | None],
                  engine: Any = None) -> MarketSnapshot:
    """Observe every configured source concurrently and assess the signals, once."""
    from bot.observe.market import MarketConfig, MarketObserver

    async with MarketObserver(MarketConfig.from_settings(cfg), engine=engine) as observer:
        return await observer.read(now, previous)
