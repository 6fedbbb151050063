"""Observers: long-lived readers that own their connections and caches across ticks and
return frozen, typed snapshots. They never speak of CLI flags; commands/ maps their errors."""

from bot.observe.errors import ObserveError
from bot.observe.market import MarketConfig, MarketObserver, MarketSnapshot, SignalObservation
from bot.observe.positions import PositionReading, PositionsObserver, PositionsSnapshot

__all__ = ["MarketConfig", "MarketObserver", "MarketSnapshot", "ObserveError", "PositionReading",
           "PositionsObserver", "PositionsSnapshot", "SignalObservation"]
