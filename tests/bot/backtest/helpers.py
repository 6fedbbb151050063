"""Synthetic history directories with hand-known prices, and a test policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from policies.policy_file import Policy, parse_policy

H = 3600
D = 86400
T0 = int(datetime(2022, 1, 1, tzinfo=UTC).timestamp())


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_history(d: Path, days: int, spot: Callable[[int], float],
                  dvol: Callable[[int], float], funding_rate: float = 0.0) -> Path:
    """spot(ts) is the close of the hourly bar starting at ts; dvol(day_start) likewise."""
    d.mkdir(parents=True, exist_ok=True)
    with (d / "eth_usdt_1h.csv").open("w") as fh:
        fh.write("ts_utc,open,high,low,close\n")
        for k in range(days * 24):
            ts = T0 + k * H
            c = spot(ts)
            fh.write(f"{iso(ts)},{c},{c},{c},{c}\n")
    with (d / "eth_dvol_1d.csv").open("w") as fh:
        fh.write("ts_utc,open,high,low,close\n")
        for k in range(days):
            ts = T0 + k * D
            v = dvol(ts)
            fh.write(f"{iso(ts)},{v},{v},{v},{v}\n")
    with (d / "eth_funding_binance.csv").open("w") as fh:
        fh.write("ts_utc,rate,interval_hours\n")
        for k in range(days * 3):
            fh.write(f"{iso(T0 + k * 8 * H)},{funding_rate:.10f},8\n")
    return d


POLICY = """
version = "test.1"
name = "always-on test"
[governance]
single_owner_may_tighten = true
override_max_ttl_hours = 72
[[coverage]]
underlying = "ETH"
quote = "USDC"
pool = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
underlying_token = "token1"
token_ids = []
[venues]
options = ["deribit"]
[liquidity]
max_spread = 0.5
min_open_interest = 50
max_quote_age_seconds = 300
[layers.main]
min_days = 7
max_days = 45
trigger = { min_level = "elevated" }
strike = { put_offset = [0.05, 0.07] }
size = { fraction_of_x_max = 1.0 }
roll = { days_before_expiry = 0 }
premium = { max_pct_of_spot = 0.2 }
hysteresis = { levels = 0, min_engaged_hours = 24 }
[budget]
share_of_expected_fees = 1.0
session_cap_share = 1.0
[perp]
enabled = false
hedge_ratio = 0.5
rebalance_band = 0.1
venues = ["binanceusdm"]
max_quote_age_seconds = 300
"""


def always_on_policy() -> Policy:
    return parse_policy(POLICY)


def write_usdc(d: Path, start: int, bars: int, price: Callable[[int], float | None]) -> Path:
    """usdc_usd_15m.csv: 15-minute bars from ``start``; ``price(ts)`` None = a gap."""
    with (d / "usdc_usd_15m.csv").open("w") as fh:
        fh.write("ts_utc,open,high,low,close\n")
        for k in range(bars):
            ts = start + k * 900
            v = price(ts)
            if v is not None:
                fh.write(f"{iso(ts)},{v},{v},{v},{v}\n")
    return d


def write_funding(d: Path, name: str, start: int, end: int, interval_h: int, rate: float) -> Path:
    """eth_funding_<name>.csv: a constant ``rate`` per interval, settlements in [start, end)."""
    with (d / f"eth_funding_{name}.csv").open("w") as fh:
        fh.write("ts_utc,rate,interval_hours\n")
        for ts in range(start, end, interval_h * H):
            fh.write(f"{iso(ts)},{rate:.10f},{interval_h}\n")
    return d
