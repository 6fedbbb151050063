"""CLI command: plan — what the policy would do in a given state, with reasons.

`lphedge plan --state STATE.json --policy POLICY.toml [--json]` lets owners review a
policy before approving its hash. The decision is policies.alvh.decide, unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.errors import UserError
from bot.policy_loader import load_policy
from policies.alvh import Decision, decide, decision_to_json
from policies.hedge import (
    AdjustPerp,
    CloseOption,
    EngageLayer,
    ExitLP,
    Intent,
    OpenOption,
    ReleaseLayer,
    RollOption,
)
from policies.policy_file import Policy, PolicyError
from policies.risk import fmt_usd
from policies.state_file import StateError, parse_state

MAX_POSITION_ROWS = 25


def _load(state_path: Path, policy_path: Path) -> Decision:
    try:
        policy: Policy = load_policy(str(policy_path))
    except PolicyError as exc:
        raise UserError(f"{policy_path}: {exc}") from None
    try:
        text = state_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"{state_path}: cannot read: {why}") from None
    try:
        inputs = parse_state(text, policy)
    except StateError as exc:
        raise UserError(f"{state_path}: {exc}") from None
    return decide(inputs)


def _what(intent: Intent) -> tuple[str, str, str]:
    """(instrument/target, size, premium) columns of one intent."""
    if isinstance(intent, OpenOption):
        i = intent.instrument
        return (f"{i.venue}:{i.symbol}", str(intent.size), fmt_usd(intent.premium_cents))
    if isinstance(intent, RollOption):
        return (f"{intent.close_instrument.symbol} -> {intent.open_instrument.venue}:"
                f"{intent.open_instrument.symbol}", f"{intent.close_size} -> {intent.open_size}",
                fmt_usd(intent.premium_cents))
    if isinstance(intent, CloseOption):
        return (f"{intent.instrument.venue}:{intent.instrument.symbol}", str(intent.size), "")
    if isinstance(intent, AdjustPerp):
        return (f"{intent.venue} perp (target {intent.target_total})", f"{intent.delta:+}", "")
    if isinstance(intent, ExitLP):
        return (f"LP #{intent.token_id}", "all liquidity", "")
    if isinstance(intent, EngageLayer | ReleaseLayer):
        return (intent.layer, "", "")
    return ("", "", "")


def _render(decision: Decision, console: Console) -> None:
    b = decision.budget
    console.print(f"[bold]policy[/bold] {decision.policy_version}  hash {decision.policy_hash}")
    console.print(f"budget {fmt_usd(b.total_cents)} ({fmt_usd(b.remaining_total_cents)} left), "
                  f"session cap {fmt_usd(b.session_cap_cents)} "
                  f"({fmt_usd(b.remaining_session_cents)} left); this plan spends "
                  f"{fmt_usd(decision.spent_cents)}")

    pos = Table(title="Covered positions (underlying units, USD)")
    for col in ("id", "underlying", "range", "spot", "in range", "x_max", "delta", "value"):
        pos.add_column(col, justify="right" if col not in ("underlying", "in range") else "left")
    for e in decision.exposures[:MAX_POSITION_ROWS]:
        pos.add_row(str(e.token_id), e.underlying, f"{e.lower:,.0f}-{e.upper:,.0f}",
                    f"{e.spot:,.2f}", "yes" if e.in_range else "no", f"{e.x_max:,.3f}",
                    f"{e.delta:,.3f}", f"{e.value_usd:,.0f}")
    if len(decision.exposures) > MAX_POSITION_ROWS:
        pos.caption = f"... and {len(decision.exposures) - MAX_POSITION_ROWS} more"
    console.print(pos)

    layers = Table(title="Layers")
    for col in ("underlying", "layer", "kind", "state", "target", "held", "buying", "why"):
        layers.add_column(col, overflow="fold")
    for t in decision.targets:
        layers.add_row(t.underlying, t.layer, t.kind.value, t.state, f"{t.desired:,.3f}",
                       f"{t.held:,.3f}", f"{t.bought:,.3f}", t.trigger)
    console.print(layers)

    intents = Table(title=f"Intents ({len(decision.intents)})")
    for col in ("action", "underlying", "what", "size", "premium", "reason"):
        intents.add_column(col, overflow="fold")
    for intent in decision.intents:
        what, size, premium = _what(intent)
        intents.add_row(intent.action, intent.underlying, what, size, premium, intent.reason)
    console.print(intents)

    for c in decision.clips:
        console.print(f"[yellow]clip[/yellow] {c.underlying} {c.layer}: {c.text}")
    for note in decision.notes:
        console.print(f"note: {note}")
    for g in decision.greeks:
        opt = (f"options delta {g.options_delta:,.3f}, vega {g.options_vega:,.1f}, value "
               f"{g.options_value_usd:,.0f}" if g.options_delta is not None and
               g.options_vega is not None and g.options_value_usd is not None
               else f"options greeks unknown ({'; '.join(g.unknown)})")
        net = f"{g.net_delta:,.3f}" if g.net_delta is not None else "unknown"
        console.print(f"greeks {g.underlying} after plan: LP delta {g.lp_delta:,.3f}, gamma "
                      f"{g.lp_gamma:,.5f}; {opt}; perp {g.perp_delta:,.3f}; net delta {net}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""

    @app.command("plan")
    def plan(
        state: Annotated[Path, typer.Option("--state", help="JSON state file (docs/policy.md)")],
        policy: Annotated[Path, typer.Option("--policy", help="policy TOML file")],
        as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
    ) -> None:
        """What the policy would do in a given state, with reasons (review before approving)."""
        decision = _load(state, policy)
        if as_json:
            typer.echo(json.dumps(decision_to_json(decision), indent=2, sort_keys=True))
            return
        _render(decision, Console(width=200))
