"""Observers: long-lived readers that own their connections and caches across ticks and
return frozen, typed snapshots. They never speak of CLI flags; commands/ maps their errors."""

from bot.observe.errors import ObserveError
from bot.observe.positions import PositionReading, PositionsObserver, PositionsSnapshot

__all__ = ["ObserveError", "PositionReading", "PositionsObserver", "PositionsSnapshot"]
