"""Risk limits: the defined-risk budget, the session cap, exact premium accounting, and
greeks aggregated over LP positions, options and perps.

Money is integer US cents. A premium is ``lots * lot_cost_cents`` where a lot is the
instrument's size step and its cost is the ask times the step, rounded *up* to the
cent, so the budgeted premium is never below what the fill would cost at the ask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from policies.errors import Refused
from policies.hedge import HedgeBook, OptionQuote
from policies.pricing import OptionKind, black76, year_fraction


@dataclass(frozen=True, slots=True)
class BudgetState:
    """Inputs: expected fee income over the budget period and what has been spent."""

    expected_fee_income_cents: int
    spent_total_cents: int = 0  # premium spent on protection in the budget period
    spent_session_cents: int = 0  # new premium spent in the current session (day)

    def __post_init__(self) -> None:
        for name in ("expected_fee_income_cents", "spent_total_cents", "spent_session_cents"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer (cents), got {value!r}")


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    total_cents: int  # defined-risk budget = share of expected fee income
    session_cap_cents: int  # session cap = share of the total budget
    remaining_total_cents: int
    remaining_session_cents: int

    @property
    def remaining_cents(self) -> int:
        return min(self.remaining_total_cents, self.remaining_session_cents)

    @property
    def binding(self) -> str:
        """Which limit leaves less room."""
        if self.remaining_session_cents <= self.remaining_total_cents:
            return "session cap"
        return "total budget"

    def describe(self) -> str:
        return (f"session cap {fmt_usd(self.session_cap_cents)} "
                f"({fmt_usd(self.remaining_session_cents)} left), total budget "
                f"{fmt_usd(self.total_cents)} ({fmt_usd(self.remaining_total_cents)} left)")


def _share(cents: int, share: float) -> int:
    return int((Decimal(cents) * Decimal(repr(share))).to_integral_value(rounding=ROUND_FLOOR))


def budget_limits(share_of_expected_fees: float, session_cap_share: float,
                  state: BudgetState) -> BudgetLimits:
    total = _share(state.expected_fee_income_cents, share_of_expected_fees)
    cap = _share(total, session_cap_share)
    return BudgetLimits(
        total_cents=total,
        session_cap_cents=cap,
        remaining_total_cents=max(0, total - state.spent_total_cents),
        remaining_session_cents=max(0, cap - state.spent_session_cents),
    )


def lot_cost_cents(ask: float, step: Decimal) -> int:
    """Premium of one size step at ``ask`` USD per unit, in cents, rounded up."""
    if not math.isfinite(ask) or ask < 0:
        raise ValueError(f"ask must be finite and >= 0, got {ask!r}")
    return int((Decimal(repr(ask)) * step * 100).to_integral_value(rounding=ROUND_CEILING))


def fee_lot_cents(ask: float, underlying_price: float, step: Decimal, fee_of_underlying: float,
                  fee_cap_of_premium: float) -> int:
    """Worst-case venue fee of one size step, in cents, rounded up (issue 13, M4):
    ``min(fee_of_underlying x underlying price, fee_cap_of_premium x ask)`` per unit
    (Deribit: 0.03% of the underlying, at most 12.5% of the option's price)."""
    for name, v in (("ask", ask), ("underlying_price", underlying_price)):
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
    per_unit = min(Decimal(repr(fee_of_underlying)) * Decimal(repr(underlying_price)),
                   Decimal(repr(fee_cap_of_premium)) * Decimal(repr(ask)))
    return int((per_unit * step * 100).to_integral_value(rounding=ROUND_CEILING))


def usd_to_cents(usd: str | Decimal | int, *, round_up: bool = True) -> int:
    """Exact: '1234.5' -> 123450. Sub-cent amounts round up (spending: never under-count)
    or, with ``round_up=False``, down (income a budget is drawn from: never over-count)."""
    value = Decimal(usd) if not isinstance(usd, Decimal) else usd
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {usd!r}")
    return int((value * 100).to_integral_value(
        rounding=ROUND_CEILING if round_up else ROUND_FLOOR))


def fmt_usd(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}${whole:,}.{frac:02d}"


class BudgetOverdraw(Refused):
    """Spending more than the budget leaves: a risk limit said no (exact cents)."""

    def __init__(self, cents: int, remaining_cents: int, binding: str) -> None:
        self.cents = cents
        self.remaining_cents = remaining_cents
        self.binding = binding
        super().__init__(
            f"budget overdraw: spending {cents} cents ({fmt_usd(cents)}) but only "
            f"{remaining_cents} cents ({fmt_usd(remaining_cents)}) left under the {binding}")


class BudgetLedger:
    """Spending inside one decision. ``spend`` never lets the remaining room go negative."""

    def __init__(self, limits: BudgetLimits) -> None:
        self.limits = limits
        self.spent_cents = 0

    @property
    def remaining_cents(self) -> int:
        return self.limits.remaining_cents - self.spent_cents

    def affordable_lots(self, lot_cost: int) -> int:
        if lot_cost <= 0:
            raise ValueError("a lot must cost at least one cent")
        return max(0, self.remaining_cents // lot_cost)

    def spend(self, cents: int) -> None:
        if cents < 0:  # a bug in the caller, not a rule saying no
            raise ValueError(f"cannot spend a negative amount: {cents} cents")
        if cents > self.remaining_cents:
            raise BudgetOverdraw(cents, self.remaining_cents, self.limits.binding)
        self.spent_cents += cents


# ------------------------------------------------------------------------------ greeks


@dataclass(frozen=True, slots=True)
class BookGreeks:
    """Greeks of one underlying across LP positions, options and perps (USD-underlying units).

    ``options_*`` and ``net_delta`` are None (with ``unknown``) when an option held has
    no usable quote (no forward or no IV): unknown stays unknown.
    """

    underlying: str
    lp_value_usd: float
    lp_delta: float
    lp_gamma: float
    options_value_usd: float | None
    options_delta: float | None
    options_gamma: float | None
    options_vega: float | None
    perp_delta: float
    net_delta: float | None
    unknown: tuple[str, ...] = ()


def aggregate_greeks(underlying: str, now: int, lp_value: float, lp_delta: float,
                     lp_gamma: float, book: HedgeBook,
                     quotes: dict[tuple[str, str], OptionQuote],
                     max_quote_age: int | None = None) -> BookGreeks:
    """Greeks after ``book``; a held option whose quote is missing, unusable or (with
    ``max_quote_age``) older than that many seconds or dated after ``now`` is unknown."""
    value = delta = gamma = vega = 0.0
    unknown: list[str] = []
    for h in book.options:
        if h.instrument.underlying != underlying:
            continue
        q = quotes.get(h.instrument.key)
        size = float(h.size)
        if h.instrument.expiry <= now:
            continue  # expired: settles, no greeks
        if q is None or q.forward is None or q.mark_iv is None or q.forward <= 0 \
                or q.mark_iv <= 0 or not math.isfinite(q.forward + q.mark_iv):
            unknown.append(f"{h.instrument.venue}:{h.instrument.symbol}: no forward/IV quote")
            continue
        if max_quote_age is not None and not 0 <= now - q.as_of <= max_quote_age:
            unknown.append(f"{h.instrument.venue}:{h.instrument.symbol}: stale quote "
                           f"({now - q.as_of}s old, max {max_quote_age}s)")
            continue
        g = black76(OptionKind(h.instrument.kind), q.forward, h.instrument.strike,
                    year_fraction(now, h.instrument.expiry), q.mark_iv)
        value += size * g.price
        delta += size * g.delta
        gamma += size * g.gamma
        vega += size * g.vega
    perp = float(book.perp_total(underlying))
    known = not unknown
    return BookGreeks(
        underlying=underlying, lp_value_usd=lp_value, lp_delta=lp_delta, lp_gamma=lp_gamma,
        options_value_usd=value if known else None,
        options_delta=delta if known else None,
        options_gamma=gamma if known else None,
        options_vega=vega if known else None,
        perp_delta=perp,
        net_delta=lp_delta + delta + perp if known else None,
        unknown=tuple(unknown),
    )


def options_delta_floor(underlying: str, now: int, book: HedgeBook,
                        quotes: dict[tuple[str, str], OptionQuote],
                        max_quote_age: int) -> tuple[float, tuple[str, ...]]:
    """Delta of the options held (underlying units) for netting the perp hedge (issue 13,
    D3), and the holdings whose delta is unknown. An unknown delta (no fresh forward/IV)
    counts at its most negative bound (a long put -size, a long call 0): the perp hedge
    sized from it can only be smaller, never flipping the book short."""
    delta = 0.0
    unknown: list[str] = []
    for h in book.options:
        inst = h.instrument
        if inst.underlying != underlying or inst.expiry <= now:
            continue
        q = quotes.get(inst.key)
        size = float(h.size)
        usable = (q is not None and q.forward is not None and q.mark_iv is not None
                  and math.isfinite(q.forward) and math.isfinite(q.mark_iv)
                  and q.forward > 0 and q.mark_iv > 0 and 0 <= now - q.as_of <= max_quote_age)
        if not usable:
            unknown.append(f"{inst.venue}:{inst.symbol}")
            delta += -size if inst.kind is OptionKind.PUT else 0.0
            continue
        assert q is not None and q.forward is not None and q.mark_iv is not None
        g = black76(OptionKind(inst.kind), q.forward, inst.strike,
                    year_fraction(now, inst.expiry), q.mark_iv)
        delta += size * g.delta
    return delta, tuple(unknown)
