"""Safe Transaction Service client: propose as a delegate, confirmations, pending by nonce.

A thin layer over safe-eth-py's ``TransactionServiceApi`` (``base_url`` points anywhere:
the hosted service, a self-hosted one, or a loopback server in tests). The service is an
outside party: nothing it says is trusted. Every transaction it returns is rebuilt from its
fields and its SafeTx hash recomputed locally (eth-account EIP-712, and safe-eth-py); every
confirmation's signature is recovered and must come from a current owner. A mismatch means a
forged or corrupted answer and is refused as a whole.

Two things are never taken from the service (issue 9, finding 7): whether a transaction is
safe to sign (``confirm`` signs only after the caller's pre-flight passed on the decoded
transaction rebuilt from its fields) and whether it executed (the Safe's nonce and its
``ExecutionSuccess``/``ExecutionFailure`` event for that safeTxHash, read from the chain;
the service's ``isExecuted`` is kept for display only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from requests import RequestException
from safe_eth.eth import EthereumNetwork
from safe_eth.eth.eip712 import eip712_encode_hash
from safe_eth.safe import SafeTx
from safe_eth.safe.api import SafeAPIException
from safe_eth.safe.api.transaction_service_api import TransactionServiceApi
from safe_eth.safe.api.transaction_service_api.transaction_service_messages import (
    get_delegate_message,
)

from adapters.evm.safe import SafeAdapter, local_safe_tx_hash, recover_safe_signer
from adapters.redact import redact_urls
from policies.errors import ErrorFamily, Refused, Transient


class TxServiceError(ErrorFamily):
    """The service refused a request (``TxServiceRefused``, ``ForgedAnswer``) or could not be
    reached (``TxServiceUnavailable``); catch this to handle both."""


class TxServiceRefused(TxServiceError, Refused):
    """The service refused a request, or has not what was asked."""


class TxServiceUnavailable(TxServiceError, Transient):
    """The service could not be reached or timed out: ask again later."""


class ForgedAnswer(TxServiceError, Refused):
    """The service's answer does not match what its own fields hash to."""


def _unavailable(exc: RequestException) -> TxServiceUnavailable:
    """Connection refused, timeout, DNS: one line, URLs (which may carry a key) redacted."""
    return TxServiceUnavailable(f"transaction service unreachable: {type(exc).__name__}: "
                                f"{redact_urls(str(exc))}")


@dataclass(frozen=True)
class Confirmation:
    owner: str
    signature: bytes


# What the chain says about a SafeTx: "pending" (its nonce is not used yet), "success" /
# "failure" (the Safe emitted ExecutionSuccess / ExecutionFailure for its hash), "replaced"
# (its nonce was used by another transaction: it can never execute).
Execution = Literal["pending", "success", "failure", "replaced"]
EXECUTION_SUCCESS = keccak(text="ExecutionSuccess(bytes32,uint256)")
EXECUTION_FAILURE = keccak(text="ExecutionFailure(bytes32,uint256)")


@dataclass(frozen=True)
class ServiceTx:
    """A transaction from the service, after local verification."""

    safe_tx: SafeTx
    safe_tx_hash: bytes
    nonce: int
    proposer: str | None
    confirmations: tuple[Confirmation, ...]  # only current owners' valid signatures
    ignored: tuple[str, ...]  # why other confirmations did not count
    execution: Execution  # from the chain, never from the service
    service_says_executed: bool  # the service's isExecuted: shown, never believed

    @property
    def is_executed(self) -> bool:
        return self.execution in ("success", "failure")


class TxService(Protocol):
    def propose(self, tx: SafeTx, proposer: LocalAccount, origin: str = "lphedge") -> bytes: ...
    def get(self, safe_tx_hash: bytes) -> ServiceTx: ...
    def pending(self, nonce_gte: int | None = None) -> list[ServiceTx]: ...
    def confirm(self, safe_tx_hash: bytes, owner: LocalAccount,
                preflight: Callable[[SafeTx], object]) -> ServiceTx: ...


def _network(chain_id: int) -> EthereumNetwork:
    try:
        return EthereumNetwork(chain_id)
    except ValueError:
        return EthereumNetwork.UNKNOWN


class SafeTxServiceClient:
    """One Safe's view of a Transaction Service."""

    def __init__(self, base_url: str, safe: SafeAdapter, api_key: str | None = None) -> None:
        self.safe = safe
        network = _network(safe.chain_id)
        if network.value != safe.chain_id:
            raise TxServiceRefused(f"chain {safe.chain_id} unknown to safe-eth-py; hashes cannot be checked")
        self.api = TransactionServiceApi(
            network, ethereum_client=safe.client, base_url=base_url.rstrip("/"), api_key=api_key
        )

    # -- writes ---------------------------------------------------------------------------
    def add_delegate(self, delegate: str, owner: LocalAccount, label: str = "lphedge bot") -> None:
        """An owner registers ``delegate`` (e.g. the bot) as a proposer for this Safe."""
        message = get_delegate_message(to_checksum_address(delegate), self.safe.chain_id)
        signature = owner.unsafe_sign_hash(eip712_encode_hash(message)).signature
        try:
            self.api.add_delegate(
                to_checksum_address(delegate), owner.address, label, bytes(signature), self.safe.address
            )
        except SafeAPIException as exc:
            raise TxServiceRefused(str(exc)) from exc
        except RequestException as exc:
            raise _unavailable(exc) from exc

    def propose(self, tx: SafeTx, proposer: LocalAccount, origin: str = "lphedge") -> bytes:
        """Post a SafeTx signed by ``proposer`` (a delegate: its signature does not count)."""
        h = local_safe_tx_hash(tx)
        if h != bytes(tx.safe_tx_hash):
            raise TxServiceRefused("local SafeTx hashes disagree; refusing to propose")
        tx.signatures = b""
        tx.sign(proposer.key.hex())
        try:
            self.api.post_transaction(tx)
        except SafeAPIException as exc:
            raise TxServiceRefused(str(exc)) from exc
        except RequestException as exc:
            raise _unavailable(exc) from exc
        return h

    def confirm(self, safe_tx_hash: bytes, owner: LocalAccount,
                preflight: Callable[[SafeTx], object]) -> ServiceTx:
        """An owner's confirmation of a transaction the service holds, never of a bare hash:
        the transaction is fetched and rebuilt from its fields (its hash recomputed locally),
        must still be pending on the chain, and must pass ``preflight`` (the caller's full
        pre-flight, e.g. bot.preflight.preflight_safe_tx with the permission table's allowlist;
        it raises to refuse) before the owner's key signs the locally computed hash."""
        got = self.get(safe_tx_hash)
        if got.execution != "pending":
            raise TxServiceRefused(
                f"refusing to confirm 0x{got.safe_tx_hash.hex()}: the chain shows it {got.execution} "
                f"(Safe nonce {self.safe.nonce()}, transaction nonce {got.nonce})")
        preflight(got.safe_tx)  # raises (Refused) on anything outside the allowlist
        sig = owner.unsafe_sign_hash(Hash32(got.safe_tx_hash)).signature
        try:
            self.api.post_signatures(got.safe_tx_hash, bytes(sig))
        except SafeAPIException as exc:
            raise TxServiceRefused(str(exc)) from exc
        except RequestException as exc:
            raise _unavailable(exc) from exc
        return got

    def execution(self, safe_tx_hash: bytes, nonce: int) -> Execution:
        """Whether the Safe executed this transaction, from the chain: a nonce at or above
        the Safe's is pending; below it, the Safe's ExecutionSuccess/ExecutionFailure event
        (txHash indexed) for this hash says which, and no event means another transaction
        used the nonce. (The log query spans the whole chain: on a hosted node that limits
        ranges, narrow it with the service's blockNumber after checking it the same way.)"""
        if nonce >= self.safe.nonce():
            return "pending"
        logs = self.safe.w3.eth.get_logs({
            "address": self.safe.address, "fromBlock": 0, "toBlock": "latest",
            "topics": [["0x" + EXECUTION_SUCCESS.hex(), "0x" + EXECUTION_FAILURE.hex()],
                       "0x" + bytes(safe_tx_hash).hex()],
        })
        topics = {bytes(log["topics"][0]) for log in logs}
        if EXECUTION_SUCCESS in topics:
            return "success"
        return "failure" if EXECUTION_FAILURE in topics else "replaced"

    # -- reads ----------------------------------------------------------------------------
    def get(self, safe_tx_hash: bytes) -> ServiceTx:
        try:
            raw: list[Any] = self.api.get_transactions(
                self.safe.address, safe_tx_hash="0x" + safe_tx_hash.hex()  # type: ignore[arg-type]
            )
        except SafeAPIException as exc:
            if "doesn't match" in str(exc):
                raise ForgedAnswer(str(exc)) from exc
            raise TxServiceRefused(str(exc)) from exc
        except RequestException as exc:
            raise _unavailable(exc) from exc
        except (AssertionError, KeyError, TypeError, ValueError) as exc:  # safe-eth-py parsing a hostile answer
            raise ForgedAnswer(f"malformed answer: {exc!r}") from exc
        matches = [r for r in raw if str(r.get("safeTxHash", "")).lower() == "0x" + safe_tx_hash.hex()]
        if len(matches) != 1:
            raise TxServiceRefused(f"service has no transaction 0x{safe_tx_hash.hex()} for {self.safe.address}")
        return self._verify(matches[0], expected_hash=safe_tx_hash)

    def pending(self, nonce_gte: int | None = None) -> list[ServiceTx]:
        """Transactions not yet executed on the chain from ``nonce_gte`` (default: the Safe's
        nonce), by nonce. The service is not asked to filter on ``executed``: one that says
        "executed" about a pending transaction cannot hide it."""
        start = max(self.safe.nonce(), nonce_gte or 0)
        try:
            raw: list[Any] = self.api.get_transactions(
                self.safe.address, nonce__gte=start, ordering="nonce"  # type: ignore[arg-type]
            )
        except SafeAPIException as exc:
            raise TxServiceRefused(str(exc)) from exc
        except RequestException as exc:
            raise _unavailable(exc) from exc
        return [t for t in (self._verify(r) for r in raw) if t.execution == "pending"]

    def _verify(self, raw: dict[str, Any], expected_hash: bytes | None = None) -> ServiceTx:
        claimed = bytes(HexBytes(raw.get("safeTxHash") or b""))
        try:
            if to_checksum_address(raw["safe"]) != self.safe.address:
                raise ForgedAnswer(f"answer is for Safe {raw['safe']}, asked about {self.safe.address}")
            tx = self.safe.build_tx(
                raw["to"], int(raw["value"]), bytes(HexBytes(raw["data"] or b"")), int(raw["operation"]),
                nonce=int(raw["nonce"]),
            )
            tx.safe_tx_gas, tx.base_gas, tx.gas_price = int(raw["safeTxGas"]), int(raw["baseGas"]), int(raw["gasPrice"])
            tx.gas_token = to_checksum_address(raw["gasToken"])
            tx.refund_receiver = to_checksum_address(raw["refundReceiver"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ForgedAnswer(f"malformed transaction in answer: {exc!r}") from exc
        ours = local_safe_tx_hash(tx)
        if ours != claimed or (expected_hash is not None and ours != expected_hash):
            raise ForgedAnswer(
                f"forged answer: fields hash to 0x{ours.hex()}, service says 0x{claimed.hex()}"
            )
        owners = set(self.safe.owners())
        confs: list[Confirmation] = []
        ignored: list[str] = []
        for c in raw.get("confirmations") or []:
            try:
                sig = bytes(HexBytes(c.get("signature") or b""))
                signer = recover_safe_signer(ours, sig)
                named = to_checksum_address(c.get("owner") or "0x" + "00" * 20)
            except Exception as exc:  # a service answer is untrusted input: never crash on it
                ignored.append(f"{str(c.get('owner') if isinstance(c, dict) else c)[:42]}: unusable confirmation ({exc})")
                continue
            if signer != named:
                ignored.append(f"{c.get('owner')}: signature was made by {signer}")
            elif signer not in owners:
                ignored.append(f"{signer}: not a current owner")
            elif any(x.owner == signer for x in confs):
                ignored.append(f"{signer}: duplicate confirmation")
            else:
                confs.append(Confirmation(signer, sig))
        return ServiceTx(
            safe_tx=tx, safe_tx_hash=ours, nonce=int(raw["nonce"]),
            proposer=raw.get("proposer"), confirmations=tuple(confs), ignored=tuple(ignored),
            execution=self.execution(ours, int(raw["nonce"])),
            service_says_executed=raw.get("isExecuted") is True,
        )
