"""The on-chain transaction journal: every transaction the bot signs, committed before it
is broadcast, resolved after a crash from the chain, re-checked against reorgs.

- ``before_broadcast`` (the hook adapters/evm/tx.py's TxSender calls, :class:`TxJournalHook`)
  commits one row per signed transaction: chain id, sender, nonce, target, calldata hash,
  intent id and client id, the hash and the signed bytes, state ``pending``. The database
  refuses a second row for a (chain, sender, nonce), a client id or a hash, and a new
  transaction is refused while an earlier one of the same sender is unresolved: never two
  transactions for one step, never a nonce gap the journal does not know.
- States and their one transition table (``TRANSITIONS``): pending -> broadcast ->
  confirmed | failed (receipt status) | replaced (another transaction used the nonce);
  confirmed/failed -> reorged (its block is no longer on the chain) -> re-resolved.
- ``recover`` (at start, before anything new is sent): each unresolved row, in nonce
  order, by its receipt first, then by the sender's on-chain nonce: the nonce used by
  another transaction -> replaced; not used -> the SAME signed bytes are broadcast again
  (through the sender's fence), never a new transaction.
- ``recheck``: confirmed (and failed) rows are compared by block hash with the chain until
  they are ``depth`` blocks deep (settings: chain ``reorg_depth``); a changed or missing
  block makes the row ``reorged``, so its intent is not done until ``recover`` has found
  the transaction again (re-included, rebroadcast, or replaced).

``intent_outcome`` is what an intent's steps add up to: done only when every step is
confirmed. Checkpoints ("after_journal_row", "after_broadcast") are the sender's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eth_utils.crypto import keccak
from hexbytes import HexBytes
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from web3 import Web3
from web3.exceptions import BlockNotFound, TimeExhausted, TransactionNotFound
from web3.types import TxReceipt

from adapters.evm.tx import SignedTx, TxSender
from bot.db import session_scope
from bot.db.models import TxJournalEntry
from bot.db.types import utcnow
from policies.errors import Refused, Transient

__all__ = [
    "TRANSITIONS",
    "DuplicateTx",
    "JournalConflict",
    "JournaledTx",
    "TxJournal",
    "TxState",
    "UnresolvedTx",
]


class TxState(StrEnum):
    PENDING = "pending"  # committed, maybe not broadcast
    BROADCAST = "broadcast"  # the node took it
    CONFIRMED = "confirmed"  # receipt status 1, in block (number, hash)
    FAILED = "failed"  # receipt status 0, or never broadcast (the fence refused)
    REORGED = "reorged"  # its block left the chain: to be re-resolved
    REPLACED = "replaced"  # another transaction used its nonce


T = TxState
TRANSITIONS: Mapping[TxState, frozenset[TxState]] = {
    T.PENDING: frozenset({T.BROADCAST, T.CONFIRMED, T.FAILED, T.REPLACED}),
    T.BROADCAST: frozenset({T.CONFIRMED, T.FAILED, T.REPLACED}),
    T.CONFIRMED: frozenset({T.REORGED}),
    T.FAILED: frozenset({T.REORGED}),
    T.REORGED: frozenset({T.BROADCAST, T.CONFIRMED, T.FAILED, T.REPLACED}),
    T.REPLACED: frozenset(),
}
UNRESOLVED = frozenset({T.PENDING, T.BROADCAST, T.REORGED})
IN_BLOCK = frozenset({T.CONFIRMED, T.FAILED})


class UnresolvedTx(Refused):
    """A new transaction while an earlier one of the sender is unresolved: recover first."""


class DuplicateTx(Refused):
    """A second transaction for a client id, a nonce or a hash already journaled."""


class JournalConflict(Transient):
    """Another writer changed the row between our read and our write: re-read."""


@dataclass(frozen=True, slots=True)
class JournaledTx:
    chain_id: int
    sender: str
    nonce: int
    target: str | None
    calldata_hash: bytes
    value: int
    intent_id: str
    client_id: str
    tx_hash: bytes
    raw: bytes
    state: TxState
    block_number: int | None
    block_hash: bytes | None
    final: bool
    reason: str


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _unhex(s: str | None) -> bytes | None:
    return None if s is None else bytes.fromhex(s[2:])


def _view(row: TxJournalEntry) -> JournaledTx:
    raw = _unhex(row.raw_tx)
    assert raw is not None
    return JournaledTx(row.chain_id, row.sender, int(row.nonce), row.target,
                       _unhex(row.calldata_hash) or b"", int(row.value), row.intent_id,
                       row.client_id, _unhex(row.tx_hash) or b"", raw, TxState(row.state),
                       None if row.block_number is None else int(row.block_number),
                       _unhex(row.block_hash), row.final, row.reason)


class TxJournal:
    """The journal of one chain (see the module docstring); implements TxJournalHook."""

    def __init__(self, engine: Engine, chain_id: int, *, reorg_depth: int = 12) -> None:
        if reorg_depth < 1:
            raise ValueError("reorg_depth must be at least 1 block")
        self.engine = engine
        self.chain_id = chain_id
        self.reorg_depth = reorg_depth

    # -------------------------------------------------------------- the sender's hook
    def before_broadcast(self, signed: SignedTx, meta: Mapping[str, str]) -> None:
        if signed.chain_id != self.chain_id:
            raise Refused(f"transaction for chain {signed.chain_id} in the journal of chain {self.chain_id}")
        intent_id, client_id = meta.get("intent_id"), meta.get("client_id")
        if not intent_id or not client_id:
            raise Refused("a journaled transaction needs an intent_id and a client_id")
        try:
            with session_scope(self.engine) as s:
                open_rows = self._rows(s, sender=signed.sender, states=UNRESOLVED)
                if open_rows:
                    r = open_rows[0]
                    raise UnresolvedTx(f"sender {signed.sender} has an unresolved transaction "
                                       f"(nonce {r.nonce}, {r.state}, {r.client_id}): recover first")
                if self._by_client(s, client_id) is not None:
                    raise DuplicateTx(f"client id {client_id} already has a transaction")
                s.add(TxJournalEntry(
                    chain_id=self.chain_id, sender=signed.sender, nonce=signed.nonce, target=signed.to,
                    calldata_hash=_hex(keccak(signed.data)), value=str(signed.value), intent_id=intent_id,
                    client_id=client_id, tx_hash=_hex(signed.tx_hash), raw_tx=_hex(signed.raw),
                    state=T.PENDING.value))
        except IntegrityError:
            raise DuplicateTx(f"nonce {signed.nonce} of {signed.sender} or client id {client_id} "
                              "is already journaled") from None

    def broadcast_done(self, signed: SignedTx) -> None:
        self._move(signed.tx_hash, T.BROADCAST, only_from=frozenset({T.PENDING, T.REORGED}))

    def not_broadcast(self, signed: SignedTx, reason: str) -> None:
        self._move(signed.tx_hash, T.FAILED, reason=reason)

    def receipt(self, signed: SignedTx, receipt: TxReceipt) -> None:
        self._settle(signed.tx_hash, receipt)

    # --------------------------------------------------------------------- reading
    def get(self, client_id: str) -> JournaledTx | None:
        with session_scope(self.engine) as s:
            row = self._by_client(s, client_id)
            return None if row is None else _view(row)

    def by_hash(self, tx_hash: bytes) -> JournaledTx | None:
        with session_scope(self.engine) as s:
            row = self._by_hash(s, tx_hash)
            return None if row is None else _view(row)

    def of_intent(self, intent_id: str) -> list[JournaledTx]:
        with session_scope(self.engine) as s:
            rows = s.exec(select(TxJournalEntry).where(
                col(TxJournalEntry.chain_id) == self.chain_id,
                col(TxJournalEntry.intent_id) == intent_id).order_by(col(TxJournalEntry.nonce))).all()
            return [_view(r) for r in rows]

    def unresolved(self, sender: str | None = None) -> list[JournaledTx]:
        with session_scope(self.engine) as s:
            return [_view(r) for r in self._rows(s, sender=sender, states=UNRESOLVED)]

    def all(self) -> list[JournaledTx]:
        with session_scope(self.engine) as s:
            return [_view(r) for r in self._rows(s)]

    def intent_outcome(self, intent_id: str, steps: tuple[str, ...] = ()) -> str:
        """"none" (nothing journaled), "unresolved" (a step pending, broadcast or reorged),
        "failed" (a step failed or was replaced), "done" (every step confirmed; with
        ``steps``, every named client id present and confirmed), "partial" (some named
        steps not journaled yet)."""
        rows = self.of_intent(intent_id)
        if not rows:
            return "none"
        states = {r.state for r in rows}
        if states & UNRESOLVED:
            return "unresolved"
        if states & {T.FAILED, T.REPLACED}:
            return "failed"
        if steps and {r.client_id for r in rows} != set(steps):
            return "partial"
        return "done"

    # ------------------------------------------------------------------- recovery
    def recover(self, sender: TxSender, *, wait: bool = True) -> list[JournaledTx]:
        """Resolve every unresolved row of ``sender`` (see the module docstring), in nonce
        order; the rows after. Needs the sender's fence (a rebroadcast is a send)."""
        w3 = sender.w3
        out = []
        for row in self.unresolved(sender.address):
            # the nonce is read BEFORE the receipt: a transaction mined between the two reads
            # is then seen by its receipt, never mistaken for a replacement
            used = int(w3.eth.get_transaction_count(sender.address, "latest"))
            receipt = _receipt(w3, row.tx_hash)
            if receipt is not None:
                self._settle(row.tx_hash, receipt)
            elif used > row.nonce:
                self._move(row.tx_hash, T.REPLACED,
                           reason=f"nonce {row.nonce} used by another transaction (account nonce {used})")
            else:
                if _known(w3, row.tx_hash) is None:
                    sender.broadcast(row.raw)  # the SAME signed bytes, through the fence
                if row.state is not T.BROADCAST:
                    self._move(row.tx_hash, T.BROADCAST)
                if wait:
                    try:
                        receipt = w3.eth.wait_for_transaction_receipt(
                            HexBytes(row.tx_hash), timeout=sender.receipt_timeout,
                            poll_latency=sender.poll_latency)
                    except TimeExhausted:
                        receipt = None  # stays broadcast: asked again at the next recovery
                    if receipt is not None:
                        self._settle(row.tx_hash, receipt)
            found = self.by_hash(row.tx_hash)
            assert found is not None
            out.append(found)
        return out

    def recheck(self, w3: Web3) -> list[JournaledTx]:
        """Compare every confirmed/failed row not yet final with the chain by block hash;
        rows whose block changed or vanished become ``reorged`` (returned); rows
        ``reorg_depth`` blocks deep become final (no longer checked)."""
        head = int(w3.eth.block_number)
        reorged = []
        with session_scope(self.engine) as s:
            rows = [r for r in self._rows(s, states=IN_BLOCK) if not r.final]
        for row in rows:
            assert row.block_number is not None and row.block_hash is not None
            try:
                block = w3.eth.get_block(int(row.block_number))
                now_hash: str | None = _hex(bytes(block["hash"]))
            except BlockNotFound:
                now_hash = None
            tx_hash = _unhex(row.tx_hash) or b""
            if now_hash != row.block_hash:
                self._move(tx_hash, T.REORGED, reason=(
                    f"block {row.block_number} was {row.block_hash}, now "
                    f"{now_hash or 'not on the chain'} (head {head})"))
                found = self.by_hash(tx_hash)
                assert found is not None
                reorged.append(found)
            elif head - int(row.block_number) + 1 >= self.reorg_depth:
                self._finalize(row)
        return reorged

    # -------------------------------------------------------------------- writing
    def _settle(self, tx_hash: bytes, receipt: TxReceipt) -> None:
        ok = int(receipt["status"]) == 1
        self._move(tx_hash, T.CONFIRMED if ok else T.FAILED,
                   block=(int(receipt["blockNumber"]), bytes(receipt["blockHash"])),
                   reason="" if ok else "receipt status 0")

    def _move(self, tx_hash: bytes, to: TxState, *, block: tuple[int, bytes] | None = None,
              reason: str = "", only_from: frozenset[TxState] | None = None) -> None:
        with session_scope(self.engine) as s:
            row = self._by_hash(s, tx_hash)
            if row is None:
                raise Refused(f"no journaled transaction {_hex(tx_hash)}")
            now = TxState(row.state)
            same_block = block is not None and row.block_number == block[0] and row.block_hash == _hex(block[1])
            if now is to and (block is None or same_block):
                return  # told twice (the sender's receipt, then a recovery): nothing new
            if only_from is not None and now not in only_from:
                return
            if to not in TRANSITIONS[now]:
                raise Refused(f"transaction {_hex(tx_hash)}: {now} -> {to} is not a transition")
            values: dict[str, Any] = {"state": to.value, "reason": reason, "version": row.version + 1,
                                      "updated_at": utcnow()}
            if block is not None:
                values |= {"block_number": block[0], "block_hash": _hex(block[1]), "final": False}
            elif to is T.REORGED:
                values |= {"final": False}
            done = s.execute(update(TxJournalEntry).where(
                col(TxJournalEntry.id) == row.id, col(TxJournalEntry.version) == row.version).values(**values))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise JournalConflict(f"transaction {_hex(tx_hash)} changed while being updated; re-read")

    def _finalize(self, row: TxJournalEntry) -> None:
        with session_scope(self.engine) as s:
            s.execute(update(TxJournalEntry).where(
                col(TxJournalEntry.id) == row.id, col(TxJournalEntry.version) == row.version).values(
                final=True, version=row.version + 1, updated_at=utcnow()))

    # -------------------------------------------------------------------- queries
    def _rows(self, s: Session, *, sender: str | None = None,
              states: frozenset[TxState] | None = None) -> list[TxJournalEntry]:
        q = select(TxJournalEntry).where(col(TxJournalEntry.chain_id) == self.chain_id)
        if sender is not None:
            q = q.where(col(TxJournalEntry.sender) == Web3.to_checksum_address(sender))
        if states is not None:
            q = q.where(col(TxJournalEntry.state).in_([x.value for x in states]))
        return list(s.exec(q.order_by(col(TxJournalEntry.nonce), col(TxJournalEntry.id))).all())

    def _by_client(self, s: Session, client_id: str) -> TxJournalEntry | None:
        return s.exec(select(TxJournalEntry).where(col(TxJournalEntry.client_id) == client_id)).first()

    def _by_hash(self, s: Session, tx_hash: bytes) -> TxJournalEntry | None:
        return s.exec(select(TxJournalEntry).where(col(TxJournalEntry.tx_hash) == _hex(tx_hash))).first()


def _receipt(w3: Web3, tx_hash: bytes) -> TxReceipt | None:
    try:
        return w3.eth.get_transaction_receipt(HexBytes(tx_hash))
    except TransactionNotFound:
        return None


def _known(w3: Web3, tx_hash: bytes) -> Any:
    """The node's copy of the transaction (mempool or chain), None when it has none."""
    try:
        return w3.eth.get_transaction(HexBytes(tx_hash))
    except TransactionNotFound:
        return None
