"""No look-ahead as a property: changing every input that becomes known after t leaves
every decision, every equity point and every engagement up to t unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.backtest.data import DAY, HOUR, History, load_history
from bot.backtest.engine import Config, run
from bot.policy_loader import load_policy
from policies.signals import FundingPoint
from tests.bot.backtest.helpers import T0, write_history, write_usdc

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "policy.toml"
START, END = T0 + 75 * DAY, T0 + 85 * DAY


def _base(tmp: Path) -> History:
    """A wavy market with a DVOL rise, so that layers engage, roll and perps trade."""
    import math

    def spot(ts: int) -> float:
        k = (ts - T0) / DAY
        return 2000.0 * (1 + 0.12 * math.sin(k / 3.0)) * (1 - 0.004 * max(k - 70, 0))

    def dvol(ts: int) -> float:
        k = (ts - T0) / DAY
        return 55.0 + 10 * math.sin(k / 5.0) + (40.0 if k >= 76 else 0.0)

    d = write_history(tmp, 90, spot, dvol, funding_rate=0.0001)
    write_usdc(d, T0, 90 * 96, lambda ts: 1.0)
    return load_history(d)


def _shifted(h: History, t: int, factor: float, dv: float, rate: float, peg: float) -> History:
    """Every value first known after ``t`` changed (prices scaled, DVOL and funding and the
    USDC price moved); everything known at or before ``t`` kept."""
    spot = [(k, v if k <= t else v * factor) for k, v in h.spot]
    dvol = [(k, v if k <= t else v + dv) for k, v in h.dvol]
    funding = {n: [p if p.ts <= t else FundingPoint(p.ts, rate, p.interval_hours) for p in pts]
               for n, pts in h.funding.items()}
    assert h.usdc is not None
    usdc = [(k, v if k <= t else peg) for k, v in h.usdc]
    return History(spot, dvol, funding, h.spot_start, usdc)


def _upto(res, t: int):  # type: ignore[no-untyped-def]
    n = res.ts.index(t) + 1
    return (res.hedged[:n], res.unhedged[:n], res.engaged[:n], res.regime[:n],
            [d for d in res.decisions if d["now"] <= t])


@pytest.mark.slow  # minutes of recorded history, hour by hour: make test, not test-fast
@settings(max_examples=6, deadline=None, derandomize=True)
@given(hour=st.integers(0, (END - START) // HOUR), factor=st.sampled_from([0.6, 0.8, 1.25, 1.5]),
       dv=st.floats(-30, 100), rate=st.floats(-0.003, 0.003), peg=st.floats(0.9, 1.0))
def test_inputs_after_t_never_change_decisions_up_to_t(tmp_path_factory, hour: int,  # type: ignore[no-untyped-def]
                                                       factor: float, dv: float, rate: float,
                                                       peg: float) -> None:
    h = _base(tmp_path_factory.mktemp("h"))
    t = START + hour * HOUR
    pol = load_policy(str(EXAMPLE))
    cfg = Config(START, END, recenter_days=3)
    a = run(h, pol, cfg)
    b = run(_shifted(h, t, factor, dv, rate, peg), pol, cfg)
    assert _upto(a, t) == _upto(b, t)
    assert a.decisions, "the market must make the policy act"
    if t <= END - 2 * HOUR:  # and the change does matter once it is known
        assert a.unhedged[-1] != b.unhedged[-1]
