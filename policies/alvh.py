"""ALVH: layered outer protection for v3 LP positions, as one pure decision.

``decide(inputs) -> Decision``: exposures (from the positions through
policies.lp_math), the regime per underlying, the current hedge book, the option
and perp quotes, the approved policy and the spend so far give a target hedge book
and the intents that reach it, each with its reason and evidence. No clock (``now``
is an input), no I/O, no randomness; outputs are sorted.

Rules (docs/policy.md has the reference):

- A layer engages for an underlying when the regime level reaches its
  ``trigger.min_level`` or a named signal reaches its level. Once engaged it stays
  engaged at least ``hysteresis.min_engaged_hours`` and, with ``hysteresis.levels``
  = h, until every trigger is more than h levels below its threshold.
- An engaged layer wants ``size.fraction_of_x_max`` of every covered position's
  x_max in puts struck ``strike.put_offset`` below the position's lower edge (and
  calls above the upper edge when ``strike.calls``). Held options of the layer count;
  a shortfall under ``size.min_adjust_fraction`` of the target is left alone.
- Instruments: allowed venue, not expired, days to expiry inside the layer's tenor
  window and not below its roll threshold, fresh two-sided quote, spread and open
  interest within the liquidity filters, ask within the premium limit (scaled with
  IV x sqrt(tenor) by default); the strike nearest the rule, then the cheapest premium
  per unit and day across venues.
- Rolls: a holding of an engaged layer with fewer days to expiry than
  ``roll.days_before_expiry`` is sold and replaced by the nearest strike (within
  ``roll.max_strike_change``) of an eligible later expiry. Released layers are not
  rolled; their options run to expiry. Expired holdings are closed (settled).
- Protection is never sold early and options are never written.
- Budget: premiums plus worst-case fees (rolls first, then layers shortest tenor
  first) are clipped so that the session's new spending stays within the session cap
  and the period's within the total budget; every clip is stated.
- Market check: a position whose pool tokens are not the coverage's underlying/quote,
  or whose pool spot disagrees with the perp marks / option forwards, is refused.
- Unknown regime (missing regime or level None): layers keep their current state,
  nothing new is bought, the perp delta hedge still runs, engaged layers still roll,
  expired options are settled; the reason says unknown. Unknown is never calm.
- Depeg: a depeg signal (on the underlying's or the quote asset's regime) at or above
  ``depeg.min_level`` exits the covered LP positions on-chain (``action = exit_lp``);
  exposure being exited (or returned to the Safe) gets no new protection; rolls only up
  to the layer's share of the exposure left.
- Perps (optional): short ``hedge_ratio`` of what the options leave of the LP delta
  (never long, never past zero net delta), rebalanced when off by more than
  ``rebalance_band`` of x_max; more short goes to the venue whose funding pays shorts
  most, less short comes off the costliest first.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

from policies.exposure import (
    Exposure,
    HeldUnderlying,
    exposure,
    in_usd,
    match_coverage,
    quote_usd,
    spot_mismatch,
    token_mismatch,
)
from policies.hedge import (
    AdjustPerp,
    CloseOption,
    EngageLayer,
    ExitLP,
    HedgeBook,
    Intent,
    OpenOption,
    OptionHolding,
    OptionQuote,
    PerpQuote,
    ReleaseLayer,
    RollOption,
    apply_intents,
    intent_sort_key,
    to_jsonable,
)
from policies.layer_rules import (
    _EPS,
    _Cand,
    _Chain,
    _chain,
    _Engagement,
    _fmt,
    _iso,
    _lots_up,
    _lvl,
    _strike_band,
    engagement,
)
from policies.policy_file import Coverage, Policy, level_of, policy_hash_hex
from policies.pricing import OptionKind
from policies.risk import (
    BookGreeks,
    BudgetLedger,
    BudgetLimits,
    BudgetState,
    aggregate_greeks,
    budget_limits,
    fmt_usd,
    options_delta_floor,
)
from policies.types import Position, Regime
from policies.vocab import DEPEG, EXIT_LP

# ------------------------------------------------------------------------------ I/O types


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    now: int  # unix seconds
    policy: Policy
    positions: tuple[Position, ...]
    regimes: tuple[Regime, ...]
    book: HedgeBook
    budget: BudgetState
    quotes: tuple[OptionQuote, ...] = ()
    perp_quotes: tuple[PerpQuote, ...] = ()
    held: tuple[HeldUnderlying, ...] = ()  # underlying held outside LP (returned by exits)


@dataclass(frozen=True, slots=True)
class LayerTarget:
    """What one layer wants for one underlying and option kind, and what it gets."""

    underlying: str
    layer: str
    kind: OptionKind
    state: str  # engaged | idle | released | unknown
    trigger: str  # why (not) engaged
    desired: float  # fraction of x_max over covered positions (0 unless engaged)
    hedgeable: float  # part of desired with an eligible instrument
    held: float  # valid holdings of the layer (after rolls)
    bought: float  # new this decision
    positions: int
    unhedgeable_positions: int
    instruments: tuple[str, ...]
    reason: str

    @property
    def after(self) -> float:
        return self.held + self.bought


@dataclass(frozen=True, slots=True)
class ClipNote:
    underlying: str
    layer: str
    limit: str  # "session cap" | "total budget"
    wanted_cents: int
    allowed_cents: int
    text: str
    room_cents: int = 0  # what the binding limit had left before this buy


@dataclass(frozen=True, slots=True)
class Decision:
    now: int
    policy_version: str
    policy_hash: str
    intents: tuple[Intent, ...]
    targets: tuple[LayerTarget, ...]
    book_after: HedgeBook
    clips: tuple[ClipNote, ...]
    notes: tuple[str, ...]
    greeks: tuple[BookGreeks, ...]
    budget: BudgetLimits
    spent_cents: int
    exposures: tuple[Exposure, ...] = field(default=())

    @property
    def target_book(self) -> HedgeBook:
        """The hedge book the intents lead to (options, perps, engaged layers, exits)."""
        return self.book_after


# ------------------------------------------------------------------------------ decide


class _Run:
    """The mutable scratchpad of one decide() call (never escapes it)."""

    def __init__(self, inputs: DecisionInputs) -> None:
        self.inputs = inputs
        self.policy = inputs.policy
        self.now = inputs.now
        self.intents: list[Intent] = []
        self.notes: list[str] = []
        self.clips: list[ClipNote] = []
        self.targets: list[LayerTarget] = []
        limits = budget_limits(self.policy.budget.share_of_expected_fees,
                               self.policy.budget.session_cap_share, inputs.budget)
        self.ledger = BudgetLedger(limits)
        self.quotes_by_underlying: dict[tuple[str, OptionKind], list[OptionQuote]] = \
            defaultdict(list)
        for q in inputs.quotes:
            self.quotes_by_underlying[(q.instrument.underlying, q.instrument.kind)].append(q)
        self.chains: dict[tuple[str, str, OptionKind], _Chain] = {}
        self.regimes = {r.underlying: r for r in inputs.regimes}
        self.spot: dict[str, float] = {}
        self.rolled_in: dict[tuple[str, str, OptionKind], float] = defaultdict(float)

    def chain(self, underlying: str, layer_name: str, kind: OptionKind) -> _Chain:
        key = (underlying, layer_name, kind)
        if key not in self.chains:
            self.chains[key] = _chain(self.quotes_by_underlying.get((underlying, kind), ()),
                                      self.policy, self.policy.layers[layer_name], self.now,
                                      self.spot.get(underlying))
        return self.chains[key]

    def clip(self, underlying: str, layer: str, wanted: int, allowed: int, room: int,
             what: str) -> str:
        """Record a clip; ``room`` is what the binding limit had left before this buy."""
        limits = self.ledger.limits
        budget = self.policy.budget
        text = (f"clipped {what}: wanted {fmt_usd(wanted)}, bought {fmt_usd(allowed)}: the "
                f"{limits.binding} had {fmt_usd(room)} left (session cap "
                f"{fmt_usd(limits.session_cap_cents)} = {budget.session_cap_share:.0%} of the "
                f"{fmt_usd(limits.total_cents)} budget, {fmt_usd(limits.remaining_total_cents)}"
                f" of it unspent before this session's decision)")
        self.clips.append(ClipNote(underlying, layer, limits.binding, wanted, allowed, text,
                                   room))
        return text


def decide(inputs: DecisionInputs) -> Decision:
    run = _Run(inputs)
    policy, now, book = inputs.policy, inputs.now, inputs.book

    # exposures of covered positions
    covered: list[tuple[Exposure, Coverage]] = []
    uncovered: list[int] = []
    refused: dict[str, list[str]] = defaultdict(list)  # underlying -> why (M1)
    pending: list[tuple[Position, Coverage]] = []
    for pos in sorted(inputs.positions, key=lambda p: p.token_id):
        cover = match_coverage(policy, pos)
        if cover is None:
            uncovered.append(pos.token_id)
            continue
        pending.append((pos, cover))
    if uncovered:
        run.notes.append(f"{len(uncovered)} position(s) not covered by the policy, ignored: "
                         + ", ".join(str(t) for t in uncovered[:10])
                         + (" ..." if len(uncovered) > 10 else ""))
    refs: dict[str, float | None] = {}
    for pos, cover in pending:
        # the covered token is checked against the market before anything is sized from
        # it (issue 13, M1): a wrong token_side gave spot 0.000333 and a -114,576 ETH perp
        # the quote token at its market price, not exactly $1, during a depeg (Q8)
        e = in_usd(exposure(pos, cover), _quote_usd(run, cover.quote))
        why = token_mismatch(pos, cover)
        if why is None:
            if cover.underlying not in refs:
                refs[cover.underlying] = _market_reference(run, cover.underlying)
            why = spot_mismatch(e.spot, refs[cover.underlying],
                                policy.market_check.max_spot_deviation)
        if why is not None:
            refused[cover.underlying].append(f"position {pos.token_id}: {why}")
            run.notes.append(f"refused position {pos.token_id} ({cover.underlying}): {why}; "
                             "no new protection, no perp change for "
                             f"{cover.underlying} until it agrees")
            continue
        covered.append((e, cover))
    by_underlying: dict[str, list[Exposure]] = defaultdict(list)
    for e, _ in covered:
        by_underlying[e.underlying].append(e)
    for u, exps in by_underlying.items():  # spot: the deepest position's pool price
        run.spot[u] = max(exps, key=lambda e: (e.liquidity, e.pool)).spot
    held: dict[str, float] = defaultdict(float)
    for hu in inputs.held:
        if math.isfinite(hu.amount) and hu.amount > 0:
            held[hu.underlying] += hu.amount

    # depeg exits
    exiting = set(book.exits_pending)
    _depeg(run, covered, exiting)

    # a position being exited keeps its protection until its liquidity is gone (the exit
    # may fail; what it returns to the Safe is still exposed until sold), but gets no new
    # protection (issue 13, M2): ``active`` sizes new buys, ``live`` what is kept
    live: dict[str, list[Exposure]] = {
        u: [e for e in exps if e.liquidity > 0] for u, exps in by_underlying.items()}
    active: dict[str, list[Exposure]] = {
        u: [e for e in exps if e.token_id not in exiting] for u, exps in live.items()}
    underlyings = sorted(set(by_underlying) | {e.underlying for e in book.engaged}
                         | {h.instrument.underlying for h in book.options}
                         | {p.underlying for p in book.perps} | set(held))
    for u in underlyings:  # no position left (all exited): the market's price, if known
        if u not in run.spot and not refused.get(u):
            ref = refs[u] if u in refs else _market_reference(run, u)
            if ref is not None:
                run.spot[u] = ref
    order = policy.layer_order()

    # layer engagement
    state: dict[tuple[str, str], _Engagement] = {}
    for u in underlyings:
        regime = run.regimes.get(u)
        for name in order:
            prev = book.engagement(u, name)
            eng = engagement(name, policy.layers[name], regime, prev, now)
            state[(u, name)] = eng
            if eng.engaged and prev is None:
                run.intents.append(EngageLayer(u, name, now, eng.reason,
                                               {"regime": _lvl(regime.level if regime else None)}))
            elif not eng.engaged and prev is not None:
                run.intents.append(ReleaseLayer(
                    u, name, eng.reason + "; held options run to expiry, not rolled",
                    {"since": prev.since}))

    # expired holdings settle; expiring holdings of engaged layers roll
    valid: dict[tuple[str, str, OptionKind], float] = defaultdict(float)
    expiring: list[OptionHolding] = []
    for h in sorted(book.options, key=lambda h: (h.instrument.key, h.layer)):
        inst = h.instrument
        if inst.expiry <= now:
            run.intents.append(CloseOption(
                inst.underlying, h.layer, inst, h.size,
                f"expired {_iso(inst.expiry)}: settle and remove from the book",
                {"expiry": inst.expiry, "strike": inst.strike}))
            continue
        layer = policy.layers.get(h.layer)
        if layer is not None and inst.days_to_expiry(now) < layer.roll.days_before_expiry:
            expiring.append(h)
        else:
            valid[(inst.underlying, h.layer, inst.kind)] += float(h.size)
    # no rolls for exposure that is gone (issue 13, M3): a layer rolls up to its share of
    # what is still exposed (live positions, exits in flight, tokens exits returned)
    room: dict[tuple[str, str, OptionKind], float] = {}
    for name in order:
        frac = policy.layers[name].size.fraction_of_x_max
        for h in expiring:
            if h.layer != name:
                continue
            key = (h.instrument.underlying, name, h.instrument.kind)
            if key not in room:
                base = sum(e.x_max for e in live.get(key[0], [])) + held.get(key[0], 0.0)
                room[key] = frac * base - valid[key]
            bands = [_strike_band(key[2], e, policy.layers[name])
                     for e in live.get(key[0], [])]
            if held.get(key[0]) and key[0] in run.spot:  # held tokens: struck off spot
                s0 = run.spot[key[0]]
                bands.append(_strike_band(key[2], _spot_only(key[0], s0), policy.layers[name]))
            room[key] -= _roll(run, h, state.get((h.instrument.underlying, name)), room[key],
                               bool(refused.get(key[0])), bands)

    # new protection, layers shortest tenor first
    for name in order:
        layer = policy.layers[name]
        kinds = [OptionKind.PUT] + ([OptionKind.CALL] if layer.strike.calls else [])
        for u in underlyings:
            eng = state[(u, name)]
            for kind in kinds:
                _fill(run, u, name, kind, eng, active.get(u, []),
                      valid[(u, name, kind)] + run.rolled_in[(u, name, kind)])

    # perps: a delta hedge needs prices only, so it runs whatever the regime (issue 13, D5)
    if policy.perp.enabled:
        options_after = apply_intents(HedgeBook(options=book.options), run.intents)
        for u in underlyings:
            if refused.get(u):
                run.notes.append(f"{u}: perp hedge left as is: the pool price is not "
                                 f"trusted ({'; '.join(refused[u])})")
                continue
            _perp(run, u, active.get(u, []), live.get(u, []), held.get(u, 0.0),
                  options_after)

    intents = tuple(sorted(run.intents, key=intent_sort_key))
    after = apply_intents(book, intents)
    quote_map = {q.instrument.key: q for q in inputs.quotes}
    greeks = []
    for u in underlyings:
        exps = live.get(u, [])
        held_u = held.get(u, 0.0)  # underlying held outside LP: LP-side exposure (M3)
        greeks.append(aggregate_greeks(u, now, sum(e.value_usd for e in exps)
                                       + (held_u * run.spot.get(u, math.nan) if held_u else 0.0),
                                       sum(e.delta for e in exps) + held_u,
                                       sum(e.gamma for e in exps),
                                       after, quote_map,
                                       policy.liquidity.max_quote_age_seconds))
    return Decision(
        now=now, policy_version=policy.version, policy_hash=policy_hash_hex(policy),
        intents=intents, targets=tuple(run.targets), book_after=after,
        clips=tuple(run.clips), notes=tuple(run.notes), greeks=tuple(greeks),
        budget=run.ledger.limits, spent_cents=run.ledger.spent_cents,
        exposures=tuple(e for e, _ in covered),
    )


def decision_to_json(decision: Decision) -> dict[str, object]:
    """The whole decision as JSON-ready data (Decimals as strings)."""
    out = to_jsonable(decision)
    budget = to_jsonable(decision.budget)
    assert isinstance(out, dict) and isinstance(budget, dict)
    out["budget"] = {**budget, "remaining_cents": decision.budget.remaining_cents,
                     "binding": decision.budget.binding}
    targets = []
    for t in decision.targets:
        raw = to_jsonable(t)
        assert isinstance(raw, dict)
        targets.append({**raw, "after": t.after})
    out["targets"] = targets
    return out


def _depeg(run: _Run, covered: Sequence[tuple[Exposure, Coverage]], exiting: set[int]) -> None:
    policy = run.policy
    need = level_of(policy.depeg.min_level)
    for e, cover in covered:
        hits = []
        for asset in sorted({cover.underlying, cover.quote}):
            regime = run.regimes.get(asset)
            if regime is None:
                continue
            for s in regime.signals:
                if s.name == DEPEG and s.level is not None and s.level >= need:
                    hits.append((asset, s))
        if not hits:
            continue
        asset, s = hits[0]
        what = f"depeg on {asset}: {_lvl(s.level)} >= {policy.depeg.min_level} ({s.reason})"
        if policy.depeg.action != EXIT_LP:
            run.notes.append(f"position {e.token_id}: {what}; policy action alert_only")
            continue
        if e.token_id in exiting or e.liquidity == 0:
            continue
        exiting.add(e.token_id)
        run.intents.append(ExitLP(e.token_id, e.underlying, f"{what}: exit the LP position",
                                  {"asset": asset, "level": _lvl(s.level),
                                   "value_usd": e.value_usd, "pool": e.pool}))


def _roll(run: _Run, h: OptionHolding, eng: _Engagement | None, room: float,
          refused: bool, bands: Sequence[tuple[float, float, float]]) -> float:
    """Roll one expiring holding; returns the size of it that was rolled (underlying)."""
    inst = h.instrument
    layer = run.policy.layers[h.layer]
    dte = inst.days_to_expiry(run.now)
    head = (f"roll {h.layer}: {inst.symbol} has {dte:.1f}d to expiry < "
            f"{layer.roll.days_before_expiry:g}d")
    if eng is None or not eng.engaged:
        run.notes.append(f"{head}, but the layer is not engaged: left to expire")
        return 0.0
    if refused:
        run.notes.append(f"{head}, but the pool price of {inst.underlying} is not trusted: "
                         "not rolled")
        return 0.0
    size = h.size
    if room < float(size) - _EPS:  # roll only what the remaining exposure needs (M3)
        need = _lots_up(max(room, 0.0), inst.size_step)
        size = min(h.size, need * inst.size_step)
        if size <= 0:
            run.notes.append(f"{head}, but the layer's exposure is already covered or gone "
                             f"(room {_fmt(max(room, 0.0))} {inst.underlying}): not rolled, "
                             "left to expire")
            return 0.0
    chain = run.chain(inst.underlying, h.layer, inst.kind)
    if layer.roll.restrike:
        # re-apply the strike rule (issue 13, Q3): the band of the exposure whose rule
        # target is nearest the old strike; after a fall the old strike is in the money
        if not bands:
            run.notes.append(f"{head}, but no exposure left to strike against: not rolled")
            return 0.0
        target, lo, hi = min(bands, key=lambda b: (abs(b[0] - inst.strike), b[0]))
        cand = chain.nearest(target, lo, hi)
        where = f"the strike rule's band {lo:.6g}-{hi:.6g}"
    else:
        tol = layer.roll.max_strike_change
        cand = chain.nearest(inst.strike, inst.strike * (1 - tol), inst.strike * (1 + tol))
        where = f"{tol:.0%} of strike {inst.strike:g}"
    if cand is None:
        run.notes.append(f"{head}, but no eligible instrument within {where} "
                         f"(rejected: {chain.rejected}): not rolled")
        return 0.0
    new = cand.instrument
    lots = math.ceil(size / new.size_step)
    # the sale of the old leg pays a fee too: budgeted per new lot at the worst case
    sale_fee = _sale_fee_lot(run, inst.underlying, new.size_step)
    per_lot = cand.lot_cost + sale_fee
    wanted = lots * per_lot
    take = min(lots, run.ledger.affordable_lots(per_lot))
    open_size = take * new.size_step
    close_size = size if take == lots else (
        (open_size / inst.size_step).to_integral_value(rounding=ROUND_DOWN) * inst.size_step)
    if close_size <= 0:  # what fits would not even replace one lot of the old holding
        take, open_size = 0, Decimal(0)
    clip = ""
    if take < lots:
        clip = run.clip(inst.underlying, h.layer, wanted, take * per_lot,
                        run.ledger.remaining_cents, f"roll of {inst.symbol}")
    if take == 0:
        run.notes.append(f"{head}: not rolled ({clip})")
        return 0.0
    premium = take * cand.premium_lot
    fee = take * (cand.fee_lot + sale_fee)
    run.ledger.spend(premium + fee)
    run.rolled_in[(inst.underlying, h.layer, inst.kind)] += float(open_size)
    partial = (f"; {close_size} of {h.size} rolled, the rest expires: the layer's exposure "
               f"needs only that" if size < h.size else "")
    reason = (f"{head}; into {new.venue}:{new.symbol} strike {new.strike:g}, "
              f"{cand.dte:.1f}d, {open_size} {inst.underlying} at ask {cand.ask:g} = "
              f"{fmt_usd(premium)} + fees {fmt_usd(fee)}" + partial
              + (f"; {clip}" if clip else "")
              + ("; regime unknown: the existing protection is kept, nothing new"
                 if eng.state == "unknown" else ""))
    run.intents.append(RollOption(
        inst.underlying, h.layer, inst, close_size, new, open_size, cand.ask, premium, reason,
        {"days_to_expiry": dte, "roll_days": layer.roll.days_before_expiry,
         "new_days_to_expiry": cand.dte, "premium_cents": premium, "fee_cents": fee,
         "clipped": bool(clip), "exposure_room": room}, fee_cents=fee))
    return float(close_size)


def _spot_only(u: str, spot: float) -> Exposure:
    """A stand-in exposure for underlying held outside LP: both edges at spot."""
    return Exposure(0, u, "", "", spot, spot, spot, False, 0, 0.0, 0.0, 0.0, 0.0)


def _sale_fee_lot(run: _Run, underlying: str, step: Decimal) -> int:
    """Worst-case fee of selling one ``step`` (the fee cap needs the bid: not assumed)."""
    cfg = run.policy.budget
    price = run.spot.get(underlying, 0.0)
    per_unit = Decimal(repr(cfg.fee_of_underlying)) * Decimal(repr(price))
    return int((per_unit * step * 100).to_integral_value(rounding=ROUND_CEILING))


def _quote_usd(run: _Run, asset: str) -> float:
    regime = run.regimes.get(asset)
    for s in regime.signals if regime is not None else ():
        if s.name == "depeg" and s.level is not None:
            return quote_usd(s.evidence)
    return 1.0


def _market_reference(run: _Run, u: str) -> float | None:
    """Median of fresh perp marks and option forwards of ``u`` (None: nothing fresh)."""
    now, pol = run.now, run.policy
    vals = [q.mark for q in run.inputs.perp_quotes
            if q.underlying == u and q.mark is not None and math.isfinite(q.mark)
            and q.mark > 0 and 0 <= now - q.as_of <= pol.perp.max_quote_age_seconds]
    vals += [q.forward for q in run.inputs.quotes
             if q.instrument.underlying == u and q.forward is not None
             and math.isfinite(q.forward) and q.forward > 0 and q.instrument.expiry > now
             and 0 <= now - q.as_of <= pol.liquidity.max_quote_age_seconds]
    if not vals:
        return None
    vals.sort()
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else 0.5 * (vals[mid - 1] + vals[mid])


def _fill(run: _Run, u: str, name: str, kind: OptionKind, eng: _Engagement,
          exps: Sequence[Exposure], held: float) -> None:
    layer = run.policy.layers[name]
    frac = layer.size.fraction_of_x_max

    def target(desired: float, hedgeable: float, bought: float, n_unhedged: int,
               insts: Sequence[str], reason: str) -> None:
        run.targets.append(LayerTarget(
            underlying=u, layer=name, kind=kind, state=eng.state, trigger=eng.reason,
            desired=desired, hedgeable=hedgeable, held=held, bought=bought,
            positions=len(exps), unhedgeable_positions=n_unhedged,
            instruments=tuple(insts), reason=reason))

    if not eng.engaged:
        target(0.0, 0.0, 0.0, 0, (), eng.reason)
        return
    desired = frac * sum(e.x_max for e in exps)
    chain = run.chain(u, name, kind)
    per: dict[tuple[str, str], float] = defaultdict(float)
    cands: dict[tuple[str, str], _Cand] = {}
    unhedged = 0
    for e in exps:
        t, lo, hi = _strike_band(kind, e, layer)
        c = chain.nearest(t, lo, hi)
        if c is None:
            unhedged += 1
            continue
        per[c.instrument.key] += frac * e.x_max
        cands[c.instrument.key] = c
    hedgeable = sum(per.values())
    if unhedged:
        run.notes.append(f"{u} {name} {kind.value}s: {unhedged} position(s) without an eligible "
                         f"instrument (rejected quotes: {chain.rejected or 'none listed'})")
    if eng.state == "unknown":
        target(desired, hedgeable, 0.0, unhedged, (), eng.reason)
        return
    shortfall = hedgeable - held
    if hedgeable <= 0 or shortfall < layer.size.min_adjust_fraction * hedgeable:
        why = (f"{eng.reason}; target {_fmt(desired)} {u}, held {_fmt(held)}: "
               + ("no eligible instrument" if hedgeable <= 0 else "within the adjust band"))
        target(desired, hedgeable, 0.0, unhedged, (), why)
        return
    keys = sorted(per, key=lambda k: cands[k].sort_key)
    want = {k: _lots_up(shortfall * per[k] / hedgeable, cands[k].instrument.size_step)
            for k in keys}
    take: dict[tuple[str, str], int] = {}
    clipped = False
    for k in keys:
        c = cands[k]
        n = min(want[k], run.ledger.affordable_lots(c.lot_cost))
        clipped |= n < want[k]
        take[k] = n
        run.ledger.spend(n * c.lot_cost)
    if clipped:  # top up with whatever still fits, cheapest first, up to the shortfall
        left = shortfall - sum(float(take[k] * cands[k].instrument.size_step) for k in keys)
        for k in keys:
            if left <= _EPS:
                break
            c = cands[k]
            n = min(_lots_up(left, c.instrument.size_step),
                    run.ledger.affordable_lots(c.lot_cost))
            take[k] += n
            run.ledger.spend(n * c.lot_cost)
            left -= float(n * c.instrument.size_step)
    wanted_cents = sum(want[k] * cands[k].lot_cost for k in keys)
    got_cents = sum(take[k] * cands[k].lot_cost for k in keys)
    clip = ""
    if clipped:
        clip = run.clip(u, name, wanted_cents, got_cents, run.ledger.remaining_cents + got_cents,
                        f"{name} {kind.value}s on {u}")
    bought = 0.0
    for k in keys:
        if take[k] == 0:
            continue
        c = cands[k]
        size = take[k] * c.instrument.size_step
        bought += float(size)
        premium = take[k] * c.premium_lot
        fee = take[k] * c.fee_lot
        reason = (f"{name} layer ({eng.reason}): {kind.value} {c.instrument.strike:g} "
                  f"{c.dte:.1f}d on {c.instrument.venue}, {size} {u} of a "
                  f"{_fmt(shortfall)} {u} shortfall (target {frac:g} x x_max = "
                  f"{_fmt(hedgeable)}, held {_fmt(held)}), ask {c.ask:g} = {fmt_usd(premium)}"
                  f" + fees {fmt_usd(fee)}" + (f"; {clip}" if clip else ""))
        run.intents.append(OpenOption(
            u, name, c.instrument, size, c.ask, premium, reason,
            {"layer": name, "trigger": eng.reason, "target": hedgeable, "held": held,
             "shortfall": shortfall, "lots": take[k], "lot_cost_cents": c.lot_cost,
             "fee_lot_cents": c.fee_lot, "days_to_expiry": c.dte,
             "premium_per_unit_day": c.metric, "clipped": clipped}, fee_cents=fee))
    why = (f"{eng.reason}; target {_fmt(desired)} {u}, held {_fmt(held)}, buying "
           f"{_fmt(bought)}" + (f"; {clip}" if clip else ""))
    target(desired, hedgeable, bought, unhedged,
           [f"{cands[k].instrument.venue}:{cands[k].instrument.symbol}" for k in keys if take[k]],
           why)


def _perp(run: _Run, u: str, active: Sequence[Exposure], live: Sequence[Exposure],
          held: float, options_after: HedgeBook) -> None:
    """Perp delta hedge of what the options leave (issue 13, D3).

    residual = LP delta + options delta after this plan, at most the LP delta; the target
    short is ``hedge_ratio x residual``, never below zero (never long) and never past the
    residual (net delta LP + options + perps never crosses zero). Exposure being
    removed (exits in flight, tokens exits returned) keeps its short but gets no more
    (M2/M3): the short may grow only to the target of the active positions and is bought
    back only below the target counting everything still held."""
    cfg = run.policy.perp
    book = run.inputs.book
    fresh: list[PerpQuote] = [
        q for q in run.inputs.perp_quotes
        if q.underlying == u and q.venue in cfg.venues and q.as_of <= run.now
        and run.now - q.as_of <= cfg.max_quote_age_seconds and q.funding_rate_8h is not None
        and math.isfinite(q.funding_rate_8h) and q.size_step > 0]
    fresh.sort(key=lambda q: (-(q.funding_rate_8h or 0.0), q.venue))
    quote_map = {q.instrument.key: q for q in run.inputs.quotes}
    opt_d, unknown = options_delta_floor(u, run.now, options_after, quote_map,
                                         run.policy.liquidity.max_quote_age_seconds)
    d_new = sum(e.delta for e in active)
    d_keep = sum(e.delta for e in live) + held
    x_max = sum(e.x_max for e in live)
    current = book.perp_total(u)
    if fresh:
        step = fresh[0].size_step
    else:
        steps = [q.size_step for q in run.inputs.perp_quotes if q.underlying == u]
        step = min(steps) if steps else Decimal("0.001")

    def goal(delta: float) -> Decimal:  # rounded toward zero: never more short than asked
        # what the options leave of the exposure, never more than the exposure itself
        # (long calls' delta is not shorted: no perp short without LP exposure behind it)
        raw = Decimal(repr(-cfg.hedge_ratio * min(max(delta + opt_d, 0.0), max(delta, 0.0))))
        return (raw / step).to_integral_value(rounding=ROUND_CEILING) * step

    more_to, back_to = goal(d_new), goal(d_keep)  # back_to <= more_to <= 0
    band = cfg.rebalance_band * x_max
    past_zero = float(current) + d_keep + opt_d < -_EPS and current < 0
    if current > more_to and float(current - more_to) > band:
        target = more_to
    elif current < back_to and (float(back_to - current) > band or past_zero):
        target = back_to
    else:
        return
    diff = target - current
    evidence: dict[str, object] = {"lp_delta": d_keep - held, "lp_delta_active": d_new,
                                   "held": held, "options_delta": opt_d,
                                   "options_delta_unknown": list(unknown),
                                   "hedge_ratio": cfg.hedge_ratio, "target": str(target),
                                   "current": str(current), "band": band}
    unk = (f" ({len(unknown)} option(s) without a fresh quote counted at their most "
           f"negative delta)" if unknown else "")
    head = (f"perp delta hedge: LP delta {_fmt(d_keep - held)} {u}"
            + (f" + held {_fmt(held)}" if held else "")
            + f" + options delta {_fmt(opt_d)}{unk} x ratio {cfg.hedge_ratio:g} -> target "
            f"{target} {u}, now {current}, off by {diff}"
            + (" (net delta below zero: bought back whatever the band)" if past_zero
               and diff > 0 and float(diff) <= band else f" > band {_fmt(band)}")
            + ("; exposure being exited gets no new short" if d_new < d_keep - held - _EPS
               else ""))
    if diff < 0:
        if not fresh:
            run.notes.append(f"{head}; no allowed perp venue with a fresh funding quote")
            return
        best = fresh[0]
        run.intents.append(AdjustPerp(
            u, best.venue, diff, target,
            f"{head}; short more on {best.venue} (funding {best.funding_rate_8h:+.4%}/8h, "
            f"best for shorts)", {**evidence, "funding_8h": best.funding_rate_8h}))
        return
    funding = {q.venue: q.funding_rate_8h for q in fresh}
    shorts = sorted((p for p in book.perps if p.underlying == u and p.size < 0),
                    key=lambda p: (funding.get(p.venue, -math.inf), p.venue))
    left = diff
    for p in shorts:
        if left <= 0:
            break
        cut = min(left, -p.size)
        left -= cut
        rate = funding.get(p.venue)
        run.intents.append(AdjustPerp(
            u, p.venue, cut, target,
            f"{head}; buy back {cut} on {p.venue} (funding "
            + (f"{rate:+.4%}/8h" if rate is not None else "unknown") + ", costliest short first)",
            {**evidence, "funding_8h": rate}))
