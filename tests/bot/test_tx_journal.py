"""The transaction journal (bot/tx_journal.py, revision 0005) with the one sender
(adapters/evm/tx.py) on the real dev chain (anvil): the row is committed before the
broadcast; a crash after the row or after the broadcast is recovered from the chain (by
receipt, then by nonce: the SAME signed bytes rebroadcast, or "replaced" when another
transaction took the nonce); a receipt deadline leaves the row broadcast until the chain
answers; a confirmed transaction whose block left the chain (evm_snapshot/evm_revert) is
detected by block hash, marked reorged, its intent not done, then re-resolved. Values are
checked against the chain's own answers (the recipient's balance, the sender's nonce, the
block hash at the row's block number).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from sqlalchemy import Engine
from web3 import Web3
from web3.exceptions import TransactionNotFound

from adapters.evm.tx import SignedTx, TxSender, TxUnknown
from bot.db.engine import make_engine
from bot.db.migrate import upgrade
from bot.devchain import DevChain
from bot.tx_journal import TRANSITIONS, DuplicateTx, TxJournal, TxState, UnresolvedTx
from policies.errors import Refused

ETH = 10**18
T = TxState


class Killed(BaseException):
    """Stands for SIGKILL at a checkpoint (the subprocess harness is tests/bot/act/test_crash.py)."""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.cli)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (f"sqlite:///{tmp_path / 'journal.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    eng = make_engine(url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def chain(devchain: DevChain) -> Iterator[DevChain]:
    snap = devchain.snapshot()
    try:
        yield devchain
    finally:
        devchain.anvil.rpc("evm_setAutomine", [True])
        devchain.revert(snap)


@pytest.fixture
def account(chain: DevChain) -> LocalAccount:
    acct: LocalAccount = Account.from_key(keccak(b"lphedge tx journal test sender"))
    chain.anvil.rpc("anvil_setBalance", [acct.address, hex(10 * ETH)])
    return acct


def recipient(tag: str) -> ChecksumAddress:
    return Web3.to_checksum_address(keccak(tag.encode())[:20])


def sender(chain: DevChain, account: LocalAccount, journal: TxJournal | None = None, **kw: object) -> TxSender:
    return TxSender(chain.w3, account, journal=journal, receipt_timeout=30, **kw)  # type: ignore[arg-type]


def pay(s: TxSender, to: str, value: int, client: str) -> object:
    return s.send({"to": to, "value": value}, meta={"intent_id": client.split(":")[0], "client_id": client})


def nonce(chain: DevChain, who: str) -> int:
    return int(chain.w3.eth.get_transaction_count(Web3.to_checksum_address(who), "latest"))


def known(chain: DevChain, tx_hash: bytes) -> bool:
    try:
        chain.w3.eth.get_transaction(HexBytes(tx_hash))
        return True
    except TransactionNotFound:
        return False


def kill_at(point: str) -> object:
    def checkpoint(name: str) -> None:
        if name == point:
            raise Killed(name)
    return checkpoint


# ------------------------------------------------------------------ journal before broadcast
def test_row_is_committed_before_the_broadcast_and_settled_by_the_receipt(
        chain: DevChain, account: LocalAccount, engine: Engine) -> None:
    journal = TxJournal(engine, chain.chain_id)
    to = recipient("before")
    seen: list[tuple[str, bool]] = []

    def checkpoint(name: str) -> None:
        (row,) = TxJournal(engine, chain.chain_id).all()  # another reader: committed
        seen.append((f"{name}:{row.state}", known(chain, row.tx_hash)))

    n0 = nonce(chain, account.address)
    receipt = pay(sender(chain, account, journal, checkpoint=checkpoint), to, 12_345, "i1:pay")
    assert seen == [("after_journal_row:pending", False), ("after_broadcast:broadcast", True)]
    (row,) = journal.all()
    assert (row.state, row.nonce, row.sender, row.target, row.value) == (T.CONFIRMED, n0, account.address, to, 12_345)
    assert row.tx_hash == bytes(receipt["transactionHash"])  # type: ignore[index]
    assert row.calldata_hash == keccak(b"")
    block = chain.w3.eth.get_block(row.block_number)  # type: ignore[arg-type]
    assert row.block_hash == bytes(block["hash"])
    assert chain.w3.eth.get_balance(to) == 12_345 and nonce(chain, account.address) == n0 + 1
    assert journal.intent_outcome("i1") == "done"


def test_a_client_id_or_nonce_is_journaled_once(chain: DevChain, account: LocalAccount, engine: Engine) -> None:
    journal = TxJournal(engine, chain.chain_id)
    s = sender(chain, account, journal)
    pay(s, recipient("dup"), 1, "i2:pay")
    n = nonce(chain, account.address)
    with pytest.raises(DuplicateTx, match="i2:pay"):
        pay(s, recipient("dup"), 1, "i2:pay")
    assert nonce(chain, account.address) == n and len(journal.all()) == 1  # nothing sent
    # the same nonce under another client id: the database refuses it (uq_tx_journal_nonce)
    built = s.build({"to": recipient("dup"), "value": 2, "nonce": n - 1})
    with pytest.raises(DuplicateTx, match=f"nonce {n - 1}"):
        journal.before_broadcast(s.sign(built), {"intent_id": "i3", "client_id": "i3:pay"})
    with pytest.raises(Refused, match="intent_id"):
        journal.before_broadcast(s.sign(s.build({"to": recipient("dup"), "value": 2})), {})


# ------------------------------------------------------------------ crashes and recovery
def test_crash_after_the_row_rebroadcasts_the_same_signed_bytes(
        chain: DevChain, account: LocalAccount, engine: Engine) -> None:
    to = recipient("crash-row")
    n0 = nonce(chain, account.address)
    with pytest.raises(Killed):
        pay(sender(chain, account, TxJournal(engine, chain.chain_id), checkpoint=kill_at("after_journal_row")),
            to, 777, "i4:pay")
    # a new process: same database, a new journal and sender
    journal = TxJournal(engine, chain.chain_id)
    (row,) = journal.unresolved()
    assert row.state is T.PENDING and not known(chain, row.tx_hash) and nonce(chain, account.address) == n0
    s = sender(chain, account, journal)
    with pytest.raises(UnresolvedTx, match="recover first"):
        pay(s, to, 777, "i4:pay-again")  # nothing new while one is unresolved
    (after,) = journal.recover(s)
    assert after.state is T.CONFIRMED and after.tx_hash == row.tx_hash  # the same transaction
    assert chain.w3.eth.get_balance(to) == 777 and nonce(chain, account.address) == n0 + 1
    assert journal.recover(s) == [] and chain.w3.eth.get_balance(to) == 777  # idempotent


def test_crash_after_broadcast_is_resolved_by_the_receipt(
        chain: DevChain, account: LocalAccount, engine: Engine) -> None:
    to = recipient("crash-broadcast")
    n0 = nonce(chain, account.address)
    with pytest.raises(Killed):
        pay(sender(chain, account, TxJournal(engine, chain.chain_id), checkpoint=kill_at("after_broadcast")),
            to, 888, "i5:pay")
    journal = TxJournal(engine, chain.chain_id)
    (row,) = journal.unresolved()
    assert row.state is T.BROADCAST
    broadcasts: list[bytes] = []

    class Counting(TxSender):
        def broadcast(self, raw: bytes) -> bytes:
            broadcasts.append(raw)
            return super().broadcast(raw)

    (after,) = journal.recover(Counting(chain.w3, account, journal=journal))
    receipt = chain.w3.eth.get_transaction_receipt(HexBytes(row.tx_hash))
    assert after.state is T.CONFIRMED and after.block_hash == bytes(receipt["blockHash"])
    assert broadcasts == [] and nonce(chain, account.address) == n0 + 1 and chain.w3.eth.get_balance(to) == 888


def test_receipt_deadline_leaves_the_row_broadcast_until_the_chain_answers(
        chain: DevChain, account: LocalAccount, engine: Engine) -> None:
    journal = TxJournal(engine, chain.chain_id)
    to = recipient("deadline")
    chain.anvil.rpc("evm_setAutomine", [False])
    s = TxSender(chain.w3, account, journal=journal, receipt_timeout=0.3)
    with pytest.raises(TxUnknown) as exc:
        pay(s, to, 999, "i6:pay")
    (row,) = journal.unresolved()
    assert row.state is T.BROADCAST and row.tx_hash == exc.value.tx_hash and known(chain, row.tx_hash)
    assert journal.recover(s, wait=False)[0].state is T.BROADCAST  # still in the mempool: not resent
    chain.anvil.rpc("evm_mine")
    (after,) = journal.recover(s)
    assert after.state is T.CONFIRMED and chain.w3.eth.get_balance(to) == 999


def test_nonce_taken_by_another_transaction_is_replaced_never_resent(
        chain: DevChain, account: LocalAccount, engine: Engine) -> None:
    to = recipient("replaced")
    n0 = nonce(chain, account.address)
    with pytest.raises(Killed):
        pay(sender(chain, account, TxJournal(engine, chain.chain_id), checkpoint=kill_at("after_journal_row")),
            to, 555, "i7:pay")
    # the same key sends something else at that nonce, outside the journal (an operator)
    other = recipient("operator")
    TxSender(chain.w3, account).send({"to": other, "value": 1, "nonce": n0})
    journal = TxJournal(engine, chain.chain_id)
    (row,) = journal.recover(sender(chain, account, journal))
    assert row.state is T.REPLACED and "nonce" in row.reason
    assert not known(chain, row.tx_hash) and chain.w3.eth.get_balance(to) == 0
    assert journal.intent_outcome("i7") == "failed"


def test_fence_refusal_sends_nothing(chain: DevChain, account: LocalAccount, engine: Engine) -> None:
    journal = TxJournal(engine, chain.chain_id)

    class LeaseLost(Exception):
        pass

    calls = []

    def fence_at(refuse_on: int) -> object:
        def fence() -> None:
            calls.append(refuse_on)
            if len([c for c in calls if c == refuse_on]) == refuse_on:
                raise LeaseLost("fencing token superseded")
        return fence

    n0 = nonce(chain, account.address)
    with pytest.raises(LeaseLost):  # refused before anything is journaled
        pay(sender(chain, account, journal, fence=fence_at(1)), recipient("fence"), 1, "i8:pay")
    assert journal.all() == []
    with pytest.raises(LeaseLost):  # refused right before the broadcast: journaled, never sent
        pay(sender(chain, account, journal, fence=fence_at(2)), recipient("fence"), 1, "i9:pay")
    (row,) = journal.all()
    assert row.state is T.FAILED and row.reason.startswith("not broadcast") and not known(chain, row.tx_hash)
    assert nonce(chain, account.address) == n0 and chain.w3.eth.get_balance(recipient("fence")) == 0


# ------------------------------------------------------------------ reorgs
def test_reorged_transaction_is_detected_and_resolved_again(
        chain: DevChain, account: LocalAccount, engine: Engine) -> None:
    journal = TxJournal(engine, chain.chain_id, reorg_depth=5)
    s = sender(chain, account, journal)
    to = recipient("reorg")
    before_block = chain.snapshot()
    pay(s, to, 4242, "i10:pay")
    (row,) = journal.all()
    assert journal.recheck(chain.w3) == [] and journal.intent_outcome("i10") == "done"
    # the block that held it leaves the chain: another history of the same height and more
    chain.revert(before_block)
    for _ in range(3):
        chain.anvil.rpc("evm_mine")
    assert chain.w3.eth.get_balance(to) == 0
    (reorged,) = journal.recheck(chain.w3)
    new_hash = bytes(chain.w3.eth.get_block(row.block_number)["hash"])  # type: ignore[arg-type]
    assert new_hash != row.block_hash
    assert reorged.state is T.REORGED and row.block_hash is not None and f"0x{row.block_hash.hex()}" in reorged.reason
    assert journal.intent_outcome("i10") == "unresolved"  # never counted as done
    with pytest.raises(UnresolvedTx):
        pay(s, to, 1, "i11:pay")
    (again,) = journal.recover(s)  # nonce free again: the same signed bytes
    assert again.state is T.CONFIRMED and again.tx_hash == row.tx_hash and again.block_hash != row.block_hash
    assert chain.w3.eth.get_balance(to) == 4242 and journal.intent_outcome("i10") == "done"
    # deep enough: final, no longer checked
    for _ in range(5):
        chain.anvil.rpc("evm_mine")
    assert journal.recheck(chain.w3) == [] and journal.all()[0].final


def test_confirmed_row_not_yet_deep_is_rechecked_and_a_kept_block_is_not_a_reorg(
        chain: DevChain, account: LocalAccount, engine: Engine) -> None:
    journal = TxJournal(engine, chain.chain_id, reorg_depth=4)
    pay(sender(chain, account, journal), recipient("depth"), 5, "i12:pay")
    for mined in range(3):
        assert journal.recheck(chain.w3) == []
        assert journal.all()[0].final is False, mined
        chain.anvil.rpc("evm_mine")
    assert journal.recheck(chain.w3) == [] and journal.all()[0].final is True


# ------------------------------------------------------------------ the transition table
def test_transition_table_refuses_every_other_move(engine: Engine) -> None:
    journal = TxJournal(engine, 31337)
    for i, start in enumerate(TxState):
        for j, to in enumerate(TxState):
            raw = bytes([i, j]) * 8
            account: LocalAccount = Account.from_key(keccak(raw))  # one sender per case
            signed = SignedTx(31337, account.address, i * 10 + j, recipient("t"), b"", 0, raw, keccak(raw))
            journal.before_broadcast(signed, {"intent_id": f"t{i}{j}", "client_id": f"t{i}{j}:x"})
            path = {T.PENDING: [], T.BROADCAST: [T.BROADCAST], T.CONFIRMED: [T.CONFIRMED],
                    T.FAILED: [T.FAILED], T.REORGED: [T.CONFIRMED, T.REORGED],
                    T.REPLACED: [T.REPLACED]}[start]
            for step in path:
                journal._move(signed.tx_hash, step, block=(1, b"\x01" * 32) if step in (T.CONFIRMED, T.FAILED)
                              else None)
            assert journal.by_hash(signed.tx_hash).state is start  # type: ignore[union-attr]
            if to is start:
                continue
            if to in TRANSITIONS[start]:
                journal._move(signed.tx_hash, to, block=(2, b"\x02" * 32) if to in (T.CONFIRMED, T.FAILED) else None)
                assert journal.by_hash(signed.tx_hash).state is to  # type: ignore[union-attr]
            else:
                with pytest.raises(Refused, match="is not a transition"):
                    journal._move(signed.tx_hash, to)
                assert journal.by_hash(signed.tx_hash).state is start  # type: ignore[union-attr]


def test_an_unlocked_dev_account_is_signed_by_the_node_and_journaled(chain: DevChain, engine: Engine) -> None:
    """A dev-chain sender without a local key (anvil signs: eth_signTransaction) is journaled
    the same way: the journaled hash is the hash of the bytes the node signed."""
    journal = TxJournal(engine, chain.chain_id)
    to = recipient("unlocked")
    receipt = TxSender(chain.w3, chain.deployer.address, journal=journal).send(
        {"to": to, "value": 31}, meta={"intent_id": "u1", "client_id": "u1:pay"})
    (row,) = journal.all()
    assert row.state is T.CONFIRMED and row.tx_hash == bytes(receipt["transactionHash"]) == keccak(row.raw)
    assert row.sender == chain.deployer.address and chain.w3.eth.get_balance(to) == 31
