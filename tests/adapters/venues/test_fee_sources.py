"""The perp fee schedules in policies/fills.py against an independent source: ccxt's own
per-market-type defaults (describe()['fees']) where ccxt has them. ccxt is the library the
live venues go through; a disagreement means one of the two is stale."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from policies.fills import PERP_FEES


@pytest.mark.parametrize(("venue", "path"), [
    ("binanceusdm", ("linear", "trading")), ("okx", ("swap",)), ("hyperliquid", ("swap",))])
def test_perp_schedule_matches_ccxt(venue: str, path: tuple[str, ...]) -> None:
    fees = getattr(ccxt, venue)().describe()["fees"]
    for key in path:
        fees = fees[key]
    ours = PERP_FEES[venue]
    assert (ours.maker, ours.taker) == (Decimal(repr(fees["maker"])), Decimal(repr(fees["taker"])))
