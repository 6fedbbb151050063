"""Black-76 against published values, the stdlib normal distribution, parity and finite
differences; exposures against policies.lp_math's exact amounts in both pool orientations."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.exposure import exposure
from policies.hedge import HedgeBook, OptionHolding, OptionQuote, PerpHolding
from policies.lp_math import (
    amount1_delta,
    amounts_for_liquidity,
    get_sqrt_ratio_at_tick,
    position_metrics,
)
from policies.policy_file import Coverage
from policies.pricing import OptionKind, black76, implied_vol, norm_cdf, year_fraction
from policies.risk import aggregate_greeks
from tests.policies.alvh import factory as f

PUT, CALL = OptionKind.PUT, OptionKind.CALL


def test_hull_black76_futures_put() -> None:
    # Hull, Options Futures and Other Derivatives: European put on a futures contract,
    # F = K = 20, r = 9%, T = 4 months, sigma = 25% -> 1.12
    g = black76(PUT, 20.0, 20.0, 4 / 12, 0.25, r=0.09)
    assert round(g.price, 2) == 1.12
    assert g.price == pytest.approx(1.1166, abs=1e-4)


def test_haug_black76_example() -> None:
    # Haug, The Complete Guide to Option Pricing Formulas, Black-76 example: F = K = 19,
    # T = 0.75, r = 10%, sigma = 28% -> call = put = 1.7011
    c = black76(CALL, 19.0, 19.0, 0.75, 0.28, r=0.10)
    p = black76(PUT, 19.0, 19.0, 0.75, 0.28, r=0.10)
    assert round(c.price, 4) == round(p.price, 4) == 1.7011


@pytest.mark.parametrize(("f_", "sigma", "days"), [(3000.0, 0.65, 30), (95_000.0, 0.5, 2),
                                                   (1.0, 1.2, 365)])
def test_at_the_money_closed_form(f_: float, sigma: float, days: int) -> None:
    """r = 0, K = F: d1 = -d2 = s/2 with s = sigma sqrt(t), so by hand (stdlib NormalDist):
    C = P = F (2 N(s/2) - 1), call delta N(s/2), put delta N(s/2) - 1,
    gamma = pdf(s/2) / (F s), vega = F pdf(s/2) sqrt(t), theta = -F pdf(s/2) sigma / (2 sqrt(t))."""
    nd = NormalDist()
    t = days / 365
    s = sigma * math.sqrt(t)
    c, p = black76(CALL, f_, f_, t, sigma), black76(PUT, f_, f_, t, sigma)
    assert c.price == pytest.approx(f_ * (2 * nd.cdf(s / 2) - 1), rel=1e-12)
    assert p.price == pytest.approx(c.price, rel=1e-12)
    assert c.delta == pytest.approx(nd.cdf(s / 2), rel=1e-12)
    assert p.delta == pytest.approx(nd.cdf(s / 2) - 1, rel=1e-12)
    for g in (c, p):
        assert g.gamma == pytest.approx(nd.pdf(s / 2) / (f_ * s), rel=1e-12)
        assert g.vega == pytest.approx(f_ * nd.pdf(s / 2) * math.sqrt(t), rel=1e-12)
        assert g.theta == pytest.approx(-f_ * nd.pdf(s / 2) * sigma / (2 * math.sqrt(t)),
                                        rel=1e-12)


def test_norm_cdf_matches_the_standard_library() -> None:
    nd = NormalDist()
    for i in range(-800, 801):
        x = i / 100
        assert norm_cdf(x) == pytest.approx(nd.cdf(x), abs=1e-14)


@settings(max_examples=300, deadline=None)
@given(st.floats(10, 10_000), st.floats(0.3, 3.0),
       st.floats(1 / 365, 2.0), st.floats(0.05, 3.0),
       st.floats(-0.05, 0.2))
def test_parity_bounds_and_finite_difference_greeks(f_: float, k_ratio: float, t: float,
                                                    sigma: float, r: float) -> None:
    k = f_ * k_ratio
    c, p = black76(CALL, f_, k, t, sigma, r), black76(PUT, f_, k, t, sigma, r)
    df = math.exp(-r * t)
    assert c.price - p.price == pytest.approx(df * (f_ - k), abs=1e-9 * f_)
    assert df * max(f_ - k, 0) - 1e-9 * f_ <= c.price <= df * f_ + 1e-9 * f_
    assert df * max(k - f_, 0) - 1e-9 * f_ <= p.price <= df * k + 1e-9 * f_
    for kind, g in ((CALL, c), (PUT, p)):
        # the step is small against the distribution's width F sigma sqrt(t), not against F
        # alone (a fixed F * 1e-4 failed at sigma sqrt(t) = 0.5%: truncation, not the code)
        h = f_ * 1e-3 * min(1.0, sigma * math.sqrt(t))
        up, dn = black76(kind, f_ + h, k, t, sigma, r), black76(kind, f_ - h, k, t, sigma, r)
        assert g.delta == pytest.approx((up.price - dn.price) / (2 * h), abs=1e-5)
        assert g.gamma == pytest.approx((up.delta - dn.delta) / (2 * h), rel=1e-3, abs=1e-9)
        hv = 1e-5
        vu, vd = black76(kind, f_, k, t, sigma + hv, r), black76(kind, f_, k, t, sigma - hv, r)
        assert g.vega == pytest.approx((vu.price - vd.price) / (2 * hv), rel=1e-4, abs=1e-6 * f_)
        ht = 1e-6
        tu, td = black76(kind, f_, k, t + ht, sigma, r), black76(kind, f_, k, t - ht, sigma, r)
        assert g.theta == pytest.approx(-(tu.price - td.price) / (2 * ht), rel=1e-3,
                                        abs=1e-5 * f_)
    assert c.gamma == pytest.approx(p.gamma) and c.vega == pytest.approx(p.vega)


@settings(max_examples=200, deadline=None)
@given(st.floats(100, 5000), st.floats(0.5, 1.5),
       st.floats(2 / 365, 1.0), st.floats(0.1, 2.0),
       st.sampled_from([PUT, CALL]))
def test_implied_vol_round_trip(f_: float, k_ratio: float, t: float, sigma: float,
                                kind: OptionKind) -> None:
    k = f_ * k_ratio
    g = black76(kind, f_, k, t, sigma)
    if g.vega < 1e-6 * f_:  # deep in/out of the money: the price does not pin the vol
        return
    iv = implied_vol(kind, g.price, f_, k, t)
    assert iv is not None and iv == pytest.approx(sigma, rel=1e-6)


def test_expiry_and_unknown_implied_vol() -> None:
    assert black76(PUT, 90, 100, 0.0, 0.5).price == 10
    assert black76(CALL, 90, 100, 0.0, 0.5).price == 0
    assert black76(PUT, 90, 100, 0.0, 0.5).delta == -1
    assert implied_vol(PUT, 40, 50, 100, 0.5) is None  # below intrinsic: no vol gives it
    assert implied_vol(PUT, 60, 100, 50, 0.5) is None  # above the strike bound
    assert implied_vol(PUT, 5, 100, 100, 0.0) is None
    assert year_fraction(0, 365 * 86400) == 1.0 and year_fraction(10, 5) == 0.0
    with pytest.raises(ValueError):
        black76(PUT, -1, 100, 1, 0.5)
    with pytest.raises(ValueError):
        black76(PUT, 100, 100, 1, math.nan)


# ------------------------------------------------------------------ exposures


COVER_T0 = Coverage(underlying="ETH", quote="USDT", pool=f.POOL_T0, underlying_token="token0")
COVER_T1 = Coverage(underlying="ETH", quote="USDC", pool=f.POOL_T1, underlying_token="token1")


@settings(max_examples=150, deadline=None)
@given(st.floats(500, 8000), st.floats(0.4, 1.4),
       st.floats(0.02, 2.0), st.floats(0.1, 500))
def test_exposure_token0_matches_position_metrics(spot: float, lo: float, width: float,
                                                  x: float) -> None:
    pos = f.position(1, f.pool(spot, eth_is_token0=True), spot * lo, spot * lo * (1 + width), x)
    e, m = exposure(pos, COVER_T0), position_metrics(pos)
    assert e.x_max == m.x_max and e.in_range == m.in_range
    assert (e.spot, e.lower, e.upper) == pytest.approx((m.price, m.price_lower, m.price_upper),
                                                       rel=1e-12)
    assert e.delta == pytest.approx(m.delta, rel=1e-9, abs=1e-12)
    assert e.gamma == pytest.approx(m.gamma, rel=1e-9, abs=1e-15)
    assert e.value_usd == pytest.approx(m.value, rel=1e-9, abs=1e-6)
    assert e.x_max == pytest.approx(x, rel=1e-6)


@settings(max_examples=150, deadline=None)
@given(st.floats(500, 8000), st.floats(0.4, 1.4),
       st.floats(0.02, 2.0), st.floats(0.1, 500))
def test_exposure_token1_matches_exact_pool_amounts(spot: float, lo: float, width: float,
                                                    x: float) -> None:
    """USDC/WETH: ETH is token1; delta = the WETH the position holds, exactly."""
    pool = f.pool(spot)
    pos = f.position(1, pool, spot * lo, spot * lo * (1 + width), x)
    e = exposure(pos, COVER_T1)
    a0, a1 = amounts_for_liquidity(pool.sqrt_price_x96, pool.tick, pos.tick_lower,
                                   pos.tick_upper, pos.liquidity)
    sa, sb = get_sqrt_ratio_at_tick(pos.tick_lower), get_sqrt_ratio_at_tick(pos.tick_upper)
    assert e.x_max == amount1_delta(sa, sb, pos.liquidity, False) / 1e18
    assert e.x_max == pytest.approx(x, rel=1e-6)
    assert e.delta == pytest.approx(a1 / 1e18, rel=1e-9, abs=1e-9)
    assert e.value_usd == pytest.approx(a0 / 1e6 + a1 / 1e18 * e.spot, rel=1e-9, abs=1e-6)
    assert e.spot == pytest.approx(spot, rel=2e-4)  # the pool sits on a whole tick
    # the pool's active range [tick_lower, tick_upper) is (lower, upper] in ETH's USD price
    # (token1: the price inverts), so a pool sitting exactly on tick_upper (spot = lower)
    # is out of range (hypothesis found spot 3364.25 on the edge)
    assert e.lower < e.upper and e.in_range == (e.lower < e.spot <= e.upper)
    if e.lower < e.spot < e.upper:  # gamma against a finite difference of exact amounts
        moved = []
        for dt in (-20, 20):
            p2 = replace(pool, tick=pool.tick + dt,
                         sqrt_price_x96=get_sqrt_ratio_at_tick(pool.tick + dt))
            e2 = exposure(replace(pos, pool=p2), COVER_T1)
            if not e2.lower < e2.spot < e2.upper:
                return
            moved.append(e2)
        fd = (moved[1].delta - moved[0].delta) / (moved[1].spot - moved[0].spot)
        assert e.gamma == pytest.approx(fd, rel=2e-3)
        assert e.gamma < 0


# ------------------------------------------------------------------ greeks over the book


def test_book_greeks_sum_lp_options_and_perps_and_unknown_stays_unknown() -> None:
    """Two ATM puts (r = 0: value and delta by hand), an expired put and another
    underlying's option (ignored), perps on two venues; then one held option without a
    quote makes the options' greeks and the net delta unknown, never zero."""
    nd = NormalDist()
    now, fwd, iv = f.NOW, 3000.0, 0.6
    atm = f.instrument("deribit", fwd, 30)
    atm2 = f.instrument("derive", fwd, 30)
    dead = f.instrument("deribit", 2500, -1)
    btc = replace(f.instrument("deribit", 90_000, 30), underlying="BTC", symbol="BTC-X")
    q = {i.key: OptionQuote(i, 1.0, 1.1, iv, 100.0, fwd, now) for i in (atm, atm2, btc)}
    book = HedgeBook(
        options=(OptionHolding(atm, Decimal("2.5"), "intermediate"),
                 OptionHolding(atm2, Decimal("1.5"), "intermediate"),
                 OptionHolding(dead, Decimal("7"), "short"),
                 OptionHolding(btc, Decimal("1"), "short")),
        perps=(PerpHolding("hyperliquid", "ETH", Decimal("-3.25")),
               PerpHolding("binanceusdm", "ETH", Decimal("1")),
               PerpHolding("hyperliquid", "BTC", Decimal("-9"))))
    s = iv * math.sqrt((atm.expiry - now) / (365 * 86400))
    g = aggregate_greeks("ETH", now, 50_000.0, 12.0, -0.01, book, q)
    assert g.unknown == ()
    assert g.options_value_usd == pytest.approx(4 * fwd * (2 * nd.cdf(s / 2) - 1), rel=1e-12)
    assert g.options_delta == pytest.approx(4 * (nd.cdf(s / 2) - 1), rel=1e-12)
    assert g.options_gamma == pytest.approx(4 * nd.pdf(s / 2) / (fwd * s), rel=1e-12)
    assert g.perp_delta == -2.25
    assert g.net_delta == pytest.approx(12.0 + 4 * (nd.cdf(s / 2) - 1) - 2.25, rel=1e-12)
    assert (g.lp_value_usd, g.lp_delta, g.lp_gamma) == (50_000.0, 12.0, -0.01)

    assert aggregate_greeks("ETH", now, 50_000.0, 12.0, -0.01, book, q, 300) == g  # fresh
    stale = {**q, atm2.key: replace(q[atm2.key], as_of=now - 301)}
    assert aggregate_greeks("ETH", now, 50_000.0, 12.0, -0.01, book, stale, 301) == g
    for missing in (None, replace(q[atm2.key], mark_iv=None), replace(q[atm2.key], forward=None),
                    replace(q[atm2.key], mark_iv=math.nan), "stale", "future"):
        quotes = {**q}
        if missing is None:
            del quotes[atm2.key]
        elif missing == "stale":
            quotes[atm2.key] = replace(q[atm2.key], as_of=now - 301)
        elif missing == "future":
            quotes[atm2.key] = replace(q[atm2.key], as_of=now + 1)
        else:
            assert isinstance(missing, OptionQuote)
            quotes[atm2.key] = missing
        u = aggregate_greeks("ETH", now, 50_000.0, 12.0, -0.01, book, quotes, 300)
        assert u.options_value_usd is None and u.options_delta is None and u.net_delta is None
        assert u.options_gamma is None and u.options_vega is None
        assert u.unknown and atm2.symbol in u.unknown[0]
        assert u.perp_delta == -2.25 and u.lp_delta == 12.0  # what is known stays known
