"""Assembly: the one place DecisionInputs are built from live state.

``assemble`` (pure) takes the snapshots (positions at one block, market at one time), what
the stores remember (hedge book, budget spent) and the approved policy in force, already
parsed once from its approved bytes (``LoadedPolicy.policy``), and applies the overrides
in force with policies.overrides. It returns both the inputs as observed (approved policy,
stored book: what ``--dump-state`` writes, with the overrides) and the inputs decide runs.

``read_past`` reads the stores; ``live_config`` is the one mapping from settings to the
observers' configs; ``observe`` runs both observers once (the CLI's one-shot tick).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.observe.market import MarketConfig, MarketSnapshot
from bot.observe.positions import PositionsSnapshot
from policies.alvh import DecisionInputs
from policies.hedge import HedgeBook, OptionHolding
from policies.overrides import Applied, Override, apply_to_inputs, in_force, parse_params
from policies.policy_file import Policy, policy_hash_hex
from policies.risk import BudgetState


@dataclass(frozen=True, slots=True)
class Assembled:
    observed: DecisionInputs  # approved policy, stored book: what a state dump holds
    inputs: DecisionInputs  # with the overrides in force applied: what decide runs
    overrides: tuple[Override, ...]  # in force, in application order
    applied: tuple[Applied, ...]  # what each did, with the owners' reason
    exits: tuple[int, ...]  # LP positions the owners asked to exit (emergency_exit)
    close_early: tuple[OptionHolding, ...]  # held options the owners asked to sell
    chain_id: int
    block_number: int
    block_hash: str
    policy_hash: str  # of the approved policy (decide reports the effective one's)

    def notes(self) -> list[str]:
        return [a.text() for a in self.applied]


def assemble(positions: PositionsSnapshot, market: MarketSnapshot, *, book: HedgeBook,
             budget: BudgetState, policy: Policy, overrides: Iterable[Override] = (),
             now: int | None = None) -> Assembled:
    """DecisionInputs from the snapshots, the stores' book and budget, the approved policy
    and the overrides in force at ``now`` (default: the market snapshot's time)."""
    at = market.now if now is None else now
    observed = DecisionInputs(
        now=at, policy=policy,
        positions=tuple(r.position for r in positions.positions),
        regimes=market.regimes, book=book, budget=budget,
        quotes=market.option_quotes, perp_quotes=market.perp_quotes)
    active = in_force(overrides, at)
    inputs, o = apply_to_inputs(observed, active)
    return Assembled(observed, inputs, active, o.applied, o.exits, o.close_early,
                     positions.chain_id, positions.block_number, positions.block_hash,
                     policy_hash_hex(policy))


def overrides_of(records: Sequence[Any]) -> tuple[Override, ...]:
    """Stored overrides (bot.db.models.OverrideRecord) as policies.overrides.Override."""
    return tuple(Override(int(r.nonce), str(r.kind), parse_params(r.params), str(r.reason),
                          int(r.expiry), str(r.override_hash)) for r in records)


def read_past(engine: Any, chain_id: int, safe: str, now: int,
              expected_income_cents: int | None = None, *, gate: Any
              ) -> tuple[HedgeBook, BudgetState, tuple[Override, ...]]:
    """What decide needs from the stores: the hedge book, the budget at ``now`` (the
    period's expected fee income given or stored; LookupError if unknown) and the
    overrides in force, through the governance gate (``bot.governance.OverrideGate``
    built ``for_policy`` the approved policy in force): only overrides bound to that
    policy and still signed by the pinned owners at a checked block reach decide."""
    from bot.book_store import BookStore

    if (int(gate.safe.chain_id), str(gate.safe.address).lower()) != (int(chain_id), safe.lower()):
        raise ValueError(f"override gate is for Safe {gate.safe.address} on chain "
                         f"{gate.safe.chain_id}, not {safe} on chain {chain_id}")
    store = BookStore(engine, chain_id, safe)
    book = store.load_book()
    budget = store.budget_state(now, expected_income_cents)
    overrides = overrides_of(gate.in_force(now))
    return book, budget, overrides


# ------------------------------------------------------------------------- live wiring
@dataclass(frozen=True)
class LiveConfig:
    """What the one-shot live tick reads, from settings."""

    rpc_urls: tuple[str, ...]
    chain_id: int | None
    timeout: float
    chunk_size: int
    multicall: str
    owner: str  # the Safe holding the positions
    position_manager: str
    db_url: str
    market: MarketConfig
    rate_limit: int = 50  # the chain's requests/s per URL


def live_config(settings: Any, policy: Policy) -> LiveConfig:
    """The one mapping from settings (bot.settings.Settings) to the observers' configs:
    the default chain for positions, [market] for the market, option venues and perp
    venues from the policy."""
    chain = settings.chain
    perp = tuple(policy.perp.venues) if policy.perp.enabled else ()
    market = MarketConfig.from_settings(settings.market,
                                        option_venues=tuple(policy.venues.options),
                                        perp_venues=perp)
    return LiveConfig(tuple(chain.rpc_urls), chain.chain_id, float(chain.timeout),
                      int(chain.multicall_chunk), chain.multicall_address, chain.owner,
                      chain.position_manager, settings.sqlalchemy_url, market,
                      int(chain.rate_limit))


async def observe(cfg: LiveConfig, now: int, engine: Any = None
                  ) -> tuple[PositionsSnapshot, MarketSnapshot]:
    """Both observers once, concurrently (the daemon keeps them open across ticks)."""
    import asyncio

    from bot.observe.market import MarketObserver
    from bot.observe.positions import PositionsObserver

    previous: dict[str, Any] = {}
    if engine is not None:
        from bot.market_signals import STATE_MAX_AGE_S
        from bot.market_store import MarketStore

        previous = MarketStore(engine).load_levels(now, STATE_MAX_AGE_S)
    async with PositionsObserver(cfg.rpc_urls, cfg.owner, cfg.position_manager, cfg.multicall,
                                 expected_chain_id=cfg.chain_id, timeout=cfg.timeout,
                                 chunk_size=cfg.chunk_size, rate_limit=cfg.rate_limit
                                 ) as positions, \
            MarketObserver(cfg.market, engine=engine) as market:
        pos, mkt = await asyncio.gather(positions.read(), market.read(now, previous))
    if engine is not None:
        from bot.market_store import MarketStore

        MarketStore(engine).save_levels(mkt.levels(), now)
    return pos, mkt
