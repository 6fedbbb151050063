"""Overrides in force, applied to the approved policy and the hedge book (pure).

An override is what bot/governance.py verified and stored (kind, params, reason, nonce,
expiry; kinds and params as ``validate_override`` checks them). Here they only change
the inputs of ``decide``: the effective policy and book, plus what decide never does on
its own (exits and early closes the owners asked for). Rules:

- in force means ``expiry > now`` (``now`` is an input; an expired override is ignored and
  not listed); overrides apply in nonce order (ties by hash), so any input order gives
  the same result;
- every override in force yields one ``Applied`` entry carrying the owners' reason and
  what it changed, or why it changed nothing (unknown layer, unknown cap, bad value).

Kinds:

- ``pause_layer`` {layer}: the layer leaves the effective policy: it neither engages,
  releases, buys nor rolls; its engagement and held options stay in the book (they run to
  expiry).
- ``resume_layer`` {layer}: undoes an earlier pause (pause_layer, close_protection_early,
  disable_hedging) of that layer.
- ``close_protection_early`` {layer}: paused as above, its engagement dropped from the
  book, and its held options listed in ``close_early`` (decide never sells protection).
- ``change_cap`` {cap, value}: ``value`` (a fraction in [0, 1]) replaces one cap:
  ``session_budget_fraction`` / ``session_cap_share`` (budget.session_cap_share),
  ``budget_share`` / ``share_of_expected_fees`` (budget.share_of_expected_fees),
  ``hedge_ratio`` (perp.hedge_ratio).
- ``disable_hedging``: every layer paused and perps disabled (depeg exits still apply).
- ``pause_new_risk``: no new premium (session cap share 0, so buys and rolls are clipped
  with the reason stated) and perps left as they are.
- ``add_protection`` {layer}: the layer is engaged as of ``now`` for every covered
  underlying not already engaged in it (and resumed if paused); its triggers' hysteresis
  releases it after the override expires.
- ``emergency_exit``: every covered position with liquidity and no exit in flight is
  listed in ``exits``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from policies.alvh import DecisionInputs
from policies.exposure import match_coverage
from policies.hedge import HedgeBook, LayerEngagement, OptionHolding
from policies.policy_file import Policy
from policies.types import Position
from policies.vocab import OVERRIDE_KINDS

KINDS = OVERRIDE_KINDS  # the vocabulary's override kinds

# cap name -> (policy section, field)
CAPS: dict[str, tuple[str, str]] = {
    "session_budget_fraction": ("budget", "session_cap_share"),
    "session_cap_share": ("budget", "session_cap_share"),
    "budget_share": ("budget", "share_of_expected_fees"),
    "share_of_expected_fees": ("budget", "share_of_expected_fees"),
    "hedge_ratio": ("perp", "hedge_ratio"),
}


@dataclass(frozen=True, slots=True)
class Override:
    """One verified override (bot.db.models.OverrideRecord without the audit fields)."""

    nonce: int
    kind: str
    params: Mapping[str, Any]
    reason: str
    expiry: int  # unix seconds; in force while expiry > now
    override_hash: str = ""

    def in_force(self, now: int) -> bool:
        return self.expiry > now

    def to_json(self) -> dict[str, Any]:
        return {"nonce": self.nonce, "kind": self.kind, "params": dict(self.params),
                "reason": self.reason, "expiry": self.expiry,
                "override_hash": self.override_hash}


def parse_params(text: str) -> dict[str, Any]:
    """The params of a stored override (canonical JSON text)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"override params must be a JSON object, got {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Applied:
    """What one override in force did (``applied`` False: nothing, and ``effect`` says why)."""

    nonce: int
    kind: str
    applied: bool
    effect: str
    reason: str  # the owners' reason, as signed
    override_hash: str = ""

    def text(self) -> str:
        state = "applied" if self.applied else "not applied"
        return f"override #{self.nonce} {self.kind} {state}: {self.effect} (reason: {self.reason})"


@dataclass(frozen=True, slots=True)
class Overridden:
    policy: Policy  # the effective policy decide runs
    book: HedgeBook  # the effective book decide starts from
    applied: tuple[Applied, ...] = ()
    exits: tuple[int, ...] = ()  # LP token ids to exit (emergency_exit)
    close_early: tuple[OptionHolding, ...] = field(default=())  # held options to sell


def in_force(overrides: Iterable[Override], now: int) -> tuple[Override, ...]:
    """The overrides in force at ``now``, in application order (nonce, then hash)."""
    return tuple(sorted((o for o in overrides if o.in_force(now)),
                        key=lambda o: (o.nonce, o.override_hash, o.kind, o.reason)))


def _fraction(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite() or not Decimal(0) <= d <= Decimal(1):
        return None
    return float(d)


class _State:
    def __init__(self, policy: Policy, book: HedgeBook, now: int) -> None:
        self.policy = policy
        self.now = now
        self.engaged = list(book.engaged)
        self.book = book
        self.paused: set[str] = set()
        self.budget: dict[str, float] = {}
        self.perp: dict[str, Any] = {}
        self.exits: list[int] = []
        self.close: list[OptionHolding] = []

    def underlyings(self) -> list[str]:
        return sorted({c.underlying for c in self.policy.coverage})


def _layer(s: _State, o: Override) -> tuple[str | None, str]:
    name = o.params.get("layer")
    if not isinstance(name, str) or name not in s.policy.layers:
        return None, f"no layer {name!r} in the approved policy ({', '.join(sorted(s.policy.layers))})"
    return name, ""


def _apply_one(s: _State, o: Override, positions: Sequence[Position]) -> tuple[bool, str]:
    kind = o.kind
    if kind in ("pause_layer", "resume_layer", "close_protection_early", "add_protection"):
        name, why = _layer(s, o)
        if name is None:
            return False, why
        if kind == "pause_layer":
            if name in s.paused:
                return False, f"layer {name} already paused"
            s.paused.add(name)
            return True, (f"layer {name} paused: no engage, release, buy or roll; held options "
                          "run to expiry")
        if kind == "resume_layer":
            if name not in s.paused:
                return False, f"layer {name} was not paused"
            s.paused.discard(name)
            return True, f"layer {name} resumed"
        if kind == "close_protection_early":
            s.paused.add(name)
            dropped = [e for e in s.engaged if e.layer == name]
            s.engaged = [e for e in s.engaged if e.layer != name]
            held = sorted((h for h in s.book.options if h.layer == name),
                          key=lambda h: (h.instrument.key, h.layer))
            s.close.extend(h for h in held if h not in s.close)
            return True, (f"layer {name} paused and released ({len(dropped)} engagement(s)); "
                          f"{len(held)} held option(s) to close early")
        # add_protection
        s.paused.discard(name)
        added = []
        for u in s.underlyings():
            if not any(e.underlying == u and e.layer == name for e in s.engaged):
                s.engaged.append(LayerEngagement(u, name, s.now))
                added.append(u)
        return True, (f"layer {name} engaged for {', '.join(added)} as of {s.now}" if added
                      else f"layer {name} already engaged for every covered underlying")
    if kind == "change_cap":
        cap = o.params.get("cap")
        if not isinstance(cap, str) or cap not in CAPS:
            return False, f"unknown cap {cap!r} (one of {', '.join(sorted(CAPS))})"
        value = _fraction(o.params.get("value"))
        if value is None:
            return False, f"cap {cap}: value {o.params.get('value')!r} is not a fraction in [0, 1]"
        section, name = CAPS[cap]
        (s.budget if section == "budget" else s.perp)[name] = value
        return True, f"{section}.{name} = {value:g}"
    if kind == "disable_hedging":
        s.paused |= set(s.policy.layers)
        s.perp["enabled"] = False
        return True, "every layer paused and perps disabled; depeg exits still apply"
    if kind == "pause_new_risk":
        s.budget["session_cap_share"] = 0.0
        s.perp["enabled"] = False
        return True, "no new premium this session (cap 0) and perps left as they are"
    if kind == "emergency_exit":
        pending = set(s.book.exits_pending) | set(s.exits)
        ids = sorted(p.token_id for p in positions
                     if p.liquidity > 0 and p.token_id not in pending
                     and match_coverage(s.policy, p) is not None)
        s.exits.extend(ids)
        return True, f"exit {len(ids)} covered LP position(s)"
    return False, f"unknown override kind {kind!r}"


def apply_overrides(policy: Policy, book: HedgeBook, overrides: Iterable[Override], now: int,
                    positions: Sequence[Position] = ()) -> Overridden:
    """The effective policy and book with the overrides in force at ``now`` applied."""
    s = _State(policy, book, now)
    applied: list[Applied] = []
    for o in in_force(overrides, now):
        ok, effect = _apply_one(s, o, positions)
        applied.append(Applied(o.nonce, o.kind, ok, effect, o.reason, o.override_hash))
    eff = policy
    if s.paused:
        eff = eff.model_copy(update={"layers": {n: layer for n, layer in policy.layers.items()
                                                if n not in s.paused}})
    if s.budget:
        eff = eff.model_copy(update={"budget": policy.budget.model_copy(update=s.budget)})
    if s.perp:
        eff = eff.model_copy(update={"perp": policy.perp.model_copy(update=s.perp)})
    new_book = book
    if s.engaged != list(book.engaged):
        new_book = replace(book, engaged=tuple(sorted(s.engaged,
                                                      key=lambda e: (e.underlying, e.layer))))
    return Overridden(eff, new_book, tuple(applied), tuple(s.exits), tuple(s.close))


def apply_to_inputs(inputs: DecisionInputs, overrides: Iterable[Override]
                    ) -> tuple[DecisionInputs, Overridden]:
    """``inputs`` with the overrides in force at ``inputs.now`` applied to its policy and
    book, and what each override did."""
    o = apply_overrides(inputs.policy, inputs.book, overrides, inputs.now, inputs.positions)
    return replace(inputs, policy=o.policy, book=o.book), o
