"""The synthetic Deribit chain: calendar, skew, spreads and fees against hand-known values."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.backtest.chain import Chain, Params, expiries
from bot.backtest.data import BacktestError
from policies.pricing import OptionKind


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_calendar_dailies_fridays_last_fridays_quarterlies_at_0800() -> None:
    p = Params.load()
    got = expiries(_ts("2022-06-08T10:00:00"), p)  # a Wednesday
    want = sorted({_ts(d + "T08:00:00") for d in (
        "2022-06-09", "2022-06-10", "2022-06-11",  # 3 dailies
        "2022-06-10", "2022-06-17", "2022-06-24", "2022-07-01",  # 4 Friday weeklies
        "2022-06-24", "2022-07-29", "2022-08-26",  # 3 monthlies (last Fridays)
        "2022-06-24", "2022-09-30", "2022-12-30", "2023-03-31")})  # 4 quarterlies
    assert got == want
    # at 08:00 sharp on an expiry Friday, that expiry is gone
    assert _ts("2022-06-24T08:00:00") not in expiries(_ts("2022-06-24T08:00:00"), p)
    assert expiries(_ts("2022-06-24T07:00:00"), p)[0] == _ts("2022-06-24T08:00:00")


def test_put_skew_at_25_delta_and_term_structure() -> None:
    p = Params.load()
    now = _ts("2022-06-08T08:00:00")
    expiry = now + 30 * 86400
    calm = Chain(p, now, 2000.0, 50.0)  # below calm_dvol: the calm shape
    atm = (50.0 - 2.0) / 100  # DVOL minus the 2-point haircut
    assert calm.iv(2000.0, expiry) == pytest.approx(atm)
    k25 = 2000.0 * math.exp(-0.675 * atm * math.sqrt(30 / 365))
    assert 100 * (calm.iv(k25, expiry) - atm) == pytest.approx(5.0)  # +5 points (3..7)
    stress = Chain(p, now, 2000.0, 120.0)  # above stress_dvol: steeper skew, inverted term
    atm_s = (120.0 - 2.0) / 100
    k25s = 2000.0 * math.exp(-0.675 * atm_s * math.sqrt(30 / 365))
    assert 100 * (stress.iv(k25s, expiry) - atm_s) == pytest.approx(10.0)
    assert stress.iv(2000.0, now + 7 * 86400) > stress.iv(2000.0, expiry)  # inverted
    assert calm.iv(2000.0, now + 7 * 86400) < calm.iv(2000.0, expiry)  # contango


def test_spread_widens_with_vol_and_fees_are_capped() -> None:
    p = Params.load()
    now = _ts("2022-06-08T08:00:00")
    exp = now + 30 * 86400

    def rel_spread(dvol: float) -> float:
        bid, ask, _ = Chain(p, now, 2000.0, dvol).bid_ask(OptionKind.PUT, 1600.0, exp)
        return (ask - bid) / ((ask + bid) / 2)

    assert rel_spread(120.0) > rel_spread(50.0)


def test_fills_through_policies_fills_with_venue_fees() -> None:
    """Hand-computed: Deribit 0.03% of the underlying per contract capped at 12.5% of the
    price; Binance USD-M taker 0.05% of notional; a zero bid sells for nothing."""
    from bot.backtest.engine import _buy, _perp_fee, _sell

    assert _buy(100.0, Decimal("10"), 2000.0) == (1000.0, 6.0)  # 10 x min(0.60, 12.50)
    assert _buy(2.0, Decimal("10"), 2000.0) == (20.0, 2.5)  # 10 x min(0.60, 0.25)
    assert _buy(1.234, Decimal("0.1"), 2000.0) == (0.13, 0.02)  # cents rounded up
    assert _sell(1.239, Decimal("0.1"), 2000.0) == (0.12, 0.02)  # proceeds rounded down
    assert _sell(0.0, Decimal("5"), 2000.0) == (0.0, 0.0)
    assert _perp_fee("binanceusdm", Decimal("-10"), 2000.0) == 10.0
    assert _perp_fee("hyperliquid", Decimal("10"), 2000.0) == 9.0
    with pytest.raises(BacktestError, match="perp venue 'nowhere'"):
        _perp_fee("nowhere", Decimal("1"), 2000.0)
