"""bot/market_store.py: hysteresis state across runs and TVL samples (SQLite in memory)."""

from __future__ import annotations

from bot.db import open_engine
from bot.market_store import MarketStore
from policies import signals as S
from policies.types import Level

T = 1_700_000_000


def test_unknown_run_keeps_the_last_known_level_for_a_day():
    engine = open_engine("sqlite://")
    MarketStore(engine).save_levels({"ETH:funding": Level.CRISIS, "ETH:depeg": None}, T)
    MarketStore(engine).save_levels({"ETH:funding": None}, T + 600)  # venue hiccup
    assert MarketStore(engine).load_levels() == {"ETH:funding": Level.CRISIS,
                                                "ETH:depeg": None}
    # the kept level is stamped when it was known: it expires a day after that
    assert MarketStore(engine).load_levels(T + 86400, 86400)["ETH:funding"] is Level.CRISIS
    assert MarketStore(engine).load_levels(T + 86401, 86400)["ETH:funding"] is None
    # a known level replaces it, a calm one too
    MarketStore(engine).save_levels({"ETH:funding": Level.CALM}, T + 700)
    assert MarketStore(engine).load_levels(T + 800, 86400)["ETH:funding"] is Level.CALM


def test_hysteresis_survives_an_unknown_run():
    """CRISIS held inside its band (score 2.45 >= 2.50 - 0.10), one unknown run, then the
    same score: still CRISIS. Resetting the state on the unknown run gave STRESS."""
    th = S.FundingConfig().absolute
    engine = open_engine("sqlite://")
    held = S.classify(2.45, th, Level.CRISIS)
    assert held is Level.CRISIS and S.classify(2.45, th, None) is Level.STRESS
    MarketStore(engine).save_levels({"ETH:funding": held}, T)
    MarketStore(engine).save_levels({"ETH:funding": None}, T + 3600)
    previous = MarketStore(engine).load_levels(T + 7200, 86400)["ETH:funding"]
    assert S.classify(2.45, th, previous) is Level.CRISIS


def test_tvl_samples_idempotent_and_ordered():
    engine = open_engine("sqlite://")
    for ts, v in ((T + 7200, 3.0), (T, 1.0), (T + 3600, 2.0)):
        assert MarketStore(engine).record_tvl("tvl:x", ts, v, "test") is True
    assert MarketStore(engine).record_tvl("tvl:x", T, 9.0, "test") is False  # kept first
    assert MarketStore(engine).tvl_series("tvl:x", T + 1) == [(T + 3600, 2.0), (T + 7200, 3.0)]
    assert MarketStore(engine).tvl_series("tvl:y", 0) == []
