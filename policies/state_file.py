"""The documented JSON state that `lphedge plan` decides on (format: docs/policy.md).

Parsing (text in, domain objects out) and writing (``dump_state``: DecisionInputs out, in
exactly the format ``parse_state`` reads, so a live decision replays offline:
``parse_state(json.dumps(dump_state(x)), policy) == x``). No I/O here, the CLI reads and
writes the file. Big integers (sqrt prices, liquidity, fee growth) may be JSON numbers or decimal
strings; times are unix seconds or ISO 8601 strings with a zone; sizes are decimal
strings (or numbers) in underlying units; money is USD as decimal strings.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from policies.address import address_problem
from policies.alvh import DecisionInputs
from policies.errors import InvalidInput
from policies.exposure import HeldUnderlying
from policies.hedge import (
    HedgeBook,
    Instrument,
    LayerEngagement,
    OptionHolding,
    OptionQuote,
    PerpHolding,
    PerpQuote,
)
from policies.lp_math import get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio
from policies.overrides import Override, apply_to_inputs
from policies.policy_file import LayerName, Policy, format_error, policy_hash_hex
from policies.pricing import OptionKind
from policies.risk import BudgetState, usd_to_cents
from policies.types import Level, PoolState, Position, Regime, SignalReading, TickFeeGrowth, Token
from policies.vocab import LevelName as LevelNameValue
from policies.vocab import OptionKindName, OptionVenue, PerpVenue, SignalName


class StateError(InvalidInput):
    """A state file that cannot be used; one line: ``<field>: <problem>``."""


def _time(v: object) -> object:
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {v!r}") from None
        if dt.tzinfo is None:
            raise ValueError(f"time needs a zone (e.g. Z): {v!r}")
        return int(dt.timestamp())
    return v


def _level(v: object) -> object:
    if v is None:
        return None
    if isinstance(v, str) and v.upper() in Level.__members__:
        return v.lower()
    return v


def _addr(v: object) -> object:
    problem = address_problem(v)
    if problem is not None:
        raise ValueError(problem)
    return v


# Bounds per field (docs/policy.md, "State file"): the chain's integer widths, and for
# decimal inputs what no real position, book or market reaches (absurd = refused, never
# silently rounded, overflowed or shown as a 400-digit figure).
MAX_USD = Decimal(10) ** 12  # one trillion dollars
MAX_SIZE = Decimal(10) ** 9  # underlying units
MAX_PRICE = 1e12  # USD per underlying
TIME_MAX = 4_102_444_800  # 2100-01-01
Time = Annotated[int, BeforeValidator(_time), Field(ge=0, le=TIME_MAX)]


def _uint(bits: int) -> AfterValidator:
    def check(v: int) -> int:
        if v >= 2**bits:
            raise ValueError(f"must be below 2^{bits} (a uint{bits} on chain)")
        return v
    return AfterValidator(check)


BigInt = Annotated[int, Field(ge=0), _uint(256)]  # fee growth
U128 = Annotated[int, Field(ge=0), _uint(128)]  # liquidity, tokens owed
U160 = Annotated[int, Field(ge=0), _uint(160)]  # sqrt_price_x96
Address = Annotated[str, AfterValidator(_addr)]
Price = Annotated[float, Field(ge=0, le=MAX_PRICE, allow_inf_nan=False)]
Usd = Annotated[Decimal, Field(ge=0, le=MAX_USD, allow_inf_nan=False)]
LevelName = Annotated[LevelNameValue | None,
                      BeforeValidator(_level)]
Size = Annotated[Decimal, Field(ge=-MAX_SIZE, le=MAX_SIZE, allow_inf_nan=False)]
PosSize = Annotated[Decimal, Field(gt=0, le=MAX_SIZE, allow_inf_nan=False)]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenIn(_M):
    address: Address
    symbol: str = Field(min_length=1, max_length=32)
    decimals: int = Field(ge=0, le=77)


class PoolIn(_M):
    address: Address
    token0: TokenIn
    token1: TokenIn
    fee: int = Field(default=500, ge=0, lt=1_000_000)  # hundredths of a bip
    tick_spacing: int = Field(default=10, gt=0, lt=16384)  # the factory's bounds
    sqrt_price_x96: U160 | None = None
    tick: int | None = None
    liquidity: U128 = 0
    fee_growth_global0_x128: BigInt = 0
    fee_growth_global1_x128: BigInt = 0


class PositionIn(_M):
    token_id: int = Field(ge=0, lt=2**256)
    pool: Address
    owner: Address = "0x0000000000000000000000000000000000000000"
    position_manager: Address = "0xC36442b4a4522E871399CD717aBDD847Ab11FE88"
    tick_lower: int
    tick_upper: int
    liquidity: U128
    fee_growth_inside0_last_x128: BigInt = 0
    fee_growth_inside1_last_x128: BigInt = 0
    tokens_owed0: U128 = 0
    tokens_owed1: U128 = 0
    # feeGrowthOutside of the range's edge ticks (fees owed; plan does not need them)
    lower_fee_growth_outside0_x128: BigInt = 0
    lower_fee_growth_outside1_x128: BigInt = 0
    upper_fee_growth_outside0_x128: BigInt = 0
    upper_fee_growth_outside1_x128: BigInt = 0


class SignalIn(_M):
    name: SignalName  # a misspelt name would silently never fire a trigger
    level: LevelName
    reason: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)


class RegimeIn(_M):
    underlying: str
    level: LevelName
    reason: str = ""
    signals: tuple[SignalIn, ...] = ()


class InstrumentIn(_M):
    venue: OptionVenue
    symbol: str
    underlying: str
    kind: OptionKindName
    strike: float = Field(gt=0, le=MAX_PRICE, allow_inf_nan=False)
    expiry: Time
    size_step: PosSize = Decimal("0.1")


class HoldingIn(InstrumentIn):
    size: PosSize
    layer: LayerName  # may be a layer the policy no longer declares (held to expiry)


class PerpIn(_M):
    venue: PerpVenue
    underlying: str
    size: Size


class EngagedIn(_M):
    underlying: str
    layer: LayerName
    since: Time


class BookIn(_M):
    options: tuple[HoldingIn, ...] = ()
    perps: tuple[PerpIn, ...] = ()
    engaged: tuple[EngagedIn, ...] = ()
    exits_pending: tuple[int, ...] = ()


class HeldIn(_M):
    """Underlying the Safe holds outside LP positions (e.g. returned by an exit)."""

    underlying: str
    amount: Annotated[Decimal, Field(ge=0, le=MAX_SIZE, allow_inf_nan=False)]


class QuoteIn(InstrumentIn):
    bid: Price | None = None  # USD per contract's underlying unit
    ask: Price | None = None
    mark_iv: Annotated[float, Field(ge=0, le=20, allow_inf_nan=False)] | None = None  # 0.65 = 65%
    open_interest: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)] | None = None
    forward: Annotated[float, Field(gt=0, le=MAX_PRICE, allow_inf_nan=False)] | None = None
    as_of: Time


class PerpQuoteIn(_M):
    venue: PerpVenue
    underlying: str
    mark: Annotated[float, Field(gt=0, le=MAX_PRICE, allow_inf_nan=False)] | None = None
    funding_rate_8h: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)] | None = None  # 0.0001 = 0.01%/8h
    as_of: Time
    size_step: PosSize = Decimal("0.001")


class BudgetIn(_M):
    expected_fee_income_usd: Usd
    spent_total_usd: Usd = Decimal(0)
    spent_session_usd: Usd = Decimal(0)


class OverrideIn(_M):
    nonce: int = Field(ge=0)
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    reason: str
    expiry: Time
    override_hash: str = ""


class StateIn(_M):
    now: Time
    policy_hash: str | None = None  # the policy the state was assembled under (checked)
    pools: tuple[PoolIn, ...] = ()
    positions: tuple[PositionIn, ...] = ()
    regimes: tuple[RegimeIn, ...] = ()
    book: BookIn = BookIn()
    quotes: tuple[QuoteIn, ...] = ()
    perp_quotes: tuple[PerpQuoteIn, ...] = ()
    budget: BudgetIn
    underlying_held: tuple[HeldIn, ...] = ()  # outside LP, e.g. returned by exits
    overrides: tuple[OverrideIn, ...] = ()  # in force when assembled; applied on load


def _token(t: TokenIn) -> Token:
    return Token(t.address, t.symbol, t.decimals)


def _pool(p: PoolIn, where: str) -> PoolState:
    if p.sqrt_price_x96 is None and p.tick is None:
        raise StateError(f"{where}: needs sqrt_price_x96 or tick")
    try:
        sqrt = p.sqrt_price_x96 if p.sqrt_price_x96 is not None else get_sqrt_ratio_at_tick(
            p.tick if p.tick is not None else 0)
        tick = get_tick_at_sqrt_ratio(sqrt)
    except ValueError as exc:
        raise StateError(f"{where}: {exc}") from None
    if p.tick is not None and p.sqrt_price_x96 is not None and p.tick != tick:
        # a swap ending exactly on an initialised tick going down leaves slot0.tick one
        # below the tick of its price: the pool's own state, kept as read
        if not (p.tick == tick - 1 and sqrt == get_sqrt_ratio_at_tick(tick)):
            raise StateError(f"{where}.tick: {p.tick} does not match sqrt_price_x96 "
                             f"(tick {tick})")
        tick = p.tick
    return PoolState(p.address, _token(p.token0), _token(p.token1), p.fee, p.tick_spacing,
                     sqrt, tick, p.liquidity, p.fee_growth_global0_x128,
                     p.fee_growth_global1_x128)


def _instrument(i: InstrumentIn) -> Instrument:
    return Instrument(i.venue, i.symbol, i.underlying, OptionKind(i.kind), i.strike, i.expiry,
                      i.size_step)


def _lvl(name: str | None) -> Level | None:
    return None if name is None else Level[name.upper()]


def parse_state(text: str, policy: Policy) -> DecisionInputs:
    """Validate a JSON state into DecisionInputs for ``policy``; StateError on problems."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"JSON syntax: {exc}") from None
    try:
        s = StateIn.model_validate(data)
    except ValidationError as exc:
        raise StateError(format_error(exc.errors()[0], StateIn)) from None
    pools: dict[str, PoolState] = {}
    for i, p in enumerate(s.pools):
        if p.address.lower() in pools:
            raise StateError(f"pools[{i}].address: {p.address} is listed twice")
        if p.token0.address.lower() == p.token1.address.lower():
            raise StateError(f"pools[{i}].token1: the same token as token0")
        pools[p.address.lower()] = _pool(p, f"pools[{i}]")
    positions = []
    ids: dict[int, int] = {}
    for i, q in enumerate(s.positions):
        if q.token_id in ids:  # counted twice otherwise
            raise StateError(f"positions[{i}].token_id: {q.token_id} is listed twice "
                             f"(positions[{ids[q.token_id]}])")
        ids[q.token_id] = i
        pool = pools.get(q.pool.lower())
        if pool is None:
            raise StateError(f"positions[{i}].pool: {q.pool} is not in pools")
        if not q.tick_lower < q.tick_upper:
            raise StateError(f"positions[{i}].tick_lower: must be < tick_upper")
        for name, tick in (("tick_lower", q.tick_lower), ("tick_upper", q.tick_upper)):
            if tick % pool.tick_spacing:
                raise StateError(f"positions[{i}].{name}: {tick} is not a multiple of the "
                                 f"pool's tick spacing {pool.tick_spacing}")
        try:
            get_sqrt_ratio_at_tick(q.tick_lower)
            get_sqrt_ratio_at_tick(q.tick_upper)
        except ValueError as exc:
            raise StateError(f"positions[{i}]: {exc}") from None
        positions.append(Position(
            q.token_id, q.owner, q.position_manager, pool, q.tick_lower, q.tick_upper,
            q.liquidity, q.fee_growth_inside0_last_x128, q.fee_growth_inside1_last_x128,
            q.tokens_owed0, q.tokens_owed1,
            TickFeeGrowth(q.lower_fee_growth_outside0_x128, q.lower_fee_growth_outside1_x128),
            TickFeeGrowth(q.upper_fee_growth_outside0_x128, q.upper_fee_growth_outside1_x128)))
    seen: dict[str, int] = {}
    for i, r in enumerate(s.regimes):
        if r.underlying in seen:
            raise StateError(f"regimes[{i}].underlying: {r.underlying} already has a regime "
                             f"(regimes[{seen[r.underlying]}]); one per asset")
        seen[r.underlying] = i
    regimes = tuple(
        Regime(r.underlying, _lvl(r.level), r.reason,
               tuple(SignalReading(g.name, _lvl(g.level), g.reason, dict(g.evidence))
                     for g in r.signals))
        for r in s.regimes)
    book = HedgeBook(
        options=tuple(OptionHolding(_instrument(h), h.size, h.layer) for h in s.book.options),
        perps=tuple(PerpHolding(p.venue, p.underlying, p.size) for p in s.book.perps),
        engaged=tuple(LayerEngagement(e.underlying, e.layer, e.since) for e in s.book.engaged),
        exits_pending=tuple(sorted(s.book.exits_pending)),
    )
    quotes = tuple(OptionQuote(_instrument(q), q.bid, q.ask, q.mark_iv, q.open_interest,
                               q.forward, q.as_of) for q in s.quotes)
    perp_quotes = tuple(PerpQuote(q.venue, q.underlying, q.mark, q.funding_rate_8h, q.as_of,
                                  q.size_step) for q in s.perp_quotes)
    # income rounds down and spending up: sub-cent input never widens the budget
    budget = BudgetState(usd_to_cents(s.budget.expected_fee_income_usd, round_up=False),
                         usd_to_cents(s.budget.spent_total_usd),
                         usd_to_cents(s.budget.spent_session_usd))
    if s.policy_hash is not None and s.policy_hash.lower() != policy_hash_hex(policy):
        raise StateError(f"policy_hash: the state was assembled under policy {s.policy_hash}, "
                         f"not this one ({policy_hash_hex(policy)})")
    inputs = DecisionInputs(now=s.now, policy=policy, positions=tuple(positions),
                            regimes=regimes, book=book, budget=budget, quotes=quotes,
                            perp_quotes=perp_quotes,
                            held=tuple(HeldUnderlying(h.underlying, float(h.amount))
                                       for h in s.underlying_held))
    if s.overrides:
        overrides = [Override(o.nonce, o.kind, dict(o.params), o.reason, o.expiry,
                              o.override_hash) for o in s.overrides]
        inputs, _ = apply_to_inputs(inputs, overrides)
    return inputs


# ------------------------------------------------------------------------------ writer


def _cents_usd(cents: int) -> str:
    """Integer cents as an exact USD decimal string ("1234.05")."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _level_name(level: Level | None) -> str | None:
    return None if level is None else level.name.lower()


def _instrument_json(i: Instrument) -> dict[str, Any]:
    return {"venue": i.venue, "symbol": i.symbol, "underlying": i.underlying,
            "kind": i.kind.value, "strike": i.strike, "expiry": i.expiry,
            "size_step": str(i.size_step)}


def _token_json(t: Token) -> dict[str, Any]:
    return {"address": t.address, "symbol": t.symbol, "decimals": t.decimals}


def _evidence(value: object) -> object:
    """Evidence as JSON data (tuples as lists, levels as names, non-finite floats null)."""
    if isinstance(value, Level):
        return value.name.lower()
    if isinstance(value, dict):
        return {str(k): _evidence(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_evidence(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return str(value)
    return value


def dump_state(inputs: DecisionInputs, overrides: tuple[Override, ...] = ()) -> dict[str, Any]:
    """``inputs`` (with the approved policy and the book before overrides) as state JSON
    data, with the overrides that were in force: parse_state of it with the same policy
    gives ``inputs`` with those overrides applied (``inputs`` itself when there are none).
    Big integers are decimal strings, money exact USD strings of the integer cents, times
    unix seconds. Signal evidence survives as JSON data (tuples come back as lists)."""
    pools: dict[str, PoolState] = {}
    for pos in inputs.positions:
        pools.setdefault(pos.pool.address.lower(), pos.pool)
    book = inputs.book
    b = inputs.budget
    return {
        "now": inputs.now,
        "policy_hash": policy_hash_hex(inputs.policy),
        "pools": [{
            "address": p.address, "token0": _token_json(p.token0),
            "token1": _token_json(p.token1), "fee": p.fee, "tick_spacing": p.tick_spacing,
            "sqrt_price_x96": str(p.sqrt_price_x96), "tick": p.tick,
            "liquidity": str(p.liquidity),
            "fee_growth_global0_x128": str(p.fee_growth_global0_x128),
            "fee_growth_global1_x128": str(p.fee_growth_global1_x128),
        } for p in pools.values()],
        "positions": [{
            "token_id": q.token_id, "pool": q.pool.address, "owner": q.owner,
            "position_manager": q.position_manager, "tick_lower": q.tick_lower,
            "tick_upper": q.tick_upper, "liquidity": str(q.liquidity),
            "fee_growth_inside0_last_x128": str(q.fee_growth_inside0_last_x128),
            "fee_growth_inside1_last_x128": str(q.fee_growth_inside1_last_x128),
            "tokens_owed0": str(q.tokens_owed0), "tokens_owed1": str(q.tokens_owed1),
            "lower_fee_growth_outside0_x128": str(q.lower.fee_growth_outside0_x128),
            "lower_fee_growth_outside1_x128": str(q.lower.fee_growth_outside1_x128),
            "upper_fee_growth_outside0_x128": str(q.upper.fee_growth_outside0_x128),
            "upper_fee_growth_outside1_x128": str(q.upper.fee_growth_outside1_x128),
        } for q in inputs.positions],
        "regimes": [{
            "underlying": r.underlying, "level": _level_name(r.level), "reason": r.reason,
            "signals": [{"name": g.name, "level": _level_name(g.level), "reason": g.reason,
                         "evidence": _evidence(g.evidence)} for g in r.signals],
        } for r in inputs.regimes],
        "book": {
            "options": [{**_instrument_json(h.instrument), "size": str(h.size),
                         "layer": h.layer} for h in book.options],
            "perps": [{"venue": p.venue, "underlying": p.underlying, "size": str(p.size)}
                      for p in book.perps],
            "engaged": [{"underlying": e.underlying, "layer": e.layer, "since": e.since}
                        for e in book.engaged],
            "exits_pending": list(book.exits_pending),
        },
        "quotes": [{**_instrument_json(q.instrument), "bid": q.bid, "ask": q.ask,
                    "mark_iv": q.mark_iv, "open_interest": q.open_interest,
                    "forward": q.forward, "as_of": q.as_of} for q in inputs.quotes],
        "perp_quotes": [{"venue": q.venue, "underlying": q.underlying, "mark": q.mark,
                         "funding_rate_8h": q.funding_rate_8h, "as_of": q.as_of,
                         "size_step": str(q.size_step)} for q in inputs.perp_quotes],
        "budget": {"expected_fee_income_usd": _cents_usd(b.expected_fee_income_cents),
                   "spent_total_usd": _cents_usd(b.spent_total_cents),
                   "spent_session_usd": _cents_usd(b.spent_session_cents)},
        "underlying_held": [{"underlying": h.underlying, "amount": repr(h.amount)}
                            for h in inputs.held],
        "overrides": [o.to_json() for o in overrides],
    }


def dumps_state(inputs: DecisionInputs, overrides: tuple[Override, ...] = ()) -> str:
    """dump_state as the text of a state file (sorted keys, indented, newline at the end)."""
    return json.dumps(dump_state(inputs, overrides), indent=2, sort_keys=True,
                      allow_nan=False) + "\n"
