"""Option quotes (policies.hedge.OptionQuote) from a venue's option chain as ccxt returns it
(``fetch_option_chain``; Deribit: public/get_book_summary_by_currency, kind=option; fetched
once per tick by adapters.market.volatility.DeribitVol.option_chain, which also gives the
term structure).

Prices are USD per unit of underlying. Deribit quotes options in the base currency (an
ETH option's bid of 0.049 is 0.049 ETH), so a price is multiplied by the underlying
(forward) price the venue sends with it. A missing or non-finite value is None (unknown),
never a default; an instrument without a parsable strike, expiry or kind is skipped.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from adapters.market.base import ms_to_s, now_s
from policies.hedge import Instrument, OptionKind, OptionQuote


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def size_step(market: dict[str, Any]) -> Decimal | None:
    """Smallest tradable size of a ccxt market (its minimum amount, else its amount
    precision), in the market's amount units; None when the venue says neither."""
    for value in ((market.get("limits") or {}).get("amount", {}).get("min"),
                  (market.get("precision") or {}).get("amount")):
        v = _num(value)
        if v is not None and v > 0:
            return Decimal(repr(v))
    return None


def parse_chain(venue: str, currency: str, options: dict[str, Any],
                markets: dict[str, Any]) -> tuple[OptionQuote, ...]:
    """OptionQuotes from a ccxt option chain and the exchange's markets, by instrument name."""
    out: list[OptionQuote] = []
    for symbol, opt in sorted(options.items()):
        market = markets.get(symbol)
        if market is None or not market.get("option"):
            continue
        info = opt.get("info") or {}
        strike, expiry_ms = _num(market.get("strike")), market.get("expiry")
        kind = {"put": OptionKind.PUT, "call": OptionKind.CALL}.get(str(market.get("optionType")))
        step = size_step(market)
        if strike is None or strike <= 0 or not expiry_ms or kind is None or step is None:
            continue
        forward = _num(opt.get("underlyingPrice"))
        # inverse (coin-quoted) options: premium in the base currency, times the forward
        coin_quoted = str(info.get("quote_currency") or market.get("settle")) == currency
        scale = forward if coin_quoted else 1.0

        def usd(value: Any, scale: float | None = scale) -> float | None:
            v = _num(value)
            return None if v is None or scale is None else v * scale

        iv_points = _num(info.get("mark_iv"))
        ts = opt.get("timestamp") or info.get("creation_timestamp")
        out.append(OptionQuote(
            Instrument(venue, str(market.get("id") or symbol), currency, kind, strike,
                       ms_to_s(expiry_ms, f"{symbol} expiry"), step),
            bid=usd(opt.get("bidPrice")), ask=usd(opt.get("askPrice")),
            mark_iv=None if iv_points is None else iv_points / 100.0,
            open_interest=_num(opt.get("openInterest")), forward=forward,
            as_of=ms_to_s(ts) if ts else now_s()))
    return tuple(out)
