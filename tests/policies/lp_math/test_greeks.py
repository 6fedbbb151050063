"""Float greeks: finite differences, continuity, agreement with the exact integer amounts."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.lp_math import (
    amounts_for_liquidity,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    lp_delta,
    lp_gamma,
    lp_value,
    price_at_sqrt_ratio,
    x_max_raw,
)

liqs = st.floats(1.0, 1e25)
log_pa = st.floats(-20.0, 20.0)
log_width = st.floats(math.log(1.01), math.log(100.0))
frac = st.floats(0.05, 0.95)


def _fd(f: Callable[[float], float], p: float, h: float) -> float:
    return (f(p + h) - f(p - h)) / (2.0 * h)


@st.composite
def region_inputs(draw: st.DrawFn, region: str) -> tuple[float, float, float, float]:
    L = draw(liqs)
    pa = math.exp(draw(log_pa))
    pb = pa * math.exp(draw(log_width))
    u = draw(frac)
    if region == "below":
        p = pa * (0.1 + 0.85 * u)
    elif region == "in":
        p = pa + (pb - pa) * u
    else:
        p = pb * (1.05 + 10 * u)
    return L, p, pa, pb


@pytest.mark.parametrize("region", ["below", "in", "above"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_delta_and_gamma_are_finite_differences(region: str, data: st.DataObject) -> None:
    L, p, pa, pb = data.draw(region_inputs(region))
    gap = min(abs(p - pa), abs(p - pb))
    h = min(p * 1e-5, gap / 10)

    def value(x: float) -> float:
        return lp_value(L, x, pa, pb)

    def delta(x: float) -> float:
        return lp_delta(L, x, pa, pb)

    d = lp_delta(L, p, pa, pb)
    g = lp_gamma(L, p, pa, pb)
    scale_d = L / math.sqrt(pa)  # size of delta in this range
    assert math.isclose(_fd(value, p, h), d, rel_tol=1e-5, abs_tol=1e-7 * scale_d)
    scale_g = L / (p * math.sqrt(p))
    assert math.isclose(_fd(delta, p, h), g, rel_tol=1e-4, abs_tol=1e-6 * scale_g)
    if region == "below":
        assert d == pytest.approx(L * (1 / math.sqrt(pa) - 1 / math.sqrt(pb)))
        assert g == 0.0
    elif region == "above":
        assert d == 0.0 and g == 0.0
        assert lp_value(L, p, pa, pb) == pytest.approx(L * (math.sqrt(pb) - math.sqrt(pa)))
    else:
        assert g < 0.0 < d


@settings(max_examples=200, deadline=None)
@given(liqs, log_pa, log_width)
def test_value_and_delta_continuous_at_range_edges(L: float, lpa: float, lw: float) -> None:
    pa = math.exp(lpa)
    pb = pa * math.exp(lw)
    for edge in (pa, pb):
        lo, hi = edge * (1 - 1e-12), edge * (1 + 1e-12)
        v = lp_value(L, edge, pa, pb)
        assert math.isclose(lp_value(L, lo, pa, pb), v, rel_tol=1e-9)
        assert math.isclose(lp_value(L, hi, pa, pb), v, rel_tol=1e-9)
        dscale = L / math.sqrt(pa)
        d = lp_delta(L, edge, pa, pb)
        assert math.isclose(lp_delta(L, lo, pa, pb), d, rel_tol=1e-6, abs_tol=1e-9 * dscale)
        assert math.isclose(lp_delta(L, hi, pa, pb), d, rel_tol=1e-6, abs_tol=1e-9 * dscale)
    # the inside formula evaluated exactly on the edges equals the outside ones

    def inside(x: float) -> float:
        return L * (2 * math.sqrt(x) - x / math.sqrt(pb) - math.sqrt(pa))

    assert math.isclose(inside(pa), lp_value(L, pa * (1 - 1e-15), pa, pb), rel_tol=1e-9)
    assert math.isclose(inside(pb), lp_value(L, pb * (1 + 1e-15), pa, pb), rel_tol=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-400_000, 400_000),
    st.integers(1, 50_000),
    st.integers(-450_000, 450_000),
    st.integers(10**18, 2**127),
)
def test_float_greeks_agree_with_exact_amounts(lo: int, width: int, t: int, liq: int) -> None:
    """value = amount0 * p + amount1 and delta = amount0 (token0 held), in every region."""
    up = lo + width
    sqrt = get_sqrt_ratio_at_tick(t) + 12345
    tick = get_tick_at_sqrt_ratio(sqrt)
    a0, a1 = amounts_for_liquidity(sqrt, tick, lo, up, liq)
    p = price_at_sqrt_ratio(sqrt)
    pa = price_at_sqrt_ratio(get_sqrt_ratio_at_tick(lo))
    pb = price_at_sqrt_ratio(get_sqrt_ratio_at_tick(up))
    L = float(liq)
    value = lp_value(L, p, pa, pb)
    exact_value = a0 * p + a1
    # the integer amounts are rounded down: each is at most 1 raw unit below the real value
    assert math.isclose(value, exact_value, rel_tol=1e-8, abs_tol=2 * (p + 1))
    xmax = x_max_raw(liq, lo, up)
    assert math.isclose(lp_delta(L, p, pa, pb), a0, rel_tol=1e-8, abs_tol=2)
    if tick < lo:
        assert a0 == xmax
        assert math.isclose(lp_delta(L, p, pa, pb), xmax, rel_tol=1e-8, abs_tol=2)


@pytest.mark.parametrize(
    ("p", "pa", "pb"),
    [
        (1.0, 2.0, 2.0),
        (1.0, 3.0, 2.0),
        (0.0, 1.0, 2.0),
        (-1.0, 1.0, 2.0),
        (1.0, 0.0, 2.0),
        (1.0, -1.0, 2.0),
    ],
)
def test_bad_prices_refused(p: float, pa: float, pb: float) -> None:
    for fn in (lp_value, lp_delta, lp_gamma):
        with pytest.raises(ValueError, match="need 0 < pa < pb and p > 0"):
            fn(1.0, p, pa, pb)
