"""Hedge-book domain types: instruments, quotes, holdings, intents, and applying intents.

Sizes are ``Decimal`` in underlying units (a multiple of the instrument's
``size_step``); option premiums are USD per unit of underlying (floats, as
quoted), budgets and premium accounting are integer US cents. Times are unix
seconds. Everything is frozen; ``apply_intents`` returns a new book.

The book is long-only in options: the engine never sells an option it does not
hold (no writing). Perp holdings are signed (negative = short).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from decimal import Decimal
from typing import Any

from policies.pricing import OptionKind
from policies.types import DAY
from policies.vocab import (
    ADJUST_PERP,
    CLOSE_OPTION,
    ENGAGE_LAYER,
    EXIT_LP,
    INTENT_KINDS,
    OPEN_OPTION,
    RELEASE_LAYER,
    ROLL_OPTION,
)

__all__ = [
    "AdjustPerp",
    "CloseOption",
    "EngageLayer",
    "ExitLP",
    "HedgeBook",
    "Instrument",
    "Intent",
    "LayerEngagement",
    "OpenOption",
    "OptionHolding",
    "OptionKind",
    "OptionQuote",
    "PerpHolding",
    "PerpQuote",
    "ReleaseLayer",
    "RollOption",
    "apply_intents",
    "intent_to_json",
    "to_jsonable",
]



@dataclass(frozen=True, slots=True)
class Instrument:
    """One listed option on one venue."""

    venue: str
    symbol: str  # the venue's instrument name, e.g. "ETH-26DEC26-2600-P"
    underlying: str  # e.g. "ETH"
    kind: OptionKind
    strike: float  # USD
    expiry: int  # unix seconds
    size_step: Decimal = Decimal("0.1")  # smallest tradable increment, underlying units

    @property
    def key(self) -> tuple[str, str]:
        return (self.venue, self.symbol)

    def days_to_expiry(self, now: int) -> float:
        return (self.expiry - now) / DAY

    def to_json(self) -> dict[str, Any]:
        return {"venue": self.venue, "symbol": self.symbol, "underlying": self.underlying,
                "kind": self.kind.value, "strike": self.strike, "expiry": self.expiry,
                "size_step": str(self.size_step)}


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """Top of book for one option. Unknown values are None, never a default."""

    instrument: Instrument
    bid: float | None  # USD per unit of underlying
    ask: float | None
    mark_iv: float | None  # fraction, 0.65 = 65%
    open_interest: float | None  # underlying units
    forward: float | None  # USD, the venue's underlying/forward price for this expiry
    as_of: int  # unix seconds


@dataclass(frozen=True, slots=True)
class PerpQuote:
    venue: str
    underlying: str
    mark: float | None  # USD
    funding_rate_8h: float | None  # fraction paid by longs to shorts per 8 h (negative: shorts pay)
    as_of: int
    size_step: Decimal = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class OptionHolding:
    """A long option position attributed to one protection layer."""

    instrument: Instrument
    size: Decimal  # > 0, underlying units
    layer: str


@dataclass(frozen=True, slots=True)
class PerpHolding:
    venue: str
    underlying: str
    size: Decimal  # signed underlying units, negative = short


@dataclass(frozen=True, slots=True)
class LayerEngagement:
    """A layer engaged for an underlying since ``since`` (for hysteresis/cooldown)."""

    underlying: str
    layer: str
    since: int


@dataclass(frozen=True, slots=True)
class HedgeBook:
    options: tuple[OptionHolding, ...] = ()
    perps: tuple[PerpHolding, ...] = ()
    engaged: tuple[LayerEngagement, ...] = ()
    exits_pending: tuple[int, ...] = ()  # LP token ids with an on-chain exit in flight

    def engagement(self, underlying: str, layer: str) -> LayerEngagement | None:
        for e in self.engaged:
            if e.underlying == underlying and e.layer == layer:
                return e
        return None

    def perp_total(self, underlying: str) -> Decimal:
        return sum((p.size for p in self.perps if p.underlying == underlying), Decimal(0))


# ------------------------------------------------------------------------------ intents


@dataclass(frozen=True, slots=True)
class OpenOption:
    """Buy ``size`` of an option (always a buy: the engine never writes options)."""

    underlying: str
    layer: str
    instrument: Instrument
    size: Decimal
    limit_price: float  # the ask used for budgeting, USD per unit
    premium_cents: int  # budgeted premium, rounded up
    reason: str
    evidence: Mapping[str, object] = field(default_factory=dict)
    action: str = OPEN_OPTION
    fee_cents: int = 0  # worst-case venue fee budgeted with the premium, rounded up


@dataclass(frozen=True, slots=True)
class RollOption:
    """Sell to close ``close_size`` of an expiring holding, buy ``open_size`` of a later one."""

    underlying: str
    layer: str
    close_instrument: Instrument
    close_size: Decimal
    open_instrument: Instrument
    open_size: Decimal
    limit_price: float
    premium_cents: int  # gross premium of the buy leg (sale proceeds are not credited)
    reason: str
    evidence: Mapping[str, object] = field(default_factory=dict)
    action: str = ROLL_OPTION
    fee_cents: int = 0  # worst-case venue fees of both legs, rounded up


@dataclass(frozen=True, slots=True)
class CloseOption:
    """Remove a holding from the book: settle an expired option (never sells to open)."""

    underlying: str
    layer: str
    instrument: Instrument
    size: Decimal
    reason: str
    evidence: Mapping[str, object] = field(default_factory=dict)
    action: str = CLOSE_OPTION


@dataclass(frozen=True, slots=True)
class AdjustPerp:
    """Change the perp position on one venue by ``delta`` (negative = sell/short more)."""

    underlying: str
    venue: str
    delta: Decimal
    target_total: Decimal  # the underlying's total perp position after all adjustments
    reason: str
    evidence: Mapping[str, object] = field(default_factory=dict)
    action: str = ADJUST_PERP


@dataclass(frozen=True, slots=True)
class ExitLP:
    """Remove the LP position's liquidity on-chain (through the Safe's Roles modifier)."""

    token_id: int
    underlying: str
    reason: str
    evidence: Mapping[str, object] = field(default_factory=dict)
    action: str = EXIT_LP


@dataclass(frozen=True, slots=True)
class EngageLayer:
    """Bookkeeping: a layer becomes engaged (starts its cooldown clock)."""

    underlying: str
    layer: str
    since: int
    reason: str
    evidence: Mapping[str, object] = field(default_factory=dict)
    action: str = ENGAGE_LAYER


@dataclass(frozen=True, slots=True)
class ReleaseLayer:
    """Bookkeeping: a layer is released (no new buys or rolls; held options run to expiry)."""

    underlying: str
    layer: str
    reason: str
    evidence: Mapping[str, object] = field(default_factory=dict)
    action: str = RELEASE_LAYER


Intent = OpenOption | RollOption | CloseOption | AdjustPerp | ExitLP | EngageLayer | ReleaseLayer

_ORDER = {kind: i for i, kind in enumerate(INTENT_KINDS)}  # the vocabulary's execution order


def intent_sort_key(intent: Intent) -> tuple[Any, ...]:
    """Deterministic order: exits, layer bookkeeping, closes, rolls, opens, perps."""
    head = (_ORDER[intent.action], intent.underlying)
    if isinstance(intent, ExitLP):
        return (*head, "", intent.token_id)
    if isinstance(intent, EngageLayer | ReleaseLayer):
        return (*head, intent.layer)
    if isinstance(intent, OpenOption | CloseOption):
        return (*head, intent.layer, intent.instrument.key)
    if isinstance(intent, RollOption):
        return (*head, intent.layer, intent.close_instrument.key, intent.open_instrument.key)
    return (*head, intent.venue)


def intent_premium_cents(intent: Intent) -> int:
    """What the intent charges against the budget and the session cap: premium plus the
    worst-case venue fee (issue 13, M4: fees count against the budget like premium)."""
    if isinstance(intent, OpenOption | RollOption):
        return intent.premium_cents + intent.fee_cents
    return 0


def to_jsonable(value: object) -> object:
    """JSON-ready data of intents, books and decisions: Decimals as strings, instruments
    and dataclasses as objects, non-finite floats as null (unknown, never a number)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Instrument):
        return value.to_json()
    if isinstance(value, OptionKind):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    return value


def intent_to_json(intent: Intent) -> dict[str, Any]:
    out = to_jsonable(intent)
    assert isinstance(out, dict)
    return out


# ------------------------------------------------------------------------------ applying


def _add_option(options: dict[tuple[str, str, str], OptionHolding], instrument: Instrument,
                layer: str, size: Decimal) -> None:
    key = (*instrument.key, layer)
    held = options.get(key)
    new = (held.size if held else Decimal(0)) + size
    if new < 0:
        raise ValueError(f"cannot remove {-size} of {instrument.symbol} ({layer}): holds "
                         f"{held.size if held else 0}")
    if new == 0:
        options.pop(key, None)
    else:
        options[key] = OptionHolding(instrument, new, layer)


def apply_intents(book: HedgeBook, intents: Iterable[Intent]) -> HedgeBook:
    """The book after every intent filled exactly as planned (used by tests, the
    backtest and the paper venue). Exits are recorded as pending."""
    options: dict[tuple[str, str, str], OptionHolding] = {}
    for h in book.options:
        _add_option(options, h.instrument, h.layer, h.size)
    perps: dict[tuple[str, str], Decimal] = {}
    for p in book.perps:
        perps[(p.venue, p.underlying)] = perps.get((p.venue, p.underlying), Decimal(0)) + p.size
    engaged = {(e.underlying, e.layer): e for e in book.engaged}
    exits = set(book.exits_pending)
    for intent in intents:
        if isinstance(intent, OpenOption):
            _add_option(options, intent.instrument, intent.layer, intent.size)
        elif isinstance(intent, RollOption):
            _add_option(options, intent.close_instrument, intent.layer, -intent.close_size)
            _add_option(options, intent.open_instrument, intent.layer, intent.open_size)
        elif isinstance(intent, CloseOption):
            _add_option(options, intent.instrument, intent.layer, -intent.size)
        elif isinstance(intent, AdjustPerp):
            k = (intent.venue, intent.underlying)
            perps[k] = perps.get(k, Decimal(0)) + intent.delta
        elif isinstance(intent, ExitLP):
            exits.add(intent.token_id)
        elif isinstance(intent, EngageLayer):
            engaged[(intent.underlying, intent.layer)] = LayerEngagement(
                intent.underlying, intent.layer, intent.since)
        else:
            engaged.pop((intent.underlying, intent.layer), None)
    return HedgeBook(
        options=tuple(options[k] for k in sorted(options)),
        perps=tuple(PerpHolding(v, u, s) for (v, u), s in sorted(perps.items()) if s != 0),
        engaged=tuple(engaged[k] for k in sorted(engaged)),
        exits_pending=tuple(sorted(exits)),
    )
