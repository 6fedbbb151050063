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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
)
from web3.types import TxReceipt

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

    def send(self, tx: dict[str, Any]) -> TxReceipt:
        """Build, sign (or let the node sign for an unlocked address), send, wait; the
        receipt of a successful transaction, else TxReverted / TxUnknown."""
        built = self.build(tx)
        if isinstance(self.signer, str):
            tx_hash = bytes(self.w3.eth.send_transaction(built))  # type: ignore[arg-type]
        else:
            signed = self.signer.sign_transaction(built)
            tx_hash = bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction))
        return self.wait(tx_hash, built)

    def call(self, fn: Any, *, value: int = 0, gas: int | None = None) -> TxReceipt:
        """Send a web3 contract function or constructor call."""
        tx: dict[str, Any] = {"data": fn._encode_transaction_data() if hasattr(fn, "_encode_transaction_data")
                              else fn.data_in_transaction, "value": value}
        address = getattr(fn, "address", None)
        if address is not None:
            tx["to"] = address
        if gas is not None:
            tx["gas"] = gas
        return self.send(tx)

    def send_raw(self, raw: bytes) -> TxReceipt:
        """A transaction signed elsewhere (e.g. the ERC-2470 keyless deployment)."""
        return self.wait(bytes(self.w3.eth.send_raw_transaction(HexBytes(raw))), None)

    def wait(self, tx_hash: bytes, tx: dict[str, Any] | None) -> TxReceipt:
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=self.receipt_timeout, poll_latency=self.poll_latency
            )
        except TimeExhausted:
            raise TxUnknown(tx_hash, self.receipt_timeout) from None
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
