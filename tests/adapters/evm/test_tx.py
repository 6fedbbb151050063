"""The one transaction sender (adapters/evm/tx.py) against a real anvil and a real ERC20
(OpenZeppelin, bytecode shipped in safe-eth-py): pending nonce, gas = estimate x1.25 + 50k,
EIP-1559 fees from the node, a receipt deadline, reverts decoded (Error(string), Panic,
Safe GSxxx, Roles v2 custom errors)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3

from adapters.anvil import ANVIL_KEYS, Anvil
from adapters.evm.chain import ChainConnection
from adapters.evm.roles import decode_roles_revert
from adapters.evm.safe import decode_safe_revert
from adapters.evm.tx import (
    TxReverted,
    TxSender,
    TxUnknown,
    decode_standard_revert,
    gas_limit,
)
from bot.devchain import artifact
from policies.errors import Refused, Transient

pytestmark = pytest.mark.chain

ME = Account.from_key(ANVIL_KEYS[5])
OTHER = Account.from_key(ANVIL_KEYS[6]).address


@pytest.fixture(scope="module")
def chain() -> Iterator[ChainConnection]:
    node = Anvil().start()
    try:
        yield ChainConnection([node.url], chain_id=31337, timeout=10)
    finally:
        node.stop()


@pytest.fixture(scope="module")
def token(chain: ChainConnection) -> str:
    art = artifact("ERC20")
    ctor = chain.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor("T", "T", 18, ME.address, 10**24)
    receipt = TxSender(chain.w3, ME).call(ctor)
    assert receipt["status"] == 1
    return str(receipt["contractAddress"])


def _erc20(chain: ChainConnection, token: str) -> object:
    return chain.w3.eth.contract(address=Web3.to_checksum_address(token), abi=artifact("ERC20")["abi"])


def test_gas_policy_is_estimate_times_1_25_plus_50k() -> None:
    assert gas_limit(100_000) == 175_000
    assert gas_limit(21_000) == 76_250
    assert gas_limit(3) == 50_003  # 3 * 5 // 4 = 3, rounded down


def test_built_transaction_nonce_gas_and_fees_come_from_the_node(chain: ChainConnection, token: str) -> None:
    erc = _erc20(chain, token)
    data = erc.functions.transfer(OTHER, 10**18)._encode_transaction_data()  # type: ignore[attr-defined]
    sender = TxSender(chain.w3, ME)
    built = sender.build({"to": token, "data": data})
    estimate = int(chain.rpc("eth_estimateGas", [{"from": ME.address, "to": token, "data": data}]), 16)
    assert built["gas"] == estimate * 5 // 4 + 50_000
    assert built["nonce"] == int(chain.rpc("eth_getTransactionCount", [ME.address, "pending"]), 16)
    base = int(chain.rpc("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    priority = int(chain.rpc("eth_maxPriorityFeePerGas"), 16)
    assert built["maxPriorityFeePerGas"] == priority
    assert built["maxFeePerGas"] == 2 * base + priority
    assert built["chainId"] == 31337 and "gasPrice" not in built
    receipt = sender.send({"to": token, "data": data})
    assert receipt["status"] == 1 and receipt["gasUsed"] <= built["gas"]
    assert erc.functions.balanceOf(OTHER).call() >= 10**18  # type: ignore[attr-defined]


def test_nonce_counts_pending_transactions_and_deadline_gives_unknown(chain: ChainConnection, token: str) -> None:
    erc = _erc20(chain, token)
    data = erc.functions.transfer(OTHER, 1)._encode_transaction_data()  # type: ignore[attr-defined]
    sender = TxSender(chain.w3, ME, receipt_timeout=0.2)
    chain.rpc("evm_setAutomine", [False])
    try:
        first = sender.build({"to": token, "data": data})
        with pytest.raises(TxUnknown, match=r"no receipt after 0\.2s") as unknown:
            sender.send({"to": token, "data": data})  # sits in the mempool: no block is mined
        assert isinstance(unknown.value, Transient)
        second = sender.build({"to": token, "data": data})
        assert second["nonce"] == first["nonce"] + 1  # the pending one is counted
        chain.rpc("evm_mine")
    finally:
        chain.rpc("evm_setAutomine", [True])
    receipt = chain.w3.eth.get_transaction_receipt(unknown.value.tx_hash)
    assert receipt["status"] == 1  # it landed once a block was mined: unknown, not failed


def test_revert_at_estimate_is_decoded(chain: ChainConnection, token: str) -> None:
    erc = _erc20(chain, token)
    data = erc.functions.transfer(OTHER, 10**30)._encode_transaction_data()  # type: ignore[attr-defined]
    nonce = chain.w3.eth.get_transaction_count(ME.address)
    with pytest.raises(TxReverted, match="ERC20: transfer amount exceeds balance") as err:
        TxSender(chain.w3, ME).send({"to": token, "data": data})
    assert isinstance(err.value, Refused) and err.value.tx_hash is None
    assert chain.w3.eth.get_transaction_count(ME.address) == nonce  # nothing was sent


def test_revert_on_chain_is_decoded_from_the_receipt(chain: ChainConnection, token: str) -> None:
    erc = _erc20(chain, token)
    data = erc.functions.transfer(OTHER, 10**30)._encode_transaction_data()  # type: ignore[attr-defined]
    with pytest.raises(TxReverted, match=r"reverted in tx 0x[0-9a-f]{64}: ERC20: transfer amount exceeds balance") as err:
        TxSender(chain.w3, ME).send({"to": token, "data": data, "gas": 100_000})  # fixed gas: no estimate
    assert err.value.tx_hash is not None
    assert chain.w3.eth.get_transaction_receipt(err.value.tx_hash)["status"] == 0


def test_unlocked_sender_on_a_dev_chain(chain: ChainConnection, token: str) -> None:
    erc = _erc20(chain, token)
    dev = chain.w3.eth.accounts[0]
    before = chain.w3.eth.get_balance(OTHER)
    receipt = TxSender(chain.w3, dev).send({"to": OTHER, "value": 12345})
    assert receipt["status"] == 1 and chain.w3.eth.get_balance(OTHER) - before == 12345
    with pytest.raises(TxReverted, match="transfer amount exceeds balance"):
        TxSender(chain.w3, dev).call(erc.functions.transfer(OTHER, 1))  # type: ignore[attr-defined]


def _error(text: str) -> bytes:
    return keccak(text="Error(string)")[:4] + abi_encode(["string"], [text])


def test_decoders() -> None:
    assert decode_standard_revert(_error("nope")) == "nope"
    panic = keccak(text="Panic(uint256)")[:4] + (0x11).to_bytes(32, "big")
    assert decode_standard_revert(panic) == "Panic(0x11: arithmetic overflow/underflow)"
    assert decode_standard_revert(b"\x12\x34\x56\x78") is None
    assert decode_safe_revert(_error("GS013")) == "GS013: inner transaction failed"
    assert decode_safe_revert(_error("GS026")).startswith("GS026: signer is not a current owner")  # type: ignore[union-attr]
    assert decode_safe_revert(_error("nope")) is None
    violation = keccak(text="ConditionViolation(uint8,bytes32)")[:4] + abi_encode(["uint8", "bytes32"], [2, b"\0" * 32])
    assert decode_roles_revert(violation) == "ConditionViolation(TargetAddressNotAllowed)"
    assert decode_roles_revert(_error("GS013")) is None
