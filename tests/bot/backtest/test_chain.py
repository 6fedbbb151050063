"""The synthetic Deribit chain: calendar, skew, spreads and fees against hand-known values."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from bot.backtest.chain import Chain, Params, delivery_fee, expiries, trade_fee
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
    # 0.03% of 2000 = 0.60 per ETH, unless 12.5% of the price is less
    assert trade_fee(p, 2000.0, 100.0) == pytest.approx(0.60)
    assert trade_fee(p, 2000.0, 2.0) == pytest.approx(0.25)
    assert delivery_fee(p, 2000.0, 300.0) == pytest.approx(0.30)  # 0.015%
    assert delivery_fee(p, 2000.0, 1.0) == pytest.approx(0.125)
