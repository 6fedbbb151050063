"""Builders for ALVH test states: real v3 ticks/liquidity, Black-76 quotes, policies."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from typing import Any

from policies.alvh import DecisionInputs
from policies.hedge import HedgeBook, Instrument, OptionKind, OptionQuote, PerpQuote
from policies.lp_math import get_sqrt_ratio_at_tick
from policies.policy_file import Policy, policy_from_dict
from policies.pricing import black76, year_fraction
from policies.risk import BudgetState
from policies.types import Level, PoolState, Position, Regime, SignalReading, TickFeeGrowth, Token

NOW = 1_795_262_400  # 2026-11-21 12:00 UTC
DAY = 86400
Q96 = 1 << 96
USDC = Token("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", "USDC", 6)
WETH = Token("0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", "WETH", 18)
USDT = Token("0xdac17f958d2ee523a220620676059506e07c52e2", "USDT", 6)
POOL_T1 = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"  # USDC/WETH: ETH is token1
POOL_T0 = "0x11b815efb8f581194ae79006d24e0d814b7697f6"  # WETH/USDT: ETH is token0


def _tick(raw_price: float) -> int:
    return math.floor(math.log(raw_price) / math.log(1.0001))


def eth_tick(spot: float, eth_is_token0: bool) -> int:
    raw = spot * 1e-12 if eth_is_token0 else 1e12 / spot
    return _tick(raw)


def pool(spot: float, eth_is_token0: bool = False) -> PoolState:
    tick = eth_tick(spot, eth_is_token0)
    t0, t1 = (WETH, USDT) if eth_is_token0 else (USDC, WETH)
    return PoolState(POOL_T0 if eth_is_token0 else POOL_T1, t0, t1, 500, 10,
                     get_sqrt_ratio_at_tick(tick), tick, 10**20, 0, 0)


def position(token_id: int, p: PoolState, lower_usd: float, upper_usd: float,
             x_max_eth: float) -> Position:
    """A position covering [lower_usd, upper_usd] (USD per ETH) holding ~x_max_eth below it."""
    eth_is_token0 = p.token0.symbol == "WETH"
    a, b = eth_tick(lower_usd, eth_is_token0), eth_tick(upper_usd, eth_is_token0)
    lo, up = (a, b) if eth_is_token0 else (b, a)
    lo, up = lo // 10 * 10, up // 10 * 10 + 10
    sa, sb = get_sqrt_ratio_at_tick(lo), get_sqrt_ratio_at_tick(up)
    x = int(x_max_eth * 10**18)
    liq = x * sa * sb // ((sb - sa) * Q96) if eth_is_token0 else x * Q96 // (sb - sa)
    return Position(token_id, "0x5afe00000000000000000000000000000000cafe", "0xc36442b4a4522e871399cd717abdd847ab11fe88", p, lo, up,
                    max(liq, 1), 0, 0, 0, 0, TickFeeGrowth(0, 0), TickFeeGrowth(0, 0))


def instrument(venue: str, strike: float, days: float, kind: OptionKind = OptionKind.PUT,
               step: str = "0.1", now: int = NOW) -> Instrument:
    expiry = now + int(days * DAY)
    return Instrument(venue, f"ETH-{expiry}-{strike:g}-{kind.value[0].upper()}", "ETH", kind,
                      float(strike), expiry, Decimal(step))


def quote(inst: Instrument, spot: float, iv: float = 0.7, spread: float = 0.04,
          oi: float | None = 500.0, now: int = NOW, age: int = 30) -> OptionQuote:
    g = black76(inst.kind, spot, inst.strike, year_fraction(now, inst.expiry), iv)
    mid = max(g.price, 0.05)
    return OptionQuote(inst, round(mid * (1 - spread / 2), 2), round(mid * (1 + spread / 2), 2),
                       iv, oi, spot, now - age)


def chain(spot: float, days: tuple[float, ...] = (5, 30, 90), venues: tuple[str, ...] = ("deribit",),
          strikes: tuple[float, ...] | None = None, kinds: tuple[OptionKind, ...] = (OptionKind.PUT,),
          now: int = NOW, **kw: Any) -> tuple[OptionQuote, ...]:
    ks = strikes or tuple(float(k) for k in range(int(spot * 0.5) // 50 * 50,
                                                      int(spot * 1.6), 50))
    out = []
    for v in venues:
        for d in days:
            for k in ks:
                for kind in kinds:
                    out.append(quote(instrument(v, k, d, kind, now=now), spot, now=now, **kw))
    return tuple(out)


def regime(level: Level | None, **signals: Level | None) -> Regime:
    return Regime("ETH", level, f"test regime {level}",
                  tuple(SignalReading(n, lv, f"{n} test") for n, lv in sorted(signals.items())))


def policy_dict(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": "test-1",
        "coverage": [
            {"underlying": "ETH", "quote": "USDC", "pool": POOL_T1, "underlying_token": "token1"},
            {"underlying": "ETH", "quote": "USDT", "pool": POOL_T0, "underlying_token": "token0"},
        ],
        "venues": {"options": ["deribit", "derive"]},
        "liquidity": {"max_spread": 0.2, "min_open_interest": 50, "max_quote_age_seconds": 300},
    }
    for key, value in over.items():
        base[key] = value
    return base


def make_policy(**over: Any) -> Policy:
    return policy_from_dict(policy_dict(**over))


def inputs(policy: Policy, positions: tuple[Position, ...], regimes: tuple[Regime, ...],
           quotes: tuple[OptionQuote, ...] = (), book: HedgeBook | None = None,
           fees_usd: int = 100_000, spent_total: int = 0, spent_session: int = 0,
           perp_quotes: tuple[PerpQuote, ...] = (), now: int = NOW) -> DecisionInputs:
    return DecisionInputs(now=now, policy=policy, positions=positions, regimes=regimes,
                          book=book or HedgeBook(),
                          budget=BudgetState(fees_usd * 100, spent_total, spent_session),
                          quotes=quotes, perp_quotes=perp_quotes)


def with_book(inp: DecisionInputs, book: HedgeBook, extra_spent: int) -> DecisionInputs:
    b = inp.budget
    return replace(inp, book=book, budget=BudgetState(
        b.expected_fee_income_cents, b.spent_total_cents + extra_spent,
        b.spent_session_cents + extra_spent))
