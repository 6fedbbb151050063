"""Assembly from live state (must-show of issue 8): DecisionInputs from the dev chain (anvil,
real Uniswap v3 and Safe) and loopback venues (ccxt against each venue's wire format), the
stores (hedge book, budget spent, overrides in force) and the policy the Safe approved;
decided, dumped in the state-file format, reloaded with policies.state_file and decided
again: the same intents and targets, byte for byte. Then the same through `lphedge plan
--live --dump-state` and `lphedge plan --state`."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account

from adapters.anvil import PROJECT_ROOT
from adapters.evm.safe import SafeAdapter
from bot import governance as G
from bot.assemble import assemble, live_config, observe, read_past
from bot.audit_store import AuditStore
from bot.book_store import BookStore, period_key
from bot.db import open_engine
from bot.db.models import OverrideRecord
from bot.devchain import DevChain
from bot.settings import load_settings
from policies.alvh import Decision, decide, decision_to_json
from policies.hedge import (
    HedgeBook,
    Instrument,
    LayerEngagement,
    OptionHolding,
    OptionKind,
    PerpHolding,
)
from policies.state_file import dumps_state, parse_state
from tests.adapters.market.test_venues import CURRENT, D, H, make_tape
from tests.bot.signals.test_cli import start_all
from tests.support import venue_servers as V

LPHEDGE = str(Path(sys.executable).parent / "lphedge")
SPOT = 3000.0  # the dev chain's WETH/USDC price at deployment; Deribit's underlying here


def option_chain(now_ms: int) -> list[V.OptionQuote]:
    """Puts and calls at 5, 30 and 90 days, strikes 1500-4500; front IV above back
    (backwardation: term structure in crisis)."""
    out = []
    for days, iv in ((5, 90.0), (30, 70.0), (90, 60.0)):
        expiry = (now_ms // D + days) * D + 8 * H
        for k in range(1500, 4550, 50):
            out.append(V.OptionQuote(expiry, float(k), "P", iv))
            out.append(V.OptionQuote(expiry, float(k), "C", iv))
    return out


async def venues(now_ms: int) -> dict[str, V.VenueServer]:
    servers = await start_all(now_ms)
    await servers["deribit"].stop()
    today = now_ms // D * D
    servers["deribit"] = await V.deribit(
        now_ms, make_tape("deribit", now_ms), CURRENT, underlying=SPOT,
        options=option_chain(now_ms),
        dvol=[(today - i * D, 50.0 + (i % 17)) for i in range(120)][::-1],
        candles=[(today - i * D, 3000.0 + 20 * (i % 5)) for i in range(210)][::-1]).start()
    return servers


def write_files(chain: DevChain, servers: dict[str, V.VenueServer], tmp: Path) -> tuple[Path, Path, str]:
    pool = chain.pools["WETH/USDC/500"]
    t0, _, _ = chain.pool_tokens(pool)
    policy = tmp / "policy.toml"
    owners = ", ".join(f'"{Account.from_key(k).address}"' for k in chain.owner_keys)
    policy.write_text(f"""
version = "assemble-test-1"
[governance]
owners = [{owners}]
threshold = {chain.threshold}
[[coverage]]
underlying = "ETH"
quote = "USDC"
pool = "{pool.lower()}"
underlying_token = "{'token0' if t0.symbol == 'WETH' else 'token1'}"
[venues]
options = ["deribit"]
[perp]
enabled = true
venues = ["binanceusdm", "hyperliquid"]
""")
    urls = "\n".join(f'{k} = "{s.url}"' for k, s in servers.items() if k != "defillama")
    a = chain.addresses
    db = f"sqlite:///{tmp / 'lphedge.db'}"
    config = tmp / "lphedge.toml"
    config.write_text(f"""
[[chains]]
rpc_urls = ["{chain.url}"]
owner = "{a['safe']}"
position_manager = "{a['position_manager']}"
multicall_address = "{a['multicall3']}"
[db]
url = "{db}"
[market]
underlyings = ["ETH"]
funding_venues = ["binanceusdm", "hyperliquid", "deribit"]
timeout_s = 3.0
defillama_url = "{servers['defillama'].url}"
defillama_slugs = ["uniswap-v3"]
books = [{{asset = "USDC", venue = "binance", symbol = "USDC/USDT"}}]
[market.api_urls]
{urls}
""")
    return policy, config, db


def seed_stores(chain: DevChain, db: str, policy: Path, now: int) -> tuple[str, bytes]:
    """The Safe approves the policy (two owner signatures, checked on-chain); the stores
    hold an engaged layer, a held put, a short perp, the period's income and spend, one
    override in force (short layer paused) and one expired (would disable hedging)."""
    engine = open_engine(db)
    safe = SafeAdapter(chain.w3, chain.addresses["safe"], chain.url)
    store = AuditStore(engine)
    content = policy.read_bytes()
    owners = [Account.from_key(k) for k in chain.owner_keys]
    G.PolicyGate(safe, store).approve(
        content, [G.sign_policy(content, o, safe.chain_id, safe.address) for o in owners[:2]])
    expiry = (now * 1000 // D + 90) * D // 1000 + 8 * 3600
    book = BookStore(engine, safe.chain_id, safe.address)
    book.save_book(HedgeBook(
        options=(OptionHolding(Instrument("deribit", "ETH-HELD-2500-P", "ETH", OptionKind.PUT, 2500.0,
                                          expiry, Decimal("1")), Decimal("2"), "structural"),),
        perps=(PerpHolding("hyperliquid", "ETH", Decimal("-0.5")),),
        engaged=(LayerEngagement("ETH", "intermediate", now - 3600),)))
    book.set_expected_income(period_key(now), 60_000_00)
    assert book.record_spend(now - 60, 1_000_00, "premium", "fill-1")
    # applied through the gate, two owners signing, bound to the approved policy: one
    # expired by ``now`` (applied earlier), one in force
    gate = G.OverrideGate.for_policy(safe, store, G.PolicyGate(safe, store).load(policy))
    for nonce, kind, params, exp, at in ((0, "disable_hedging", {}, now - 1, now - 7200),
                                         (1, "pause_layer", {"layer": "short"}, now + 3600, now)):
        p = G.propose_override(kind, params, f"test {kind}", safe.chain_id, safe.address, nonce,
                               exp, gate.layers, policy_hash=gate.policy_hash)
        gate.apply([json.loads(json.dumps(G.sign_override(p, o))) for o in owners[:2]], now=at)
    # written past the gate: bound to no policy, and bound to this one but "signed" by a
    # non-owner; neither may reach decide (the gate filters by policy and re-checks signers)
    for nonce, kind, params, ph, signers in (
            (2, "disable_hedging", "{}", "0x" + "00" * 32, owners[0].address),
            (3, "disable_hedging", "{}", "0x" + gate.policy_hash.hex(), Account.create().address)):
        store.apply_override(OverrideRecord(
            override_hash=f"0x{nonce + 1:064x}", chain_id=safe.chain_id, safe=safe.address,
            nonce=nonce, kind=kind, params=params, reason=f"forged {kind}", expiry=now + 3600,
            signers=signers, policy_hash=ph, signatures="0x" + "11" * 65))
    engine.dispose()
    return safe.address, content


def intents_and_targets(d: Decision) -> str:
    out = decision_to_json(d)
    return json.dumps({"intents": out["intents"], "targets": out["targets"]}, sort_keys=True)


async def test_assemble_decide_dump_reload_same_decision(devchain: DevChain, tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    now = now_ms // 1000
    servers = await venues(now_ms)
    try:
        policy_path, config, db = write_files(devchain, servers, tmp_path)
        safe, content = seed_stores(devchain, db, policy_path, now)
        engine = open_engine(db)
        loaded = G.PolicyGate(SafeAdapter(devchain.w3, safe, devchain.url), AuditStore(engine)
                              ).load(policy_path)
        assert loaded.from_file
        cfg = live_config(load_settings(str(config)), loaded.policy)
        positions, market = await observe(cfg, now, engine)
        sa = SafeAdapter(devchain.w3, safe, devchain.url)
        book, budget, overrides = read_past(
            engine, positions.chain_id, safe, now,
            gate=G.OverrideGate.for_policy(sa, AuditStore(engine), loaded))
        a = assemble(positions, market, book=book, budget=budget, policy=loaded.policy,
                     overrides=overrides, now=now)
    finally:
        for s in servers.values():
            await s.stop()

    # the chain's own answers: the Safe's token ids, the block hash at the stamped block
    npm = devchain.contract("NonfungiblePositionManager", devchain.addresses["position_manager"])
    owned = {npm.functions.tokenOfOwnerByIndex(safe, i).call()
             for i in range(npm.functions.balanceOf(safe).call())}
    assert {p.token_id for p in a.inputs.positions} == owned
    assert a.block_hash == devchain.w3.eth.get_block(a.block_number)["hash"].to_0x_hex()
    # the stores, the market and the overrides reached the inputs
    assert a.observed.book == book and a.observed.budget.spent_session_cents == 1_000_00
    assert a.observed.budget.expected_fee_income_cents == 60_000_00
    assert [(x.nonce, x.kind, x.applied) for x in a.applied] == [(1, "pause_layer", True)]
    assert [o.nonce for o in overrides] == [1]  # not the expired, unbound or forged ones
    refused = [e.reason for e in AuditStore(engine).events(event="refusal")]
    assert any("no longer in force" in r and "non-owner" in r for r in refused), refused
    assert "short" not in a.inputs.policy.layers and "short" in a.observed.policy.layers
    assert {r.underlying for r in a.inputs.regimes} == {"ETH"}
    assert a.inputs.regimes[0].level is not None
    assert len(a.inputs.quotes) == len(option_chain(now_ms))
    assert {q.venue for q in a.inputs.perp_quotes} == {"binanceusdm", "hyperliquid"}
    first = decide(a.inputs)
    actions = {i.action for i in first.intents}
    assert "open_option" in actions and "adjust_perp" in actions, first.intents
    assert not any(t.layer == "short" for t in first.targets)

    # dump, reload with the state-file loader, decide again: the same decision
    text = dumps_state(a.observed, a.overrides)
    doc = json.loads(text)
    assert doc["policy_hash"] == a.policy_hash == "0x" + loaded.policy_hash.hex()
    assert [o["nonce"] for o in doc["overrides"]] == [1]
    reloaded = parse_state(text, G.policy_file.parse_policy(content.decode()))
    assert reloaded == a.inputs
    again = decide(reloaded)
    assert intents_and_targets(again) == intents_and_targets(first)
    assert json.dumps(decision_to_json(again), sort_keys=True) == \
        json.dumps(decision_to_json(first), sort_keys=True)


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        LPHEDGE, *args, cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_plan_live_dump_state_replays_with_plan_state(devchain: DevChain, tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    now = now_ms // 1000
    servers = await venues(now_ms)
    dump = tmp_path / "out" / "state.json"
    try:
        policy, config, db = write_files(devchain, servers, tmp_path)
        seed_stores(devchain, db, policy, now)
        code, live_out, err = await run("plan", "--live", "--policy", str(policy), "--config",
                                        str(config), "--dump-state", str(dump), "--now",
                                        str(now), "--json")
    finally:
        for s in servers.values():
            await s.stop()
    assert code == 0, err
    assert "Unclosed" not in err, err
    code, replay_out, err = await run("plan", "--state", str(dump), "--policy", str(policy),
                                      "--json")
    assert code == 0, err
    live, replay = json.loads(live_out), json.loads(replay_out)
    for key in ("intents", "targets"):
        assert json.dumps(live[key], sort_keys=True) == json.dumps(replay[key], sort_keys=True)
    assert live == replay
    assert any(i["action"] == "open_option" for i in live["intents"])
    # the human view says where the state came from and which override applied
    code, text, err = await run("plan", "--live", "--policy", str(policy), "--config",
                                str(config), "--now", str(now))
    assert code == 0, err
    assert "override #1 pause_layer applied" in text and f"chain {devchain.w3.eth.chain_id} block" in text


@pytest.mark.parametrize("args,says", [
    (["--live", "--state", "x.json"], "--state and --live exclude each other"),
    ([], "give --state FILE, or --live"),
    (["--state", "x.json", "--dump-state", "y.json"], "--dump-state needs --live"),
    (["--state", "x.json", "--fee-income", "1"], "--fee-income needs --live"),
    (["--live", "--fee-income", "lots"], "--fee-income 'lots': expected a USD amount"),
    (["--live", "--fee-income", "-1"], "--fee-income '-1': must be a finite amount >= 0"),
])
def test_plan_argument_errors_are_one_line(tmp_path: Path, args: list[str], says: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bot.cli import app
    from bot.errors import UserError

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["plan", "--policy", "p.toml", *args])
    assert isinstance(result.exception, UserError), result.output
    assert says in str(result.exception) and "\n" not in str(result.exception)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_dump_state_path_checked_before_any_side_effect(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad --dump-state is refused before settings, the database or the chain are touched."""
    from typer.testing import CliRunner

    from bot.cli import app
    from bot.errors import UserError

    db = tmp_path / "lphedge.db"
    monkeypatch.setenv("LPHEDGE_DB__URL", f"sqlite:///{db}")
    monkeypatch.setenv("LPHEDGE_RPC_URLS", "http://127.0.0.1:9")
    (tmp_path / "a-file").write_text("")
    for target, says in ((tmp_path, "is a directory"),
                         (tmp_path / "a-file" / "s.json", "is not a writable directory")):
        result = CliRunner().invoke(app, ["plan", "--policy", "p.toml", "--live",
                                          "--dump-state", str(target)])
        assert isinstance(result.exception, UserError), result.output
        assert says in str(result.exception)
    assert not db.exists()


def test_assemble_is_pure_over_snapshots() -> None:
    """No chain, no venue: snapshots built by hand. Observed inputs keep the approved policy
    and the stored book; decide's inputs carry the overrides in force at the market's time
    (the expired one is not listed); the snapshots' block stamp is kept."""
    from bot.observe.market import MarketSnapshot, SignalObservation, UnderlyingMarket
    from bot.observe.positions import PositionReading, PositionsSnapshot
    from policies.lp_math import position_metrics
    from policies.overrides import Override
    from policies.risk import BudgetState
    from policies.types import Level, Regime, SignalReading
    from tests.policies.alvh.factory import NOW, chain, make_policy, pool, position

    p = pool(3000.0)
    pos = (position(1, p, 2600, 3400, 10.0), position(2, p, 2800, 3200, 5.0))
    snap = PositionsSnapshot(1, "0x5afe", "0xnpm", 123, "0xabc",
                             tuple(PositionReading(x, position_metrics(x)) for x in pos), (p,))
    reading = SignalReading("funding", Level.CRISIS, "spike")
    regime = Regime("ETH", Level.CRISIS, "funding crisis", (reading,))
    market = MarketSnapshot(NOW, (UnderlyingMarket("ETH", (SignalObservation(reading, NOW - 5, "fresh"),),
                                                   regime),), (), chain(3000.0), (), ())
    policy = make_policy()
    book = HedgeBook(engaged=(LayerEngagement("ETH", "structural", NOW - 10),))
    budget = BudgetState(100_000_00, 0, 0)
    overrides = [Override(2, "pause_layer", {"layer": "structural"}, "too dear", NOW + 60, "0x2"),
                 Override(1, "disable_hedging", {}, "old", NOW, "0x1")]  # expired at NOW
    a = assemble(snap, market, book=book, budget=budget, policy=policy, overrides=overrides)
    assert a.observed.now == a.inputs.now == NOW
    assert a.observed.policy == policy and a.observed.book == book
    assert a.observed.positions == pos and a.observed.regimes == (regime,)
    assert a.observed.quotes == market.option_quotes
    assert [o.nonce for o in a.overrides] == [2] and a.applied[0].reason == "too dear"
    assert set(a.inputs.policy.layers) == {"short", "intermediate"}
    assert (a.chain_id, a.block_number, a.block_hash) == (1, 123, "0xabc")
    d = decide(a.inputs)
    assert not any(t.layer == "structural" for t in d.targets)
    assert any(i.action == "open_option" for i in d.intents)
    # the dump of the observed state with its overrides replays to decide's inputs
    assert parse_state(dumps_state(a.observed, a.overrides), policy) == a.inputs


def test_plan_live_unreachable_rpc_is_one_transient_line(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every RPC URL down: one line naming no URL secret, the transient branch, no dump."""
    from typer.testing import CliRunner

    from bot.cli import app
    from policies.errors import Transient

    monkeypatch.setenv("LPHEDGE_DB__URL", f"sqlite:///{tmp_path / 'lphedge.db'}")
    monkeypatch.setenv("LPHEDGE_RPC_URLS", "http://user:secret@127.0.0.1:9/key123")
    monkeypatch.setenv("LPHEDGE_OWNER", "0x" + "5a" * 20)
    monkeypatch.setenv("LPHEDGE_POSITION_MANAGER", "0x" + "c3" * 20)
    (tmp_path / "p.toml").write_text("")
    dump = tmp_path / "state.json"
    result = CliRunner().invoke(app, ["plan", "--policy", str(tmp_path / "p.toml"), "--live",
                                      "--dump-state", str(dump)])
    assert isinstance(result.exception, Transient), (result.exception, result.output)
    text = str(result.exception)
    assert "\n" not in text and "secret" not in text and "key123" not in text
    assert not dump.exists()
