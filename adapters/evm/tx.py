"""One transaction sender for every writer: nonce, gas, fees, receipt, revert reason.

- nonce: the sender's *pending* transaction count (anvil forks are known to answer
  "nonce too low" to a latest-count nonce);
- gas: the node's estimate x 1.25 + 50,000. An estimate is exact for the state it ran on;
  the block that includes the transaction can cost more (a Uniswap pool's oracle write
  once the timestamp moved on made ~1 in 6 Roles LP exits run out of gas with the bare
  estimate: 2/12 failed before, 0/32 after). A caller may pass ``gas`` only where the
  node cannot estimate (a contract creation bigger than the estimate's cap, a keyless
  deployment); say why where it does;
- fees: EIP-1559 from the node (max fee = 2 x base fee + priority fee, priority from
  eth_maxPriorityFeePerGas); legacy gas price on a chain without a base fee;
- receipt: waited for with a deadline; past it the transaction's fate is unknown
  (:class:`TxUnknown`, Transient: look it up by hash, never resend blindly);
- reverts: an estimate that reverts or a receipt with status 0 raises
  :class:`TxReverted` (Refused) with the reason decoded: Roles v2 custom errors
  (ConditionViolation with its status name), Safe GSxxx codes, Error(string),
  Panic(uint256).

Signing is local (an eth-account key). On a local chain or a fork, an unlocked or
impersonated address can be the sender instead (the node signs: eth_sendTransaction);
the same nonce, gas, fee and receipt rules apply.

Journal and fence (issue 11): with a ``journal`` (:class:`TxJournalHook`, bot/tx_journal.py)
the transaction is signed first (the node signs for an unlocked address through
eth_signTransaction) and handed to ``journal.before_broadcast``, which commits it (hash,
nonce, the signed bytes) BEFORE anything leaves; then ``fence`` (the single-writer lease,
bot/lease.py) is asked right before the broadcast; ``checkpoint`` names the two kill
points ("after_journal_row", "after_broadcast") for the crash harness. Without a journal
and a fence the send is as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TimeExhausted,
    Web3RPCError,
)
from web3.types import RPCEndpoint, TxReceipt

from adapters.evm.chain import scrub
from policies.errors import ErrorFamily, Refused, Transient

RevertDecoder = Callable[[bytes], "str | None"]

ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)
PANIC_CODES = {
    0x01: "assert failed", 0x11: "arithmetic overflow/underflow", 0x12: "division by zero",
    0x21: "bad enum value", 0x22: "bad storage byte array", 0x31: "pop on empty array",
    0x32: "array index out of bounds", 0x41: "out of memory", 0x51: "zero function pointer",
}

GAS_MULTIPLIER = (5, 4)  # x 1.25
GAS_HEADROOM = 50_000


def gas_limit(estimate: int) -> int:
    """The one gas policy: estimate x 1.25 + 50,000 (see the module docstring)."""
    return estimate * GAS_MULTIPLIER[0] // GAS_MULTIPLIER[1] + GAS_HEADROOM


class TxError(ErrorFamily):
    """A transaction that did not go through: reverted (Refused) or unknown (Transient)."""


class TxReverted(TxError, Refused):
    """The chain refused the transaction (its estimate or its receipt reverted)."""

    def __init__(self, reason: str, tx_hash: bytes | None = None) -> None:
        self.reason = reason
        self.tx_hash = tx_hash
        where = f" in tx 0x{tx_hash.hex()}" if tx_hash else ""
        super().__init__(f"reverted{where}: {reason}")


class TxUnknown(TxError, Transient):
    """Sent, but no receipt within the deadline: look it up by hash before anything else."""

    def __init__(self, tx_hash: bytes, deadline: float) -> None:
        self.tx_hash = tx_hash
        super().__init__(f"tx 0x{tx_hash.hex()} has no receipt after {deadline:g}s; its fate is unknown")


# --------------------------------------------------------------------------- revert reasons
def decode_standard_revert(raw: bytes) -> str | None:
    """Error(string) and Panic(uint256); None for anything else."""
    if raw[:4] == ERROR_STRING:
        try:
            (message,) = abi_decode(["string"], raw[4:])
        except Exception:  # eth_abi's own error family on malformed data
            return None
        return str(message)
    if raw[:4] == PANIC and len(raw) >= 36:
        code = int.from_bytes(raw[4:36], "big")
        return f"Panic(0x{code:02x}: {PANIC_CODES.get(code, 'unknown')})"
    return None


def default_decoders() -> tuple[RevertDecoder, ...]:
    """The decoders every writer uses: Safe GSxxx, Roles v2 custom errors, then the standard
    ones (imported here, not at module level: roles.py and safe.py import this module)."""
    from adapters.evm.roles import decode_roles_revert
    from adapters.evm.safe import decode_safe_revert

    return (decode_safe_revert, decode_roles_revert, decode_standard_revert)


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data a web3 contract error carries, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    return None


def explain_revert(exc: BaseException, decoders: Sequence[RevertDecoder] | None = None) -> str:
    """A one-line, key-free reason for a revert: the first decoder that knows the data,
    else web3's message (which may already hold a decoded Error(string))."""
    raw = revert_data(exc)
    if raw:
        for decode in decoders if decoders is not None else default_decoders():
            try:
                named = decode(raw)
            except Exception:  # a decoder must not hide the revert it was asked about
                named = None
            if named:
                return named
    message = getattr(exc, "message", None) or str(exc)
    text = str(message).splitlines()[0][:200] if message else type(exc).__name__
    if raw and text.startswith("0x"):
        return f"revert 0x{raw[:4].hex()}"
    return scrub(text)


# ------------------------------------------------------------------------- journal hook
@dataclass(frozen=True)
class SignedTx:
    """A transaction signed and not necessarily broadcast: what a journal keeps so that the
    SAME bytes can be broadcast again after a crash (never a new transaction)."""

    chain_id: int
    sender: str
    nonce: int
    to: str | None
    data: bytes
    value: int
    raw: bytes
    tx_hash: bytes


class TxJournalHook(Protocol):
    """What TxSender tells a transaction journal (bot/tx_journal.py implements it)."""

    def before_broadcast(self, signed: SignedTx, meta: Mapping[str, str]) -> None:
        """Commit the transaction durably; raising stops the send (nothing broadcast)."""
        ...

    def broadcast_done(self, signed: SignedTx) -> None: ...

    def not_broadcast(self, signed: SignedTx, reason: str) -> None:
        """The journaled transaction never left this process (the fence refused)."""
        ...

    def receipt(self, signed: SignedTx, receipt: TxReceipt) -> None: ...


_ALREADY_KNOWN = ("already known", "known transaction", "already imported", "already exists")


# ---------------------------------------------------------------------------------- sender
@dataclass
class TxSender:
    """Sends transactions for one account on one chain (see the module docstring)."""

    w3: Web3
    signer: LocalAccount | str  # a key, or an unlocked/impersonated address on a dev chain
    receipt_timeout: float = 120.0
    poll_latency: float = 0.05
    decoders: Sequence[RevertDecoder] | None = None
    _chain_id: int | None = None
    journal: TxJournalHook | None = None  # commits each transaction before its broadcast
    fence: Callable[[], None] | None = None  # the lease's check, right before every broadcast
    checkpoint: Callable[[str], None] | None = None  # kill points for the crash harness

    @property
    def address(self) -> ChecksumAddress:
        if isinstance(self.signer, str):
            return to_checksum_address(self.signer)
        return self.signer.address

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def fees(self) -> dict[str, int]:
        """EIP-1559 fees from the node (legacy gas price where there is no base fee)."""
        base = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base is None:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        priority = int(self.w3.eth.max_priority_fee)
        return {"maxFeePerGas": 2 * int(base) + priority, "maxPriorityFeePerGas": priority}

    def build(self, tx: dict[str, Any]) -> dict[str, Any]:
        """``tx`` completed: from, chain id, pending nonce, gas by the policy, fees."""
        out = dict(tx)
        out["from"] = self.address
        out.setdefault("value", 0)
        if "to" in out and out["to"] is not None:
            out["to"] = to_checksum_address(out["to"])
        if isinstance(out.get("data"), bytes | bytearray):
            out["data"] = "0x" + bytes(out["data"]).hex()
        out.setdefault("chainId", self.chain_id)
        out.setdefault("nonce", self.w3.eth.get_transaction_count(self.address, "pending"))
        if "gas" not in out:
            estimate_tx = {k: v for k, v in out.items() if k not in ("nonce", "chainId")}
            try:
                out["gas"] = gas_limit(int(self.w3.eth.estimate_gas(estimate_tx)))  # type: ignore[arg-type]
            except (ContractLogicError, ContractCustomError, ContractPanicError) as exc:
                raise TxReverted(explain_revert(exc, self.decoders)) from None
        if "gasPrice" not in out and "maxFeePerGas" not in out:
            out.update(self.fees())
        return out

    def send(self, tx: dict[str, Any], *, meta: Mapping[str, str] | None = None) -> TxReceipt:
        """Build, sign (or let the node sign for an unlocked address), send, wait; the
        receipt of a successful transaction, else TxReverted / TxUnknown. With a journal:
        journaled (``meta``: intent and client id) before the broadcast, fenced right before."""
        if self.journal is not None or self.fence is not None:
            return self._send_journaled(tx, meta or {})
        built = self.build(tx)
        if isinstance(self.signer, str):
            tx_hash = bytes(self.w3.eth.send_transaction(built))  # type: ignore[arg-type]
        else:
            signed = self.signer.sign_transaction(built)
            tx_hash = bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction))
        return self.wait(tx_hash, built)

    def sign(self, built: dict[str, Any]) -> SignedTx:
        """Sign a built transaction (an unlocked address: the node signs, eth_signTransaction)."""
        if isinstance(self.signer, str):
            raw = self._node_sign(built)
        else:
            raw = bytes(self.signer.sign_transaction(built).raw_transaction)
        data = built.get("data") or b""
        data_bytes = bytes(HexBytes(data))
        to = built.get("to")
        return SignedTx(self.chain_id, self.address, int(built["nonce"]),
                        None if to is None else to_checksum_address(to), data_bytes,
                        int(built.get("value", 0)), raw, bytes(Web3.keccak(raw)))

    def _node_sign(self, built: dict[str, Any]) -> bytes:
        """eth_signTransaction by the node (an unlocked dev account). Sent raw: web3's result
        formatter expects geth's {raw, tx} answer, anvil answers the signed bytes alone."""
        params = {k: hex(v) if isinstance(v, int) else v for k, v in built.items()}
        answer = self.w3.provider.make_request(RPCEndpoint("eth_signTransaction"), [params])
        if "error" in answer:
            raise Refused(f"the node did not sign: {scrub(str(answer['error'].get('message', '')))}")
        result = answer["result"]
        return bytes(HexBytes(result["raw"] if isinstance(result, dict) else result))

    def broadcast(self, raw: bytes) -> bytes:
        """Ask the fence, then send signed bytes; the hash. A node that already has them
        ("already known") is fine: the same bytes are the same transaction."""
        if self.fence is not None:
            self.fence()
        return self._send_raw(raw)

    def _send_raw(self, raw: bytes) -> bytes:
        try:
            return bytes(self.w3.eth.send_raw_transaction(HexBytes(raw)))
        except (Web3RPCError, ValueError) as exc:
            if any(k in str(exc).lower() for k in _ALREADY_KNOWN):
                return bytes(Web3.keccak(raw))
            raise

    def _point(self, name: str) -> None:
        if self.checkpoint is not None:
            self.checkpoint(name)

    def _send_journaled(self, tx: dict[str, Any], meta: Mapping[str, str]) -> TxReceipt:
        if self.fence is not None:
            self.fence()  # a process without the lease does not even journal
        built = self.build(tx)
        signed = self.sign(built)
        if self.journal is not None:
            self.journal.before_broadcast(signed, meta)
        self._point("after_journal_row")
        if self.fence is not None:
            try:
                self.fence()  # right before the broadcast
            except BaseException as exc:
                if self.journal is not None:  # these bytes never left this process
                    self.journal.not_broadcast(signed, f"not broadcast: fence refused ({type(exc).__name__})")
                raise
        self._send_raw(signed.raw)  # an RPC/transport error: maybe sent; the journal's recovery decides
        if self.journal is not None:
            self.journal.broadcast_done(signed)
        self._point("after_broadcast")
        return self.wait(signed.tx_hash, built, signed)

    def call(self, fn: Any, *, value: int = 0, gas: int | None = None,
             meta: Mapping[str, str] | None = None) -> TxReceipt:
        """Send a web3 contract function or constructor call."""
        tx: dict[str, Any] = {"data": fn._encode_transaction_data() if hasattr(fn, "_encode_transaction_data")
                              else fn.data_in_transaction, "value": value}
        address = getattr(fn, "address", None)
        if address is not None:
            tx["to"] = address
        if gas is not None:
            tx["gas"] = gas
        return self.send(tx, meta=meta)

    def send_raw(self, raw: bytes) -> TxReceipt:
        """A transaction signed elsewhere (e.g. the ERC-2470 keyless deployment)."""
        return self.wait(bytes(self.w3.eth.send_raw_transaction(HexBytes(raw))), None)

    def wait(self, tx_hash: bytes, tx: dict[str, Any] | None, signed: SignedTx | None = None) -> TxReceipt:
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=self.receipt_timeout, poll_latency=self.poll_latency
            )
        except TimeExhausted:
            raise TxUnknown(tx_hash, self.receipt_timeout) from None
        if signed is not None and self.journal is not None:
            self.journal.receipt(signed, receipt)
        if receipt["status"] != 1:
            raise TxReverted(self._why_reverted(tx, receipt), tx_hash)
        return receipt

    def _why_reverted(self, tx: dict[str, Any] | None, receipt: TxReceipt) -> str:
        """Replay the call on the state before its block to name the revert (best effort:
        transactions earlier in the same block are not replayed)."""
        if tx is None:
            return "status 0"
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        try:
            self.w3.eth.call(call, max(0, int(receipt["blockNumber"]) - 1))  # type: ignore[arg-type]
        except (ContractLogicError, ContractCustomError, ContractPanicError) as exc:
            return explain_revert(exc, self.decoders)
        except Exception:  # the replay is only for the message
            return "status 0"
        gas_used = int(receipt["gasUsed"])
        if "gas" in tx and gas_used >= int(tx["gas"]):
            return f"out of gas ({gas_used} of {int(tx['gas'])})"
        return "status 0 (the call succeeds on the previous block's state)"
