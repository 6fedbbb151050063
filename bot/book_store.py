"""Repository of what decide needs from the past, per (chain, Safe): the hedge book (held
options, perps, engaged layers with since, exits in flight) and the budget spent (integer
cents per session = UTC day and per budget period = UTC calendar month, plus the period's
expected fee income). Tables in bot/db/models.py (revision 0002); every unit of work goes
through bot.db.session_scope.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from bot.db import session_scope
from bot.db.models import (
    BudgetPeriod,
    BudgetSpend,
    HedgeEngagement,
    HedgeExitPending,
    HedgeOption,
    HedgePerp,
)
from policies.hedge import (
    HedgeBook,
    Instrument,
    LayerEngagement,
    OptionHolding,
    OptionKind,
    PerpHolding,
)
from policies.risk import BudgetState

SPEND_KINDS = ("premium", "fee")


def session_key(now: int) -> str:
    """The session a time counts against: its UTC day."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def period_key(now: int) -> str:
    """The budget period a time counts against: its UTC calendar month."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


class BookStore:
    def __init__(self, engine: Engine, chain_id: int, safe: str) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.safe = safe

    # -- hedge book ---------------------------------------------------------------------------
    def load_book(self) -> HedgeBook:
        key = (col(HedgeOption.chain_id) == self.chain_id, col(HedgeOption.safe) == self.safe)
        with session_scope(self.engine) as s:
            options = [OptionHolding(Instrument(o.venue, o.symbol, o.underlying,
                                                OptionKind(o.kind), o.strike, o.expiry,
                                                Decimal(o.size_step)), Decimal(o.size), o.layer)
                       for o in s.exec(select(HedgeOption).where(*key))]
            perps = [PerpHolding(p.venue, p.underlying, Decimal(p.size)) for p in s.exec(
                select(HedgePerp).where(col(HedgePerp.chain_id) == self.chain_id,
                                        col(HedgePerp.safe) == self.safe))]
            engaged = [LayerEngagement(e.underlying, e.layer, e.since) for e in s.exec(
                select(HedgeEngagement).where(col(HedgeEngagement.chain_id) == self.chain_id,
                                              col(HedgeEngagement.safe) == self.safe))]
            exits = [int(x.token_id) for x in s.exec(
                select(HedgeExitPending).where(col(HedgeExitPending.chain_id) == self.chain_id,
                                               col(HedgeExitPending.safe) == self.safe))]
        return HedgeBook(
            options=tuple(sorted(options, key=lambda h: (h.instrument.key, h.layer))),
            perps=tuple(sorted(perps, key=lambda p: (p.venue, p.underlying))),
            engaged=tuple(sorted(engaged, key=lambda e: (e.underlying, e.layer))),
            exits_pending=tuple(sorted(exits)),
        )

    def save_book(self, book: HedgeBook) -> None:
        """Replace the stored book with ``book``, in one transaction."""
        with session_scope(self.engine) as s:
            for model in (HedgeOption, HedgePerp, HedgeEngagement, HedgeExitPending):
                s.exec(delete(model).where(col(model.chain_id) == self.chain_id,
                                           col(model.safe) == self.safe))
            cid, safe = self.chain_id, self.safe
            for h in book.options:
                i = h.instrument
                s.add(HedgeOption(chain_id=cid, safe=safe, venue=i.venue, symbol=i.symbol,
                                  underlying=i.underlying, kind=i.kind.value, strike=i.strike,
                                  expiry=i.expiry, size_step=str(i.size_step), size=str(h.size),
                                  layer=h.layer))
            for p in book.perps:
                s.add(HedgePerp(chain_id=cid, safe=safe, venue=p.venue, underlying=p.underlying,
                                size=str(p.size)))
            for e in book.engaged:
                s.add(HedgeEngagement(chain_id=cid, safe=safe, underlying=e.underlying, layer=e.layer,
                                      since=e.since))
            for t in book.exits_pending:
                s.add(HedgeExitPending(chain_id=cid, safe=safe, token_id=str(t)))

    # -- budget -------------------------------------------------------------------------------
    def record_spend(self, ts: int, cents: int, what: str, ref: str) -> bool:
        """Count ``cents`` spent at ``ts`` (premium or fee); False when ``ref`` was recorded
        before (a fill is counted once)."""
        if not isinstance(cents, int) or isinstance(cents, bool) or cents <= 0:
            raise ValueError(f"cents must be a positive integer, got {cents!r}")
        if what not in SPEND_KINDS:
            raise ValueError(f"what must be one of {', '.join(SPEND_KINDS)}, got {what!r}")
        try:
            with session_scope(self.engine) as s:
                s.add(BudgetSpend(chain_id=self.chain_id, safe=self.safe, ts=ts,
                                  session=session_key(ts), period=period_key(ts), cents=cents,
                                  what=what, ref=ref))
        except IntegrityError:
            return False
        return True

    def spent(self, now: int) -> tuple[int, int]:
        """(cents spent in the budget period of ``now``, cents spent in its session)."""
        owner = (col(BudgetSpend.chain_id) == self.chain_id, col(BudgetSpend.safe) == self.safe)
        with session_scope(self.engine) as s:
            period = s.exec(select(func.coalesce(func.sum(BudgetSpend.cents), 0)).where(
                *owner, col(BudgetSpend.period) == period_key(now))).one()
            session = s.exec(select(func.coalesce(func.sum(BudgetSpend.cents), 0)).where(
                *owner, col(BudgetSpend.session) == session_key(now))).one()
        return int(period), int(session)

    def set_expected_income(self, period: str, cents: int) -> None:
        if not isinstance(cents, int) or isinstance(cents, bool) or cents < 0:
            raise ValueError(f"cents must be a non-negative integer, got {cents!r}")
        with session_scope(self.engine) as s:
            row = s.exec(select(BudgetPeriod).where(
                col(BudgetPeriod.chain_id) == self.chain_id, col(BudgetPeriod.safe) == self.safe,
                col(BudgetPeriod.period) == period)).first()
            if row is None:
                s.add(BudgetPeriod(chain_id=self.chain_id, safe=self.safe, period=period,
                                   expected_fee_income_cents=cents))
            else:
                row.expected_fee_income_cents = cents
                s.add(row)

    def expected_income(self, period: str) -> int | None:
        with session_scope(self.engine) as s:
            row = s.exec(select(BudgetPeriod).where(
                col(BudgetPeriod.chain_id) == self.chain_id, col(BudgetPeriod.safe) == self.safe,
                col(BudgetPeriod.period) == period)).first()
            return None if row is None else row.expected_fee_income_cents

    def budget_state(self, now: int, expected_income_cents: int | None = None) -> BudgetState:
        """The budget at ``now``: the period's expected fee income (given, else stored) and
        what was spent. LookupError when the income is unknown (never a default)."""
        income = (expected_income_cents if expected_income_cents is not None
                  else self.expected_income(period_key(now)))
        if income is None:
            raise LookupError(f"expected fee income of budget period {period_key(now)} is "
                              "unknown (record it, or give it)")
        total, session = self.spent(now)
        return BudgetState(income, total, session)
