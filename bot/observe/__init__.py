"""Observers: long-lived readers that own their connections and caches across ticks and
return frozen, typed snapshots. They never speak of CLI flags; commands/ maps their errors.

Exports are imported on first use (PEP 562), so importing ``bot.observe.errors`` (as the CLI
does at start-up) does not load web3 and the market adapters."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.observe.errors import ObserveError
    from bot.observe.market import MarketConfig, MarketObserver, MarketSnapshot, SignalObservation
    from bot.observe.positions import PositionReading, PositionsObserver, PositionsSnapshot

_WHERE = {
    "ObserveError": "bot.observe.errors",
    "MarketConfig": "bot.observe.market", "MarketObserver": "bot.observe.market",
    "MarketSnapshot": "bot.observe.market", "SignalObservation": "bot.observe.market",
    "PositionReading": "bot.observe.positions", "PositionsObserver": "bot.observe.positions",
    "PositionsSnapshot": "bot.observe.positions",
}
__all__ = ["MarketConfig", "MarketObserver", "MarketSnapshot", "ObserveError", "PositionReading",
           "PositionsObserver", "PositionsSnapshot", "SignalObservation"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
