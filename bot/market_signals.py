"""One-shot market observation for `lphedge signals`: a MarketObserver (bot/observe/market.py)
opened, read once and closed. The daemon keeps its own observer across ticks instead."""

from __future__ import annotations

from typing import Any

from bot.observe.market import MarketConfig, MarketObserver
from bot.settings import MarketSettings
from policies.types import Level

# a level last known longer ago than this is no hysteresis state for the next run
STATE_MAX_AGE_S = 86400


async def collect(cfg: MarketSettings, now: int, previous: dict[str, Level | None],
                  engine: Any = None) -> dict[str, Any]:
    """Observe every configured source concurrently and assess the signals, once."""
    async with MarketObserver(MarketConfig.from_settings(cfg), engine=engine) as observer:
        snapshot = await observer.read(now, previous)
    return snapshot.as_result()


def state_keys(result: dict[str, Any]) -> dict[str, Level | None]:
    """Hysteresis state of a collect() result: "<subject or underlying>:<signal>" -> level."""
    levels: dict[str, Level | None] = {}
    groups = [(r.underlying, r.signals) for r in result["regimes"]]
    for underlying, signals in [*groups, ("shared", tuple(result["shared"]))]:
        for s in signals:
            subject = s.evidence.get("subject")
            levels[f"{subject if subject is not None else underlying}:{s.name}"] = s.level
    return levels
