"""Issue 9, finding 4 / deliverable 5: the pre-flight of the Roles setup SafeTx compares
arguments, not names. Against the real Safe 1.4.1, Zodiac Roles v2 and OracleBoundCondition
on anvil: the batch must equal byte for byte the one the permission table produces from the
approved policy's [scope]; finding 4's batch (a second role member, WETH transfer allowed
with delegatecall and ether) is refused before anyone signs; a batch that slips past the
comparison is caught on the fork, where every forbidden call of the bot must revert."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from safe_eth.safe import SafeTx

from adapters.anvil import PROJECT_ROOT, Anvil
from adapters.evm import roles as R
from adapters.evm import safe as S
from bot import preflight as P
from bot.audit_store import AuditStore
from bot.devchain import DevChain
from bot.governance import PreflightRefused
from policies.policy_file import parse_policy
from tests.bot.governance.conftest import RolesEnv, refresh_fork
from tests.support.solc import compile_contract

pytestmark = pytest.mark.xdist_group("governance")
ATTACKER = to_checksum_address("0x" + "a7" * 20)


def scope_section(chain: DevChain, feeds: dict[str, str]) -> str:
    """A [scope] section for the dev chain's WETH/USDC 0.05% pool with ``feeds``."""
    w, u = chain.tokens["WETH"].address, chain.tokens["USDC"].address
    return f"""
[scope]
swaps = [{{ token_in = "{w}", token_out = "{u}", fee = 500 }}]
limits = [{{ token = "{w}", swap_per_period = 2000000000000000000, approve_per_period = 2000000000000000000 }},
          {{ token = "{u}", swap_per_period = 6000000000, approve_per_period = 6000000000 }}]
period_hours = 24
max_slippage_bps = 100
oracles = {{ "{w}" = "{feeds[w]}", "{u}" = "{feeds[u]}" }}
max_oracle_age_seconds = 3600
max_exit_deviation_bps = 300
max_exits_per_period = 2
"""


def deploy_feeds(chain: DevChain) -> dict[str, str]:
    abi, code = compile_contract(PROJECT_ROOT / "contracts" / "TestAggregatorV3.sol", "TestAggregatorV3")
    feeds: dict[str, str] = {}
    for sym, answer in (("WETH", 3000 * 10**8), ("USDC", 10**8)):
        rc = chain.transact(chain.w3.eth.contract(abi=abi, bytecode=code).constructor(8, f"{sym} / USD", answer))
        feeds[chain.tokens[sym].address] = to_checksum_address(rc["contractAddress"])
    return feeds


@dataclass
class Env:
    chain: DevChain
    safe: S.SafeAdapter
    setup: P.RolesSetup
    fork: Anvil
    msco: str

    def tx(self, calls: list[tuple[str, bytes]], **kw: Any) -> Any:
        tx = S.multisend_call_only_tx(self.safe, self.msco, calls)
        return replace_fields(self.safe, tx, **kw) if kw else tx


def replace_fields(safe: S.SafeAdapter, tx: Any, **kw: Any) -> Any:
    fields = {k: getattr(tx, k) for k in ("to", "value", "data", "operation", "safe_tx_gas", "base_gas",
                                           "gas_price", "gas_token", "refund_receiver")}
    fields.update(kw)
    return SafeTx(safe.client, safe.address, fields["to"], fields["value"], fields["data"], fields["operation"],
                    fields["safe_tx_gas"], fields["base_gas"], fields["gas_price"], fields["gas_token"],
                    fields["refund_receiver"], safe_nonce=tx.safe_nonce, safe_version="1.4.1",
                    chain_id=safe.chain_id)


@pytest.fixture(scope="module")
def env(gov_chain: DevChain, safe: S.SafeAdapter, roles_env: RolesEnv, gov_fork: Anvil) -> Iterator[Env]:
    chain = gov_chain
    snap = chain.snapshot()
    try:
        a, dep = chain.addresses, chain.deployer.key.hex()
        feeds = deploy_feeds(chain)
        policy = parse_policy(f'version = "setup-preflight"\n[[coverage]]\nunderlying = "ETH"\n'
                              f'pool = "{chain.pools["WETH/USDC/500"]}"\nunderlying_token = "token0"\n'
                              + scope_section(chain, feeds))
        tokens = (chain.tokens["WETH"].address, chain.tokens["USDC"].address)
        scope = R.bounded_scope(chain.w3, dep, position_manager=a["position_manager"], swap_router=a["swap_router"],
                                factory=a["factory"], tokens=tokens, policy_scope=policy.scope)
        roles = R.deploy_roles(chain.w3, dep, a["safe"], a["safe"], a["safe"])
        bot = to_checksum_address("0x" + "b0" * 20)
        setup = P.RolesSetup(roles, bot, R.role_key("lphedge-bot-setup"), scope, a["factory"], feeds, 3600)
        refresh_fork(gov_fork, chain.url)
        yield Env(chain, safe, setup, gov_fork, a["multisend_call_only"])
    finally:
        chain.revert(snap)


def finding4_calls(env: Env) -> list[tuple[str, bytes]]:
    """Finding 4's batch: the table's calls, then a second member for the role and WETH
    transfer allowed with delegatecall and ether (ExecutionOptions.Both)."""
    r = env.chain.w3.eth.contract(address=to_checksum_address(env.setup.roles), abi=R.roles_artifacts()["Roles"]["abi"])
    weth = env.chain.tokens["WETH"].address
    transfer = bytes.fromhex("a9059cbb")
    extra = [r.functions.assignRoles(ATTACKER, [env.setup.key], [True]),
             r.functions.allowFunction(env.setup.key, weth, transfer, 3)]
    return [*env.setup.calls(env.chain.w3, env.safe.address),
            *((env.setup.roles, bytes.fromhex(f._encode_transaction_data()[2:])) for f in extra)]


def test_the_tables_batch_passes_and_every_forbidden_call_reverts_on_the_fork(env: Env, tmp_path: Any) -> None:
    store = AuditStore(f"sqlite:///{tmp_path / 'a.db'}")
    tx = env.tx(env.setup.calls(env.chain.w3, env.safe.address))
    report = P.preflight_roles_setup(env.safe, tx, env.setup, multisend_call_only=env.msco,
                                     fork_url=env.fork.url, store=store)
    assert report.simulation is not None and report.simulation.success
    assert report.calls[0].function == "enableModule" and report.calls[1].function == "assignRoles"
    assert report.calls[1].args["module"] == env.setup.bot  # the one member: the bot
    assert env.setup.roles in report.invariants_after.modules  # type: ignore[union-attr]
    assert env.setup.roles not in env.safe.invariants().modules  # only simulated


def test_finding4_batch_is_refused_before_signing(env: Env, tmp_path: Any) -> None:
    store = AuditStore(f"sqlite:///{tmp_path / 'a.db'}")
    tx = env.tx(finding4_calls(env))
    n = len(env.setup.calls(env.chain.w3, env.safe.address))  # the extra calls come after the table's
    with pytest.raises(PreflightRefused, match=f"setup call {n} is not in the permission table's batch \\({n + 2} calls"):
        P.preflight_roles_setup(env.safe, tx, env.setup, multisend_call_only=env.msco,
                                fork_url=env.fork.url, store=store)


@pytest.mark.parametrize("case", ["member", "ether", "refund", "swap_order", "extra_byte", "call"])
def test_any_other_batch_is_refused(env: Env, case: str) -> None:
    w3, calls = env.chain.w3, env.setup.calls(env.chain.w3, env.safe.address)
    if case == "member":  # the same table for another bot: a different member
        tx = env.tx(replace(env.setup, bot=ATTACKER).calls(w3, env.safe.address))
    elif case == "ether":
        tx = env.tx(calls, value=1)
    elif case == "refund":  # a refund pays ether (or a token) out of the Safe
        tx = env.tx(calls, gas_price=1, refund_receiver=ATTACKER)
    elif case == "swap_order":
        tx = env.tx([calls[0], calls[2], calls[1], *calls[3:]])
    elif case == "extra_byte":
        tx = env.tx(calls, data=bytes(env.tx(calls).data) + b"\0")
    else:  # a plain CALL instead of the MultiSendCallOnly batch
        tx = env.tx(calls, to=env.setup.roles, operation=0, data=calls[1][1])
    with pytest.raises(PreflightRefused):
        P.check_setup_batch(w3, tx, env.safe.address, env.setup, env.msco)
    # the table's own batch is accepted (the comparison is not refusing everything)
    P.check_setup_batch(w3, env.tx(calls), env.safe.address, env.setup, env.msco)


def test_a_condition_with_other_feeds_is_refused(env: Env) -> None:
    b = env.setup.scope.bounds
    weth, usdc = env.chain.tokens["WETH"].address, env.chain.tokens["USDC"].address
    swapped = replace(env.setup, feeds={weth: env.setup.feeds[usdc], usdc: env.setup.feeds[weth]})
    tx = env.tx(env.setup.calls(env.chain.w3, env.safe.address))
    with pytest.raises(PreflightRefused, match=f"feed of {weth}"):
        P.preflight_roles_setup(env.safe, tx, swapped, multisend_call_only=env.msco, fork_url=env.fork.url)
    not_condition = replace(env.setup, scope=replace(env.setup.scope, bounds=replace(b, condition=env.setup.roles)))
    with pytest.raises(PreflightRefused, match="not OracleBoundCondition"):
        P.preflight_roles_setup(env.safe, tx, not_condition, multisend_call_only=env.msco, fork_url=env.fork.url)


def test_shape_only_scope_is_refused(env: Env) -> None:
    shape = replace(env.setup, scope=replace(env.setup.scope, bounds=None))
    tx = env.tx(env.setup.calls(env.chain.w3, env.safe.address))
    with pytest.raises(PreflightRefused, match="shape-only"):
        P.preflight_roles_setup(env.safe, tx, shape, multisend_call_only=env.msco, fork_url=env.fork.url)


def test_fork_probes_catch_a_batch_that_grants_more(env: Env) -> None:
    """Past the byte comparison (called directly here), the fork still catches finding 4's
    batch: after it runs, the bot can move WETH out and a second member exists."""
    sim = P.setup_fork_simulator(env.fork.url, env.safe.address, env.setup, ATTACKER)(env.tx(finding4_calls(env)))
    assert not sim.success
    assert f"transfer {env.chain.tokens['WETH'].address} out" in sim.reason
    ok = P.setup_fork_simulator(env.fork.url, env.safe.address, env.setup, ATTACKER)(
        env.tx(env.setup.calls(env.chain.w3, env.safe.address)))
    assert ok.success, ok.reason
    labels = [p.label for p in P.forbidden_probes(env.safe.address, env.setup, ATTACKER)]
    for needle in ("transfer", "another recipient", "another spender", "delegatecall", "ether",
                   "self-role", "new member", "non-listed pool"):
        assert any(needle in x for x in labels), needle
