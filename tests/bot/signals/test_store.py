"""bot/market_store.py: hysteresis state across runs and TVL samples (SQLite in memory)."""

from __future__ import annotations

from bot import market_store
from bot.db import open_engine
from policies import signals as S
from policies.types import Level

T = 1_700_000_000


def test_unknown_run_keeps_the_last_known_level_for_a_day():
    engine = open_engine("sqlite://")
    market_store.save_levels(engine, {"ETH:funding": Level.CRISIS, "ETH:depeg": None}, T)
    market_store.save_levels(engine, {"ETH:funding": None}, T + 600)  # venue hiccup
    assert market_store.load_levels(engine) == {"ETH:funding": Level.CRISIS,
                                                "ETH:depeg": None}
    # the kept level is stamped when it was known: it expires a day after that
    assert market_store.load_levels(engine, T + 86400, 86400)["ETH:funding"] is Level.CRISIS
    assert market_store.load_levels(engine, T + 86401, 86400)["ETH:funding"] is None
    # a known level replaces it, a calm one too
    market_store.save_levels(engine, {"ETH:funding": Level.CALM}, T + 700)
    assert market_store.load_levels(engine, T + 800, 86400)["ETH:funding"] is Level.CALM


def test_hysteresis_survives_an_unknown_run():
    """CRISIS held inside its band (score 2.45 >= 2.50 - 0.10), one unknown run, then the
    same score: still CRISIS. Resetting the state on the unknown run gave STRESS."""
    th = S.FundingConfig().absolute
    engine = open_engine("sqlite://")
    held = S.classify(2.45, th, Level.CRISIS)
    assert held is Level.CRISIS and S.classify(2.45, th, None) is Level.STRESS
    market_store.save_levels(engine, {"ETH:funding": held}, T)
    market_store.save_levels(engine, {"ETH:funding": None}, T + 3600)
    previous = market_store.load_levels(engine, T + 7200, 86400)["ETH:funding"]
    assert S.classify(2.45, th, previous) is Level.CRISIS


def test_tvl_samples_idempotent_and_ordered():
    engine = open_engine("sqlite://")
    for ts, v in ((T + 7200, 3.0), (T, 1.0), (T + 3600, 2.0)):
        assert market_store.record_tvl(engine, "tvl:x", ts, v, "test") is True
    assert market_store.record_tvl(engine, "tvl:x", T, 9.0, "test") is False  # kept first
    assert market_store.tvl_series(engine, "tvl:x", T + 1) == [(T + 3600, 2.0), (T + 7200, 3.0)]
    assert market_store.tvl_series(engine, "tvl:y", 0) == []
