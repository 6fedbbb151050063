"""The harness itself: real contracts, positions owned by the Safe, a real fork."""

from __future__ import annotations

from eth_account import Account
from web3 import Web3

from adapters.anvil import Anvil
from bot.devchain import DevChain


def test_safe_is_real_2_of_3(devchain: DevChain) -> None:
    safe = devchain.contract("Safe", devchain.addresses["safe"])
    assert safe.functions.VERSION().call() == "1.4.1"
    assert safe.functions.getThreshold().call() == 2
    owners = {Account.from_key(k).address for k in devchain.owner_keys}
    assert set(safe.functions.getOwners().call()) == owners
    assert Account.from_key(devchain.bot_key).address not in owners


def test_positions_held_by_safe_across_tiers_and_decimals(devchain: DevChain) -> None:
    npm = devchain.contract("NonfungiblePositionManager", devchain.addresses["position_manager"])
    safe = devchain.addresses["safe"]
    assert npm.functions.balanceOf(safe).call() == len(devchain.position_ids)
    fees, decimals = set(), set()
    for token_id in devchain.position_ids:
        assert npm.functions.ownerOf(token_id).call() == safe
        pos = npm.functions.positions(token_id).call()
        fees.add(pos[4])
        for addr in pos[2:4]:
            decimals.add(devchain.contract("ERC20", addr).functions.decimals().call())
    assert fees == {500, 3000, 10000}
    assert decimals == {6, 8, 18}


def test_fork_sees_origin_state_and_leaves_it_untouched(devchain: DevChain, forkchain: Anvil) -> None:
    fork_w3 = Web3(Web3.HTTPProvider(forkchain.url))
    safe = devchain.addresses["safe"]
    assert fork_w3.eth.get_code(safe) == devchain.w3.eth.get_code(safe)
    forkchain.rpc("anvil_setBalance", [safe, hex(10**21)])
    assert fork_w3.eth.get_balance(safe) == 10**21
    assert devchain.w3.eth.get_balance(safe) == 0
