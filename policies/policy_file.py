"""The ALVH policy file: TOML, validated with pydantic, canonical bytes and hash.

``parse_policy(text)`` validates strictly (a string where a number belongs is an
error, unknown keys are errors) and raises ``PolicyError`` with one line naming
the field and, where there is a closed set, the allowed values.

``canonical_bytes(policy)`` is JSON of the validated model (every default filled
in) with sorted keys and no whitespace: comments, formatting, key order, the order
of set-like lists (venues, token ids, coverage entries) and stating a default
explicitly do not change it; any semantic change does.
``policy_hash(policy)`` = keccak256(canonical_bytes) is what the Safe approves.

Reference: docs/policy.md.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
import weakref
from typing import Annotated, Any, Literal

from eth_utils.crypto import keccak
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from policies.errors import InvalidInput
from policies.types import Level
from policies.vocab import (
    INTERMEDIATE,
    IV_PERCENTILE,
    LAYER_NAME_PATTERN,
    MAX_LAYERS,
    SHORT,
    STRUCTURAL,
    TERM_STRUCTURE,
    TVL_DROP,
    DepegAction,
    OptionVenue,
    PerpVenue,
    SignalName,
    TriggerLevel,
)

Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,12}$")]


def _eip55(v: str) -> str:
    from policies.address import address_problem  # the one address parser

    problem = address_problem(v)
    if problem is not None:
        raise ValueError(problem)
    return v


Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$"), AfterValidator(_eip55)]
LayerName = Annotated[str, StringConstraints(pattern=LAYER_NAME_PATTERN)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _as_set(v: tuple[Any, ...]) -> tuple[Any, ...]:
    """Lists that are sets (venues, token ids), sorted and deduplicated after validation:
    their order in the file does not change the canonical form (only membership counts)."""
    return tuple(sorted(set(v)))


def _lower_set(v: tuple[str, ...]) -> tuple[str, ...]:
    """Addresses that are sets (pinned owners, modules): lower case, sorted, deduplicated."""
    return tuple(sorted({a.lower() for a in v}))


def level_of(name: str) -> Level:
    return Level[name.upper()]


class PolicyError(InvalidInput):
    """A policy file that cannot be used; the message is one line: ``<field>: <problem>``."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              allow_inf_nan=False)


class Governance(_Model):
    single_owner_may_tighten: bool = False
    override_max_ttl_hours: float = Field(default=72.0, gt=0, le=24 * 30)
    # Part of the signed hash (issue 9): an approval only ever moves forward. The bot
    # refuses a policy whose sequence is lower than the highest it has seen approved;
    # ``approval_expiry`` (unix seconds) ends an approval without a new one.
    sequence: int = Field(default=0, ge=0)
    approval_expiry: int | None = Field(default=None, gt=0)
    # The Safe as the owners expect it (issue 9, finding 2): compared at every check, so a
    # node that lies about owners, threshold, modules or guard is caught. Unset: unpinned
    # (the bot refuses to record an approval of a policy without owners and threshold).
    owners: Annotated[tuple[Address, ...], AfterValidator(_lower_set)] = ()
    threshold: int | None = Field(default=None, ge=1)
    modules: Annotated[tuple[Address, ...], AfterValidator(_lower_set)] | None = None
    guard: Address | None = None

    @field_validator("guard")
    @classmethod
    def _guard_lower(cls, v: str | None) -> str | None:
        return None if v is None else v.lower()

    @model_validator(mode="after")
    def _threshold_reachable(self) -> Governance:
        if self.threshold is not None and self.owners and self.threshold > len(self.owners):
            raise ValueError(f"threshold {self.threshold} exceeds the {len(self.owners)} "
                             "pinned owners")
        return self


class Coverage(_Model):
    """Which LP positions are protected, and against which underlying."""

    underlying: Symbol  # e.g. "ETH": the option/perp underlying
    quote: Symbol = "USDC"  # the pool's other token, valued at 1 USD
    pool: Address
    underlying_token: Literal["token0", "token1"]
    token_ids: Annotated[tuple[Annotated[int, Field(ge=0)], ...], AfterValidator(_as_set)] = ()  # empty: every position in the pool

    @field_validator("pool")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()


class Venues(_Model):
    options: Annotated[tuple[OptionVenue, ...], AfterValidator(_as_set)] = Field(
        default=("deribit",), min_length=1)


class Liquidity(_Model):
    max_spread: float = Field(default=0.15, gt=0, le=2)  # (ask - bid) / mid
    min_open_interest: float = Field(default=10.0, ge=0)  # underlying units
    max_quote_age_seconds: int = Field(default=300, gt=0)


class Trigger(_Model):
    min_level: TriggerLevel | None = None
    signals: dict[SignalName, TriggerLevel] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> Trigger:
        if self.min_level is None and not self.signals:
            raise ValueError("a trigger needs min_level and/or signals")
        return self


def _offsets(v: tuple[float, float], side: str) -> tuple[float, float]:
    lo, hi = v
    if lo < 0 or hi < 0:
        raise ValueError(f"strike inside the range: offsets are fractions beyond the range's "
                         f"{side} edge and must be >= 0, got [{lo:g}, {hi:g}]")
    if lo > hi:
        raise ValueError(f"offsets must be [min, max] with min <= max, got [{lo:g}, {hi:g}]")
    return v


class Strike(_Model):
    put_offset: tuple[float, float] = (0.05, 0.07)  # below the lower edge
    calls: bool = False
    call_offset: tuple[float, float] = (0.05, 0.07)  # above the upper edge
    # listed strikes are coarse: accept the nearest strike up to this much (a fraction
    # of the edge) outside the offset band, but never inside the range
    tolerance: float = Field(default=0.02, ge=0, lt=0.5)

    @field_validator("put_offset")
    @classmethod
    def _put(cls, v: tuple[float, float]) -> tuple[float, float]:
        _offsets(v, "lower")
        if v[1] >= 1:
            raise ValueError(f"put offsets must be < 1 (strike > 0), got {v[1]:g}")
        return v

    @field_validator("call_offset")
    @classmethod
    def _call(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _offsets(v, "upper")


class Size(_Model):
    fraction_of_x_max: float = Field(gt=0, le=1)
    min_adjust_fraction: float = Field(default=0.05, gt=0, lt=1)


class Roll(_Model):
    days_before_expiry: float = Field(ge=0)
    # re-apply the strike rule to the replacement (issue 13, Q3); false: keep the old
    # strike within max_strike_change (which then applies)
    restrike: bool = True
    max_strike_change: float = Field(default=0.03, ge=0, lt=1)


class Premium(_Model):
    """The most a layer pays per unit of protection (issue 13, D2); every limit set applies.

    ``max_vol_units`` (default 0.4): ask <= max_vol_units x spot x IV x sqrt(years to
    expiry), IV being the quote's mark IV. An at-the-money option is worth ~0.4 of that
    unit (1/sqrt(2 pi)), so 0.4 admits every out-of-the-money strike quoted near its mark
    at any vol level, and rejects in-the-money strikes and asks far above the mark: the
    limit scales with vol x sqrt(tenor) as protection does, and the budget and the
    session cap bind on what is spent. ``max_pct_of_spot`` (default none): a fixed
    ceiling, ask <= max_pct_of_spot x spot; at crisis vol (DVOL 130-190) no put passes
    a ceiling of a few percent, which is why it is off by default."""

    max_vol_units: float | None = Field(default=0.4, gt=0, le=2)
    max_pct_of_spot: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _some_limit(self) -> Premium:
        if self.max_vol_units is None and self.max_pct_of_spot is None:
            raise ValueError("set max_vol_units and/or max_pct_of_spot (no limit at all "
                             "would pay any ask)")
        return self


class Hysteresis(_Model):
    levels: int = Field(default=0, ge=0, le=3)
    min_engaged_hours: float = Field(default=24.0, ge=0)


class Layer(_Model):
    min_days: float = Field(ge=0)
    max_days: float = Field(gt=0)
    trigger: Trigger
    strike: Strike = Strike()
    size: Size
    roll: Roll
    premium: Premium = Premium()
    hysteresis: Hysteresis = Hysteresis()

    @model_validator(mode="after")
    def _tenor(self) -> Layer:
        if self.min_days >= self.max_days:
            raise ValueError(f"min_days {self.min_days:g} must be < max_days {self.max_days:g}")
        if self.roll.days_before_expiry >= self.max_days:
            raise ValueError(f"roll.days_before_expiry {self.roll.days_before_expiry:g} must be "
                             f"< max_days {self.max_days:g} (nothing could be bought)")
        levels = self.hysteresis.levels
        named = [(f"trigger.min_level {self.trigger.min_level}", self.trigger.min_level)] \
            if self.trigger.min_level else []
        named += [(f"trigger.signals.{k} {v}", v) for k, v in sorted(self.trigger.signals.items())]
        what, lowest = min(named, key=lambda n: level_of(n[1]))
        if levels >= level_of(lowest):
            # a trigger held down to calm fires on any known reading: never released
            raise ValueError(f"hysteresis.levels {levels} must be < {int(level_of(lowest))}: "
                             f"{what} is only {int(level_of(lowest))} level(s) above calm, so "
                             f"the layer would never be released")
        return self


def _default_layers() -> dict[str, Layer]:
    return {
        SHORT: Layer(
            min_days=0, max_days=7,
            trigger=Trigger(min_level="crisis", signals={TERM_STRUCTURE: "elevated"}),
            size=Size(fraction_of_x_max=0.25), roll=Roll(days_before_expiry=1)),
        INTERMEDIATE: Layer(
            min_days=15, max_days=45,
            trigger=Trigger(min_level="stress", signals={IV_PERCENTILE: "elevated"}),
            size=Size(fraction_of_x_max=0.35), roll=Roll(days_before_expiry=10)),
        STRUCTURAL: Layer(
            min_days=60, max_days=120,
            trigger=Trigger(min_level="elevated", signals={TVL_DROP: "elevated"}),
            size=Size(fraction_of_x_max=0.4), roll=Roll(days_before_expiry=30)),
    }


class Budget(_Model):
    share_of_expected_fees: Fraction = 0.5  # total defined-risk budget
    session_cap_share: Fraction = 0.25  # new premium + fees per session, share of the budget
    # worst-case venue fee per unit traded, budgeted with the premium (issue 13, M4):
    # min(fee_of_underlying x underlying price, fee_cap_of_premium x option price);
    # defaults are Deribit's taker fee (0.03%, capped at 12.5% of the option price)
    fee_of_underlying: float = Field(default=0.0003, ge=0, le=0.01)
    fee_cap_of_premium: float = Field(default=0.125, ge=0, le=1)


class MarketCheck(_Model):
    """Refuse new risk on a position whose pool price disagrees with the market (issue 13,
    M1): |pool spot / reference - 1| > max_spot_deviation, the reference being the median
    of fresh perp marks and option forwards of the underlying (none known: refused too)."""

    max_spot_deviation: float = Field(default=0.05, gt=0, le=0.5)


class Perp(_Model):
    enabled: bool = False
    hedge_ratio: Fraction = 0.5
    rebalance_band: float = Field(default=0.1, gt=0, lt=1)  # share of the underlying's total x_max
    venues: Annotated[tuple[PerpVenue, ...], AfterValidator(_as_set)] = Field(
        default=("hyperliquid",), min_length=1)
    max_quote_age_seconds: int = Field(default=300, gt=0)


class Depeg(_Model):
    action: DepegAction = "exit_lp"
    min_level: TriggerLevel = "stress"


def _as_model_set(v: tuple[BaseModel, ...]) -> tuple[BaseModel, ...]:
    """Like _as_set for models (no ordering of their own): deduplicated, sorted by their
    canonical JSON, so the file's order does not change the policy's hash."""
    by_json = {m.model_dump_json(): m for m in v}
    return tuple(by_json[k] for k in sorted(by_json))


# An address compared and hashed in lower case (the file may use any case).
LowerAddress = Annotated[Address, AfterValidator(str.lower)]


class SwapRoute(_Model):
    """One swap the bot may make: exactly this token in, token out and fee tier."""

    token_in: LowerAddress
    token_out: LowerAddress
    fee: int = Field(gt=0, lt=2**24)  # uint24; a tier the factory lacks simply has no pool


class TokenLimit(_Model):
    """Per token, raw units (integers, as on-chain): at most ``swap_per_period`` sold and
    ``approve_per_period`` approved per period (Roles allowances, refilled each period)."""

    token: LowerAddress
    swap_per_period: int = Field(ge=0, lt=2**128)
    approve_per_period: int = Field(ge=0, lt=2**128)


class Scope(_Model):
    """The bot's on-chain value bounds (Zodiac Roles v2 conditions; docs/governance.md).
    Defaults allow no swap and no approval, and one LP exit per day while the pool is
    within 3% of the oracles. Fail closed: a route's token_in without a limit has a zero
    allowance, a token without a feed fails the on-chain oracle check."""

    swaps: Annotated[tuple[SwapRoute, ...], AfterValidator(_as_model_set)] = ()
    limits: Annotated[tuple[TokenLimit, ...], AfterValidator(_as_model_set)] = ()
    period_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    max_slippage_bps: int = Field(default=100, ge=0, le=1000)  # swap floor vs the oracles
    oracles: dict[LowerAddress, LowerAddress] = Field(default_factory=dict)  # token -> Chainlink USD feed
    max_oracle_age_seconds: int = Field(default=3600, gt=0, le=7 * 86400)
    max_exit_deviation_bps: int = Field(default=300, ge=0, le=5000)  # pool price vs oracle
    max_exits_per_period: int = Field(default=1, ge=0, le=1000)

    @model_validator(mode="after")
    def _consistent(self) -> Scope:
        if len({t.token for t in self.limits}) != len(self.limits):
            raise ValueError("scope.limits: a token is listed twice")
        for i, r in enumerate(self.swaps):
            if r.token_in == r.token_out:
                raise ValueError(f"scope.swaps[{i}]: token_in equals token_out")
        return self


class Policy(_Model):
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    name: str = ""
    governance: Governance = Governance()
    coverage: tuple[Coverage, ...] = Field(min_length=1)
    venues: Venues = Venues()
    liquidity: Liquidity = Liquidity()
    layers: dict[LayerName, Layer] = Field(default_factory=_default_layers, min_length=1,
                                           max_length=MAX_LAYERS)
    budget: Budget = Budget()
    perp: Perp = Perp()
    depeg: Depeg = Depeg()
    market_check: MarketCheck = MarketCheck()
    scope: Scope = Scope()

    @field_validator("coverage")
    @classmethod
    def _coverage_unambiguous(cls, v: tuple[Coverage, ...]) -> tuple[Coverage, ...]:
        """Each position falls under at most one entry: one pool-wide entry per pool, a
        token id listed once per pool. Then the entries' order means nothing: sorted."""
        pool_wide: dict[str, int] = {}
        listed: dict[tuple[str, int], int] = {}
        for i, c in enumerate(v):
            if not c.token_ids:
                if c.pool in pool_wide:
                    raise ValueError(f"entries [{pool_wide[c.pool]}] and [{i}] both cover pool "
                                     f"{c.pool} pool-wide: a position would match both")
                pool_wide[c.pool] = i
            for t in c.token_ids:
                if (c.pool, t) in listed:
                    raise ValueError(f"entries [{listed[(c.pool, t)]}] and [{i}] both list token "
                                     f"id {t} of pool {c.pool}")
                listed[(c.pool, t)] = i
        return tuple(sorted(v, key=lambda c: (c.pool, c.token_ids, c.underlying, c.quote,
                                              c.underlying_token)))

    @model_validator(mode="after")
    def _tenors_disjoint(self) -> Policy:
        items = sorted(self.layers.items(), key=lambda kv: (kv[1].min_days, kv[0]))
        for (name_a, a), (name_b, b) in itertools.pairwise(items):
            if b.min_days < a.max_days:
                raise ValueError(
                    f"layers.{name_b}.min_days: tenor {b.min_days:g}-{b.max_days:g} days overlaps "
                    f"layer '{name_a}' ({a.min_days:g}-{a.max_days:g} days)")
        return self

    def layer_order(self) -> list[str]:
        """Layers by tenor, shortest first: the order budget is allocated in."""
        return [n for n, _ in sorted(self.layers.items(), key=lambda kv: (kv[1].min_days, kv[0]))]


# ------------------------------------------------------------------------------ errors


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        out.extend(_models_in(arg))
    return out


def _model_at(loc: tuple[int | str, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class whose field set applies at ``loc`` (for 'allowed keys')."""
    model: type[BaseModel] = root
    skip_key = False
    for part in loc:
        if skip_key or isinstance(part, int):
            skip_key = False
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        found = _models_in(info.annotation)
        if not found:
            return None
        skip_key = getattr(info.annotation, "__origin__", None) is dict
        model = found[0]
    return model


def format_error(err: Any, root: type[BaseModel] | None = None) -> str:
    """One line ``<field.path>: <problem>`` for one pydantic error of model ``root``."""
    loc = tuple(err.get("loc", ()))
    msg = str(err.get("msg", "invalid"))
    kind = err.get("type")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1], root or Policy)
        allowed = ", ".join(sorted(parent.model_fields)) if parent else "?"
        return f"{_loc(loc)}: unknown field (allowed: {allowed})"
    if kind == "missing":
        return f"{_loc(loc)}: required field missing"
    if kind in ("literal_error", "enum") and loc and loc[-1] == "[key]":
        loc = loc[:-1]
        msg = "unknown name; " + msg[0].lower() + msg[1:]
    if kind == "string_pattern_mismatch" and loc:
        field = loc[-1]
        if field == "pool":
            msg = "must be a 0x-prefixed 20-byte hex address"
        elif field in ("underlying", "quote"):
            msg = "must be an upper-case symbol like ETH or USDC"
        elif field == "[key]":
            loc = loc[:-1]
            msg = "layer names are lower-case identifiers like short, intermediate, structural"
    input_value = err.get("input")
    shown = ""
    if kind is not None and kind not in ("missing", "model_type") and not isinstance(
            input_value, dict | list):
        shown = f" (got {input_value!r})"
    where = _loc(loc)
    return f"{where}: {msg}{shown}" if where else f"{msg}"


def _validation_message(exc: ValidationError) -> str:
    errors = exc.errors()
    first = format_error(errors[0])
    head = tuple(errors[0].get("loc", ()))
    # errors on a parent of the first one are its consequence (e.g. "too short" after a bad item)
    more = [e for e in errors[1:] if tuple(e.get("loc", ())) != head[:len(e.get("loc", ()))]]
    if more:
        first += f" (and {len(more)} more problem{'s' if len(more) > 1 else ''})"
    return first


# ------------------------------------------------------------------------------ loading


def parse_policy(text: str) -> Policy:
    """Validate TOML text into a Policy; PolicyError (one line) on any problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"TOML syntax: {exc}") from None
    return policy_from_dict(data)


def _not_json(value: object, path: tuple[int | str, ...] = ()
              ) -> tuple[tuple[int | str, ...], str] | None:
    """Where a value JSON cannot hold sits (a TOML date/time, nan/inf), and what it is."""
    if isinstance(value, dict):
        for k, v in value.items():
            found = _not_json(v, (*path, str(k)))
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _not_json(v, (*path, i))
            if found is not None:
                return found
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return path, f"numbers must be finite (nan/inf not allowed, got {value!r})"
    if value is None or isinstance(value, str | int | float | bool):
        return None
    return path, "a TOML date/time is not allowed here (write a quoted string or a number)"


def policy_from_dict(data: dict[str, Any]) -> Policy:
    found = _not_json(data)
    if found is not None:  # strict: a TOML date is not a string (nor anything else here)
        where, problem = found
        raise PolicyError(f"{_loc(where)}: {problem}")
    try:
        return Policy.model_validate_json(json.dumps(data, allow_nan=False))
    except ValidationError as exc:
        raise PolicyError(_validation_message(exc)) from None


def canonical_bytes(policy: Policy) -> bytes:
    data = policy.model_dump(mode="json")
    _check_finite(data)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _check_finite(value: object) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise PolicyError("numbers must be finite")
    if isinstance(value, dict):
        for v in value.values():
            _check_finite(v)
    if isinstance(value, list):
        for v in value:
            _check_finite(v)


# id(policy) -> (weak reference, hash). A Policy is frozen (its fields cannot be reassigned,
# nested models are frozen too), so its hash is computed once per object: the daemon and
# the backtester call decide() every tick/hour with the same policy, and re-hashing the
# canonical JSON was ~40% of decide()'s time. The weak reference guards against id reuse.
_HASHES: dict[int, tuple[weakref.ref[Policy], bytes]] = {}


def policy_hash(policy: Policy) -> bytes:
    """keccak256 of the canonical bytes: 32 bytes, what the Safe signs off."""
    key = id(policy)
    hit = _HASHES.get(key)
    if hit is not None and hit[0]() is policy:
        return hit[1]
    digest = bytes(keccak(canonical_bytes(policy)))

    def forget(_ref: weakref.ref[Policy]) -> None:
        _HASHES.pop(key, None)

    _HASHES[key] = (weakref.ref(policy, forget), digest)
    return digest


def policy_hash_hex(policy: Policy) -> str:
    return "0x" + policy_hash(policy).hex()
