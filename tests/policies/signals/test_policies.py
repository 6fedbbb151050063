"""policies/signals: exact values, refusals, and hypothesis properties
(hysteresis, monotone, unknown in -> unknown out)."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from policies import signals as S
from policies.types import Level

DAY = 86400
HOUR = 3600
NOW = 1_700_000_000 - 1_700_000_000 % DAY  # a midnight


# ----------------------------------------------------------------------------- classify
TH = S.Thresholds(elevated=10.0, stress=20.0, crisis=30.0, band=2.0)


def test_classify_entry_and_exit():
    assert S.classify(9.99, TH, None) is Level.CALM
    assert S.classify(10.0, TH, None) is Level.ELEVATED
    assert S.classify(29.9, TH, Level.CALM) is Level.STRESS
    assert S.classify(30.0, TH, None) is Level.CRISIS
    # held inside the band, released below it
    assert S.classify(8.0, TH, Level.ELEVATED) is Level.ELEVATED
    assert S.classify(7.99, TH, Level.ELEVATED) is Level.CALM
    assert S.classify(28.0, TH, Level.CRISIS) is Level.CRISIS
    assert S.classify(27.9, TH, Level.CRISIS) is Level.STRESS
    assert S.classify(17.9, TH, Level.CRISIS) is Level.ELEVATED


def test_thresholds_refuse_bad_config():
    with pytest.raises(ValueError, match="ascend"):
        S.Thresholds(elevated=5, stress=4, crisis=6, band=1)
    with pytest.raises(ValueError, match="band"):
        S.Thresholds(elevated=1, stress=2, crisis=3, band=-1)
    with pytest.raises(ValueError, match="finite"):
        S.Thresholds(elevated=math.nan, stress=2, crisis=3, band=1)


levels = st.sampled_from([None, *Level])
scores = st.floats(-100, 100, allow_nan=False)


@given(target=st.sampled_from(list(Level)),
       path=st.lists(st.floats(0, 0.999), min_size=1, max_size=40))
def test_property_hysteresis_noise_inside_band_never_flips(target, path):
    """Once a level is entered, any path of scores inside its band keeps it."""
    entry = {Level.CALM: 0.0, Level.ELEVATED: 10.0, Level.STRESS: 20.0, Level.CRISIS: 30.0}
    upper = {Level.CALM: 10.0, Level.ELEVATED: 20.0, Level.STRESS: 30.0, Level.CRISIS: 40.0}
    level = S.classify(entry[target], TH, None)
    assert level is target
    low = entry[target] - (TH.band if target is not Level.CALM else 10.0)
    for u in path:  # scores in [entry - band, next entry)
        score = low + u * (upper[target] - low)
        level = S.classify(score, TH, level)
        assert level is target


@given(a=scores, b=scores, prev=levels)
def test_property_monotone_in_score(a, b, prev):
    lo, hi = sorted((a, b))
    assert S.classify(lo, TH, prev) <= S.classify(hi, TH, prev)


@given(score=scores, p1=levels, p2=levels)
def test_property_monotone_in_previous(score, p1, p2):
    rank = lambda p: -1 if p is None else int(p)  # noqa: E731
    lo, hi = sorted((p1, p2), key=rank)
    assert S.classify(score, TH, lo) <= S.classify(score, TH, hi)


# ----------------------------------------------------------------------------- iv_percentile
def daily(values, end=NOW):
    n = len(values)
    return [(end - (n - 1 - i) * DAY, float(v)) for i, v in enumerate(values)]


def test_iv_percentile_exact():
    series = daily(list(range(1, 91)))  # 90 points, latest = 90 = the max
    r = S.iv_percentile(series, NOW)
    assert r.evidence["percentile"] == 100.0 and r.level is Level.CRISIS
    series = daily([*range(1, 90), 62])  # 62 is >= 62 of 1..89 and itself: 63/90 = 70.0
    r = S.iv_percentile(series, NOW)
    assert r.evidence["percentile"] == pytest.approx(70.0)
    assert r.level is Level.ELEVATED and "70th percentile" in r.reason
    r = S.iv_percentile(daily([*range(1, 90), 61]), NOW)
    assert r.level is Level.CALM  # 68.9th


@pytest.mark.parametrize("series,now,why", [
    ([], NOW, "no data"),
    (daily([50.0] * 90, end=NOW - 3 * DAY), NOW, "stale"),
    (daily([*[50.0] * 89, math.nan]), NOW, "NaN"),
    (daily([*[50.0] * 89, -3.0]), NOW, "non-positive"),
    (daily([*[50.0] * 89, 9e9]), NOW, "absurd"),
    (daily([50.0] * 30), NOW, "only 30 points"),
    (daily([50.0] * 90, end=NOW + DAY), NOW, "after now"),
])
def test_iv_percentile_unknown(series, now, why):
    r = S.iv_percentile(series, now)
    assert r.level is None and why in r.reason


# ----------------------------------------------------------------------------- term structure
def test_term_structure_exact_and_refusals():
    asof = NOW
    curve = [(asof + 1 * DAY, 2.0), (asof + 7 * DAY, 0.90), (asof + 30 * DAY, 0.80),
             (asof + 90 * DAY, 0.75)]
    r = S.term_structure(curve, asof, NOW)
    # the 1-day expiry is skipped (min_front_days=2); constant maturities 7d and 30d are
    # listed: 0.90 / 0.80 - 1 = 0.125 (the farthest expiry, 0.75, no longer counts)
    assert r.evidence["short_iv"] == 0.90 and r.evidence["long_iv"] == 0.80
    assert r.evidence["front_iv"] == 0.90 and r.evidence["back_iv"] == 0.75  # as listed
    assert r.evidence["score"] == pytest.approx(0.125)
    assert r.level is Level.STRESS and "backwardation" in r.reason
    # 30d between 7d and 60d: total variance linear in days, by hand:
    # (0.81*7 + (0.49*60 - 0.81*7) * 23/53) / 30 = 0.53225..., sqrt = 0.72956...
    r = S.term_structure([(asof + 7 * DAY, 0.9), (asof + 60 * DAY, 0.7)], asof, NOW)
    w30 = (0.81 * 7 + (0.49 * 60 - 0.81 * 7) * 23 / 53) / 30
    assert r.evidence["long_iv"] == pytest.approx(math.sqrt(w30), rel=1e-12)
    assert r.evidence["score"] == pytest.approx(0.9 / math.sqrt(w30) - 1, rel=1e-12)
    # flat (or 1% backwardation) is not elevated any more: the entry is 5% (issue 13, Q2)
    flat = S.term_structure([(asof + 7 * DAY, 0.808), (asof + 30 * DAY, 0.8)], asof, NOW)
    assert flat.level is Level.CALM
    # expiries that do not reach 7d and 30d within 3 days are unknown, not guessed
    far = S.term_structure([(asof + 12 * DAY, 0.9), (asof + 60 * DAY, 0.7)], asof, NOW)
    assert far.level is None and "do not reach" in far.reason
    r = S.term_structure([(asof + 7 * DAY, 0.6), (asof + 60 * DAY, 0.7)], asof, NOW)
    assert r.level is Level.CALM and "contango" in r.reason
    assert S.term_structure(curve, asof, NOW + HOUR).level is None  # stale chain
    assert "need 2 expiries" in S.term_structure(curve[:2], asof, NOW).reason
    bad = S.term_structure([(asof + 7 * DAY, math.inf), (asof + 60 * DAY, 0.7)], asof, NOW)
    assert bad.level is None and "infinite" in bad.reason


# ----------------------------------------------------------------------------- tvl drop
def hourly(values, end=NOW):
    n = len(values)
    return [(end - (n - 1 - i) * HOUR, float(v)) for i, v in enumerate(values)]


def constant_product(k: float, price: float) -> tuple[float, float]:
    """(ETH, USDC) held by an x*y = k pool at ``price`` USDC per ETH."""
    return math.sqrt(k / price), math.sqrt(k * price)


@pytest.mark.parametrize(("withdrawn", "usd_level", "fixed_level"), [
    (0.0, Level.ELEVATED, Level.CALM),       # price alone: USD TVL -8.3%, fixed prices -0.4%
    (0.10, Level.STRESS, Level.ELEVATED),  # 10% left: USD -17.5% overstates, fixed -10.3%
])
def test_q1_tvl_drop_at_fixed_prices_ignores_the_price_move(withdrawn, usd_level, fixed_level):
    """Issue 13, Q1: ETH 3000 -> 2520 (-16%) over 48 h in a 50/50 (x*y=k) pool holding
    1000 ETH + 3,000,000 USDC. By hand: after the move it holds 1000*sqrt(3000/2520) =
    1091.1 ETH and 3e6*sqrt(2520/3000) = 2,749,545 USDC, $5,499,090 against $6,000,000
    before: USD TVL -8.35%, the trigger, with no liquidity gone. At today's prices the
    same balances are worth $5,520,000 then and $5,499,090 now: -0.38%."""
    k = 1000.0 * 3_000_000.0
    steps = 49
    prices = [3000.0 * (2520.0 / 3000.0) ** (i / (steps - 1)) for i in range(steps)]
    balances = []
    for i, p in enumerate(prices):
        eth, usdc = constant_product(k, p)
        keep = 1.0 - withdrawn if i == steps - 1 else 1.0
        balances.append((NOW - (steps - 1 - i) * HOUR, eth * keep, usdc * keep))
    usd = [(ts, e * p + u) for (ts, e, u), p in zip(balances, prices, strict=True)]
    old = S.tvl_drop(usd, NOW)
    assert old.level is usd_level
    new = S.tvl_drop_at_fixed_prices(balances, (2520.0, 1.0), NOW)
    assert new.level is fixed_level and new.evidence["basis"] == "fixed prices"
    if not withdrawn:
        assert old.evidence["drop"] == pytest.approx(1 - 5_499_090.1 / 6e6, abs=1e-6)
        assert new.evidence["drop"] == pytest.approx(1 - 5_499_090.1 / 5.52e6, abs=1e-6)
    # unknown prices: unknown, never a default
    assert S.tvl_drop_at_fixed_prices(balances, (math.nan, 1.0), NOW).level is None
    assert S.tvl_drop_at_fixed_prices(balances, (2520.0, 0.0), NOW).level is None


def test_tvl_drop_exact():
    series = hourly([100.0] * 40 + [95.0] * 5 + [92.0] * 4)  # 49 hourly points
    r = S.tvl_drop(series, NOW)
    assert r.evidence["drop"] == pytest.approx(0.08) and r.level is Level.ELEVATED
    r = S.tvl_drop(hourly([100.0] * 48 + [70.0]), NOW)
    assert r.level is Level.CRISIS and r.evidence["peak"] == 100.0
    # a peak older than 48 h does not count
    r = S.tvl_drop(hourly([200.0] * 10 + [100.0] * 60), NOW)
    assert r.level is Level.CALM and r.evidence["peak"] == 100.0


def test_tvl_drop_unknown():
    assert "covers" in S.tvl_drop(hourly([100.0] * 5), NOW).reason
    assert S.tvl_drop(hourly([100.0] * 49, end=NOW - 3 * HOUR), NOW).level is None
    assert "negative" in S.tvl_drop(hourly([100.0] * 48 + [-1.0]), NOW).reason
    assert "NaN" in S.tvl_drop(hourly([100.0] * 48 + [math.nan]), NOW).reason


# ----------------------------------------------------------------------------- funding
def tape(rates, interval_h=8, end=NOW):
    n = len(rates)
    return [S.FundingPoint(end - (n - 1 - i) * interval_h * HOUR, r, interval_h)
            for i, r in enumerate(rates)]


def test_funding_exact():
    base = [0.0001, 0.0002] * 45  # 90 points of 8h: mean 0.00015 -> 16.425% APR
    r = S.funding({"binanceusdm": tape([*base, 0.0001])}, NOW)
    v = r.evidence["venues"]["binanceusdm"]
    assert v["current_annualised"] == pytest.approx(0.0001 * 1095)
    assert v["baseline_mean"] == pytest.approx(0.00015 * 1095)
    assert v["baseline_std"] == pytest.approx(0.00005 * 1095)
    assert r.level is Level.CALM
    # a spike of 0.002 per 8h = 219% APR: stress by the absolute level, crisis by z
    r = S.funding({"binanceusdm": tape([*base, 0.002])}, NOW)
    v = r.evidence["venues"]["binanceusdm"]
    assert v["level_abs"] == "stress" and v["level_z"] == "crisis"
    assert r.level is Level.CRISIS
    # hourly venue normalised: 0.0001 per 1h = 87.6% APR
    assert S.FundingPoint(0, 0.0001, 1).annualised == pytest.approx(0.876)


def test_funding_flat_baseline_and_config_refusals():
    """A perfectly flat baseline (std 0) uses the floor: z = (current - mean) / min_std."""
    r = S.funding({"bybit": tape([0.0001] * 90 + [0.0002])}, NOW)
    v = r.evidence["venues"]["bybit"]
    assert v["baseline_std"] == pytest.approx(0.0, abs=1e-12)
    assert v["z"] == pytest.approx((0.0002 - 0.0001) * 1095 / 0.05)
    for bad in ({"min_std": 0.0}, {"min_std": math.nan}, {"recent_hours": 0},
                {"max_age_intervals": -1.0}, {"max_abs_rate": 0.0}):
        with pytest.raises(ValueError, match=f"FundingConfig.{next(iter(bad))} must be"):
            S.FundingConfig(**bad)


def test_funding_unknown_and_partial():
    base = [0.0001] * 90
    assert S.funding({}, NOW).level is None
    stale = S.funding({"okx": tape(base, end=NOW - 17 * HOUR)}, NOW)
    assert stale.level is None and "stale" in stale.reason
    absurd = S.funding({"okx": tape([*base, 0.5])}, NOW)
    assert absurd.level is None and "absurd" in absurd.reason
    nan = S.funding({"okx": tape([*base, math.nan])}, NOW)
    assert nan.level is None and "NaN" in nan.reason
    partial = S.funding({"okx": tape([*base, math.nan]), "bybit": tape(base)}, NOW)
    assert partial.level is Level.CALM and "1 venue(s) unknown" in partial.reason


# ----------------------------------------------------------------------------- depeg
def q(price, source="chainlink:USDC/USD", as_of=NOW, max_age=DAY):
    return S.PegQuote(source, price, as_of, max_age)


def test_depeg_exact_and_sources():
    r = S.depeg("USDC", [q(0.9950), q(0.9999, "binance:USDC/USDT")], NOW)
    assert r.evidence["bps"] == pytest.approx(-50.0) and r.level is Level.ELEVATED
    assert r.evidence["worst_source"] == "chainlink:USDC/USD"
    r = S.depeg("USDC", [q(0.88)], NOW)
    assert r.level is Level.CRISIS
    r = S.depeg("USDC", [q(0.9, as_of=NOW - DAY - 1), q(1.0001, "uniswap:USDC/USDT")], NOW)
    assert r.level is Level.CALM and "1 source(s) unknown" in r.reason
    assert "stale" in r.evidence["sources"]["chainlink:USDC/USD"]["unknown"]
    # a receipt time a few seconds after `now` is clock skew; beyond 5 s it is refused
    assert S.depeg("USDC", [q(0.999, as_of=NOW + 5)], NOW).level is Level.CALM
    assert "after now" in S.depeg("USDC", [q(0.999, as_of=NOW + 6)], NOW).reason


@pytest.mark.parametrize("price,why", [(None, "unknown"), (math.nan, "NaN"),
                                       (-1.0, "non-positive"), (1e6, "absurd"), (0.0, "non")])
def test_depeg_bad_sources_unknown(price, why):
    r = S.depeg("USDT", [q(price)], NOW)
    assert r.level is None and "no fresh valid price source" in r.reason
    assert why in str(r.evidence["sources"])


# ----------------------------------------------------------------------------- rsi/macd
def test_rsi_reference_values():
    assert S.rsi([1.0 + i for i in range(20)]) == 100.0
    assert S.rsi([100.0 - i for i in range(20)]) == 0.0
    # Wilder's classic example (Wilder 1978 via StockCharts): 14-day RSI 70.53
    closes = [44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245,
              45.8433, 46.0826, 45.8931, 46.0328, 45.6140, 46.2820, 46.2820]
    assert S.rsi(closes) == pytest.approx(70.53, abs=0.01)


def test_rsi_macd_secondary_does_not_raise_alone():
    falling = daily([3000.0 * 0.97 ** i for i in range(80)])
    r = S.rsi_macd(falling, NOW)
    assert r.level is not None and r.level >= Level.STRESS and r.evidence["rsi"] < 10
    calm = S.SignalReading(S.IV_PERCENTILE, Level.CALM, "calm")
    regime = S.aggregate("ETH", [calm, r])
    assert regime.level is Level.CALM
    elevated = S.SignalReading(S.FUNDING, Level.ELEVATED, "spike")
    regime = S.aggregate("ETH", [calm, elevated, r])
    assert regime.level is Level.STRESS and "confirmed by rsi_macd" in regime.reason


# ----------------------------------------------------------------------------- aggregate
def test_aggregate_unknowns():
    u = S.SignalReading(S.DEPEG, None, "stale")
    assert S.aggregate("ETH", [u]).level is None
    c = S.SignalReading(S.FUNDING, Level.CALM, "ok")
    r = S.aggregate("ETH", [u, c])
    assert r.level is Level.CALM and "unknown: depeg" in r.reason
    r = S.aggregate("ETH", [u, c], required=[S.DEPEG])
    assert r.level is None and "required" in r.reason


# ----------------------------------------------------------------------------- properties
@settings(max_examples=60, deadline=None)
@given(base=st.lists(st.floats(20, 200), min_size=89, max_size=89),
       latest=st.floats(20, 200), bump=st.floats(0, 100), prev=levels)
def test_property_iv_monotone(base, latest, bump, prev):
    a = S.iv_percentile(daily([*base, latest]), NOW, prev)
    b = S.iv_percentile(daily([*base, latest + bump]), NOW, prev)
    assert a.level is not None and b.level is not None and a.level <= b.level


@settings(max_examples=60, deadline=None)
@given(base=st.lists(st.floats(1e6, 1e9), min_size=48, max_size=48),
       latest=st.floats(1e5, 1e9), cut=st.floats(0, 1), prev=levels)
def test_property_tvl_monotone(base, latest, cut, prev):
    a = S.tvl_drop(hourly([*base, latest]), NOW, prev)
    b = S.tvl_drop(hourly([*base, latest * (1 - cut)]), NOW, prev)
    assert a.level is not None and b.level is not None and a.level <= b.level


@settings(max_examples=60, deadline=None)
@given(prices=st.lists(st.floats(0.5, 1.5), min_size=1, max_size=4),
       i=st.integers(0, 3), push=st.floats(0, 0.4), prev=levels)
def test_property_depeg_monotone(prices, i, push, prev):
    i %= len(prices)
    worse = list(prices)
    worse[i] = prices[i] - push if prices[i] <= 1.0 else prices[i] + push
    assume(worse[i] > 0.1)
    quotes = [q(p, f"s{k}") for k, p in enumerate(prices)]
    worse_q = [q(p, f"s{k}") for k, p in enumerate(worse)]
    a, b = S.depeg("X", quotes, NOW, prev), S.depeg("X", worse_q, NOW, prev)
    assert a.level is not None and b.level is not None and a.level <= b.level


@settings(max_examples=60, deadline=None)
@given(base=st.lists(st.floats(-0.001, 0.001), min_size=90, max_size=90),
       latest=st.floats(-0.003, 0.003), push=st.floats(0, 0.01), prev=levels)
def test_property_funding_monotone(base, latest, push, prev):
    """Moving the latest rate further from zero and from the baseline mean is never better."""
    mean = sum(base) / len(base)
    direction = 1.0 if latest >= max(mean, 0.0) else -1.0 if latest <= min(mean, 0.0) else 0.0
    assume(direction != 0.0)
    a = S.funding({"v": tape([*base, latest])}, NOW, prev)
    b = S.funding({"v": tape([*base, latest + direction * push])}, NOW, prev)
    if b.level is None:  # pushed beyond the absurd bound: unknown, never a lower level
        assert "absurd" in b.reason
        return
    assert a.level is not None and a.level <= b.level


@settings(max_examples=40, deadline=None)
@given(noise=st.lists(st.floats(-0.019, 0.019), min_size=5, max_size=30), prev=levels)
def test_property_depeg_hysteresis_holds_inside_band(noise, prev):
    """After entering at 60 bps, prices moving within the 10 bps band keep the level."""
    first = S.depeg("X", [q(1 - 0.0060)], NOW, prev)
    level = first.level
    for n in noise:  # stays within 50..70 bps when n in (-0.0019..)
        price = 1 - 0.0060 - n / 10
        r = S.depeg("X", [q(price)], NOW, level)
        assert r.level == level
        level = r.level


unknown_series = st.sampled_from(["empty", "stale", "nan", "negative", "future"])


def spoil(series, how):
    if how == "empty":
        return []
    if how == "stale":
        return [(t - 10 * DAY, v) for t, v in series]
    if how == "future":
        return [(t + 10 * DAY, v) for t, v in series]
    bad = math.nan if how == "nan" else -5.0
    return [*series[:-1], (series[-1][0], bad)]


@settings(max_examples=40, deadline=None)
@given(how=unknown_series, prev=levels)
def test_property_unknown_in_unknown_out(how, prev):
    dvol = spoil(daily([60.0] * 90), how)
    assert S.iv_percentile(dvol, NOW, prev).level is None
    tvl = spoil(hourly([1e6] * 49), how)
    assert S.tvl_drop(tvl, NOW, prev).level is None
    px = spoil(daily([3000.0] * 80), how)
    assert S.rsi_macd(px, NOW, prev).level is None
    # negative funding is normal; a "negative" spoil is an absurd -50% per interval here
    f = [S.FundingPoint(t, v / 1e6 if v > 0 or math.isnan(v) else -0.5, 8)
         for t, v in spoil(hourly([100.0] * 90), how)]
    assert S.funding({"v": f}, NOW, prev).level is None
    if how != "empty":
        t, v = spoil([(NOW, 1.0)], how)[0]
        assert S.depeg("X", [q(v, as_of=t)], NOW, prev).level is None
    sigs = [S.iv_percentile(dvol, NOW, prev), S.tvl_drop(tvl, NOW, prev),
            S.rsi_macd(px, NOW, prev)]
    assert S.aggregate("ETH", sigs).level is None


@settings(max_examples=60, deadline=None)
@given(front=st.floats(0.1, 3.0), back=st.floats(0.1, 3.0), bump=st.floats(0, 2.0),
       prev=levels)
def test_property_term_structure_monotone(front, back, bump, prev):
    """A higher front IV (more backwardation) never lowers the level."""
    curve = lambda f: [(NOW + 7 * DAY, f), (NOW + 60 * DAY, back)]  # noqa: E731
    a = S.term_structure(curve(front), NOW, NOW, prev)
    b = S.term_structure(curve(front + bump), NOW, NOW, prev)
    assert a.level is not None and b.level is not None and a.level <= b.level


@settings(max_examples=40, deadline=None)
@given(bad=st.sampled_from([math.nan, math.inf, -0.5, 0.0, 50.0]), prev=levels,
       age=st.integers(0, 900))
def test_property_term_structure_unknown_in_unknown_out(bad, prev, age):
    curve = [(NOW + 7 * DAY, bad), (NOW + 60 * DAY, 0.7)]
    assert S.term_structure(curve, NOW - age, NOW, prev).level is None
    fine = [(NOW + 7 * DAY, 0.8), (NOW + 60 * DAY, 0.7)]
    assert S.term_structure(fine, NOW - 901, NOW, prev).level is None  # stale chain


# ----------------------------------------------------------------------------- indicators
def test_indicators_against_independent_references():
    import statistics

    from policies import indicators as ind

    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    assert ind.percentile_rank(values, 4.0) == 100.0 * 5 / 8  # 3,1,4,1,2 are <= 4
    assert ind.percentile_rank(values, 9.0) == 100.0
    mean, std = ind.mean_std(values)
    assert mean == statistics.fmean(values)
    assert std == pytest.approx(statistics.pstdev(values), rel=1e-15)
    assert ind.zscore(7.0, 5.0, 0.5) == 4.0 and ind.zscore(7.0, 5.0, 0.0, min_std=1.0) == 2.0
    with pytest.raises(ValueError):
        ind.zscore(1.0, 1.0, 0.0)  # a flat baseline without a floor is refused, not inf
    # EMA of a unit step: 1 - (1 - alpha)^n, alpha = 2 / (period + 1)
    step = ind.ema([0.0] + [1.0] * 10, 9)
    assert step == pytest.approx([1 - 0.8 ** n for n in range(11)], rel=1e-12)
    # on a long ramp of slope k the MACD line tends to k * (slow - fast) / 2 and the
    # histogram (line minus its own EMA) to 0
    ramp = [100.0 + 2.0 * i for i in range(600)]
    line = ind.ema(ramp, 12)[-1] - ind.ema(ramp, 26)[-1]
    assert line == pytest.approx(2.0 * (26 - 12) / 2, rel=1e-9)
    assert ind.macd_histogram(ramp) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="needs 15 closes"):
        ind.rsi([1.0] * 14)
    assert ind.resample_closes([(0, 1.0), (10, 2.0), (100, 3.0), (150, 4.0)], 100) == [
        (0, 2.0), (100, 4.0)]


def test_split_keeps_the_public_names():
    """policies.signals still exports what other areas import (classify, Thresholds, rsi)."""
    from policies import indicators, signal_levels

    assert S.classify is signal_levels.classify and S.Thresholds is signal_levels.Thresholds
    assert S.rsi is indicators.rsi and S.resample_closes is indicators.resample_closes
    assert S.EPS == signal_levels.EPS and S.Point == indicators.Point


@settings(max_examples=40, deadline=None)
@given(noise=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=30))
def test_property_tvl_and_term_structure_hysteresis_hold_inside_band(noise):
    """Through the signal functions themselves: once elevated, inputs whose score stays
    inside [entry - band, next entry) keep the level, the score's own path notwithstanding."""
    # TVL: elevated at an 8% drop; band 2%, stress at 15%: drops in [6%, 15%) keep it
    level = S.tvl_drop(hourly([100.0] * 48 + [92.0]), NOW).level
    assert level is Level.ELEVATED
    for u in noise:
        drop = 0.06 + u * 0.0899
        r = S.tvl_drop(hourly([100.0] * 48 + [100.0 * (1 - drop)]), NOW, level)
        assert r.level is Level.ELEVATED, (drop, r.reason)
        level = r.level
    # term structure: elevated at 5% backwardation (7d vs 30d); band 0.03, stress at 0.10
    level = S.term_structure([(NOW + 7 * DAY, 0.84), (NOW + 30 * DAY, 0.80)], NOW, NOW).level
    assert level is Level.ELEVATED
    for u in noise:
        score = 0.02 + u * 0.0799
        curve = [(NOW + 7 * DAY, 0.80 * (1 + score)), (NOW + 30 * DAY, 0.80)]
        r = S.term_structure(curve, NOW, NOW, level)
        assert r.level is Level.ELEVATED, (score, r.reason)
        level = r.level
