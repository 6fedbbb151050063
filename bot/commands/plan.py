"""CLI command: plan — what the policy would do in a given state, with reasons.

`lphedge plan --state STATE.json --policy POLICY.toml [--json]` lets owners review a
policy before approving its hash. The decision is policies.alvh.decide, unchanged.

`lphedge plan --live --policy POLICY.toml [--config CFG] [--dump-state FILE]` assembles the
state from the chain and the venues instead (bot/assemble.py: positions at one block, the
market now, the stored hedge book and budget, the approved policy in force with the
overrides in force) and decides on it; ``--dump-state`` writes that state in the state-file
format (with the overrides), so the decision replays offline with ``--state FILE``.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.commands.files import check_out_path, check_unix_time, write_atomic
from bot.errors import UserError
from bot.policy_loader import load_policy
from policies.alvh import Decision, DecisionInputs, decide, decision_to_json
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
from policies.risk import fmt_usd, usd_to_cents
from policies.state_file import MAX_USD, StateError, parse_state

if TYPE_CHECKING:
    from bot.assemble import Assembled
    from bot.observe.positions import PositionReading

MAX_POSITION_ROWS = 25


def _load(state_path: Path, policy_path: Path) -> tuple[Decision, DecisionInputs]:
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
    return decide(inputs), inputs


def _fee_income_cents(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UserError(f"--fee-income {text!r}: expected a USD amount, e.g. 60000") from None
    if not value.is_finite() or value < 0:
        raise UserError(f"--fee-income {text!r}: must be a finite amount >= 0")
    if value > MAX_USD:  # the state file's bound: no 400-digit dollar figure
        raise UserError(f"--fee-income {text!r}: more than ${MAX_USD:,} is not a fee income")
    return usd_to_cents(value, round_up=False)  # income rounds down: never a wider budget


def _live(policy_path: Path, config: str | None, now: int | None,
          fee_income_cents: int | None) -> tuple[Decision, Assembled]:
    """Assemble from the chain and the venues (settings) and decide."""
    import asyncio

    from adapters.evm.safe import SafeAdapter
    from adapters.redact import redact_urls
    from bot import governance as G
    from bot.assemble import assemble, live_config, observe, read_past
    from bot.audit_store import AuditStore
    from bot.db import open_engine
    from bot.settings import load_settings
    from policies.errors import LphedgeError

    settings = load_settings(config)
    chain = settings.chain
    for value, name in ((chain.rpc_urls, "rpc_urls"), (chain.owner, "owner"),
                        (chain.position_manager, "position_manager")):
        if not value:
            raise UserError(f"--live needs chains.{name} (the [[chains]] entry of --config, or "
                            f"LPHEDGE_{name.upper()})")
    url = chain.rpc_urls[0]
    try:  # every URL of the chain, failover, the chain's timeout, its chain id checked
        from adapters.evm.chain import ChainConnection

        safe = SafeAdapter.from_connection(
            ChainConnection(chain.rpc_urls, chain_id=chain.chain_id, timeout=chain.timeout,
                            rate_limit=chain.rate_limit), chain.owner,
            max_block_age=chain.max_block_age, max_block_lag=chain.max_block_lag)
    except LphedgeError:  # wrong chain (refused), RPC unreachable (transient): as they are
        raise
    except Exception as exc:
        raise UserError(f"Safe {chain.owner} on {redact_urls(url)}: "
                        f"{redact_urls(' '.join(str(exc).split()))[:200]}") from None
    engine = open_engine(settings.sqlalchemy_url)  # after the chain answered: nothing created before
    audit = AuditStore(engine)
    loaded = G.PolicyGate(safe, audit).load(policy_path)
    if not loaded.from_file:
        typer.echo(f"warning: {loaded.warning}", err=True)
    policy = loaded.policy  # parsed once from the approved bytes
    at = now if now is not None else int(time.time())
    positions, market = asyncio.run(observe(live_config(settings, policy), at, engine))
    try:
        book, budget, overrides = read_past(
            engine, positions.chain_id, safe.address, at, fee_income_cents,
            gate=G.OverrideGate.for_policy(safe, audit, loaded))  # bound to this policy, re-signed
    except LookupError as exc:
        raise UserError(f"--live: {exc}: give --fee-income USD") from None
    assembled = assemble(positions, market, book=book, budget=budget, policy=policy,
                         overrides=overrides, now=at)
    return decide(assembled.inputs), assembled


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


def _readings(inputs: DecisionInputs) -> list[PositionReading]:
    """The positions decided on, valued like `positions` does (same function, same numbers)."""
    from bot.observe.positions import PositionReading
    from policies.lp_math import position_metrics

    return [PositionReading(p, position_metrics(p)) for p in inputs.positions]


def _render(decision: Decision, console: Console, inputs: DecisionInputs) -> None:
    b = decision.budget
    console.print(f"[bold]policy[/bold] {decision.policy_version}  hash {decision.policy_hash}")
    console.print(f"budget {fmt_usd(b.total_cents)} ({fmt_usd(b.remaining_total_cents)} left), "
                  f"session cap {fmt_usd(b.session_cap_cents)} "
                  f"({fmt_usd(b.remaining_session_cents)} left); this plan spends "
                  f"{fmt_usd(decision.spent_cents)}")

    from bot.commands.positions import render_table

    readings = _readings(inputs)
    console.print(render_table(readings[:MAX_POSITION_ROWS], f"Positions ({len(readings)})"))
    pos = Table(title="Coverage (the policy's view: underlying units, USD)")
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
        policy: Annotated[Path, typer.Option("--policy", help="policy TOML file")],
        state: Annotated[Path | None, typer.Option(
            "--state", help="JSON state file (docs/policy.md)")] = None,
        live: Annotated[bool, typer.Option(
            "--live", help="assemble the state from the chain and venues (settings)")] = False,
        dump_state: Annotated[Path | None, typer.Option(
            "--dump-state", help="with --live: write the assembled state here")] = None,
        config: Annotated[str | None, typer.Option(
            "--config", help="with --live: lphedge TOML config; default LPHEDGE_CONFIG")] = None,
        fee_income: Annotated[str | None, typer.Option(
            "--fee-income", help="with --live: expected fee income of the budget period, USD "
                                 "(default: the stored one)")] = None,
        now: Annotated[int | None, typer.Option(
            "--now", help="with --live: decide at this unix time")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
    ) -> None:
        """What the policy would do in a given state, with reasons (review before approving)."""
        if live and state is not None:
            raise UserError("--state and --live exclude each other")
        if not live and state is None:
            raise UserError("give --state FILE, or --live to assemble the state from the "
                            "chain and venues")
        if not live:
            for flag, value in (("--dump-state", dump_state), ("--config", config),
                                ("--fee-income", fee_income), ("--now", now)):
                if value is not None:
                    raise UserError(f"{flag} needs --live")
        check_unix_time(now, "--now")
        if dump_state is not None:
            check_out_path(dump_state, "--dump-state")
        income = _fee_income_cents(fee_income)
        assembled = None
        if state is not None:
            decision, inputs = _load(state, policy)
        else:
            decision, assembled = _live(policy, config, now, income)
            inputs = assembled.observed
            if dump_state is not None:
                from policies.state_file import dumps_state

                write_atomic(dump_state, dumps_state(assembled.observed, assembled.overrides))
        if as_json:
            from policies.quote import position_json

            doc = decision_to_json(decision)
            doc["positions"] = [position_json(r.position, r.metrics) for r in _readings(inputs)]
            typer.echo(json.dumps(doc, indent=2, sort_keys=True))
            return
        console = Console(width=200)
        if assembled is not None:
            console.print(f"live: chain {assembled.chain_id} block {assembled.block_number} "
                          f"({assembled.block_hash}), approved policy {assembled.policy_hash}")
            for note in assembled.notes():
                console.print(note)
            for t in assembled.exits:
                console.print(f"override: exit LP #{t}")
            for h in assembled.close_early:
                console.print(f"override: close {h.instrument.venue}:{h.instrument.symbol} "
                              f"{h.size} ({h.layer}) early")
            if dump_state is not None:
                console.print(f"state written to {dump_state}")
        _render(decision, console, inputs)
