"""The Safe (1.4.1) as the bot sees it: reads, message hashes, EIP-1271 checks, SafeTx hashes.

Everything that decides whether a signature counts is asked of the Safe itself on-chain
(``isValidSignature`` through its CompatibilityFallbackHandler, ``checkNSignatures``);
what is computed locally (message hashes, SafeTx hashes) is computed with eth-account's
EIP-712 encoder and cross-checked against safe-eth-py and the chain.

Message hashing follows Safe{Wallet}: a text message is first hashed with EIP-191
(``personal_sign``), typed data with EIP-712; that 32-byte hash is the ``message`` of the
Safe's own ``SafeMessage(bytes message)`` EIP-712 struct, whose hash the owners sign and
which the Safe's ``getMessageHash`` returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct, encode_typed_data
from eth_typing import ChecksumAddress, HexAddress, HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from safe_eth.eth.contracts import get_safe_V1_4_1_contract
from safe_eth.safe import Safe, SafeOperationEnum, SafeTx
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.types import BlockIdentifier

from adapters.evm.chain import ChainConnection, FailoverHTTPProvider
from adapters.evm.tx import TxReverted, TxSender, decode_standard_revert
from policies.errors import Refused

EIP1271_MAGIC = bytes.fromhex("1626ba7e")  # isValidSignature(bytes32,bytes)
NULL_ADDRESS = ChecksumAddress(HexAddress(HexStr("0x0000000000000000000000000000000000000000")))
SAFE_VERSION = "1.4.1"

# Storage slots Safe 1.4.1 keeps outside its ABI (keccak of a fixed label).
GUARD_SLOT = keccak(text="guard_manager.guard.address")
FALLBACK_HANDLER_SLOT = keccak(text="fallback_manager.handler.address")

# The fallback handler's functions, called on the Safe's own address.
_FALLBACK_ABI: list[dict[str, Any]] = [
    {
        "name": "isValidSignature",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "_dataHash", "type": "bytes32"}, {"name": "_signature", "type": "bytes"}],
        "outputs": [{"name": "", "type": "bytes4"}],
    },
    {
        "name": "getMessageHash",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "message", "type": "bytes"}],
        "outputs": [{"name": "", "type": "bytes32"}],
    },
]

# Safe error codes (contracts/common/ErrorMessage.md in safe-smart-account).
GS_REASONS = {
    "GS020": "signatures too short for the threshold",
    "GS021": "invalid contract signature data offset",
    "GS022": "invalid contract signature location",
    "GS023": "invalid contract signature length",
    "GS024": "invalid contract signature",
    "GS025": "hash not approved by owner",
    "GS026": "signer is not a current owner, or signatures not strictly ascending (duplicate)",
    "GS013": "inner transaction failed",
}


class SafeError(Refused):
    """The Safe refused, or answered something we cannot trust."""


def eip191_hash(message: SignableMessage) -> bytes:
    """keccak256(0x19 || version || header || body): the hash any EIP-191 signer signs."""
    return keccak(b"\x19" + message.version + message.header + message.body)


def text_message_hash(text: str) -> bytes:
    """EIP-191 personal_sign hash of a text (what Safe{Wallet} does before wrapping)."""
    return eip191_hash(encode_defunct(text=text))


def typed_data_hash(typed_data: dict[str, Any]) -> bytes:
    """EIP-712 hash of full typed data (domain, types, primaryType, message)."""
    return eip191_hash(encode_typed_data(full_message=typed_data))


def safe_message_typed_data(chain_id: int, safe: str, message: bytes) -> dict[str, Any]:
    """The Safe's own EIP-712 ``SafeMessage`` struct around ``message`` (owners sign this)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "SafeMessage": [{"name": "message", "type": "bytes"}],
        },
        "primaryType": "SafeMessage",
        "domain": {"chainId": chain_id, "verifyingContract": to_checksum_address(safe)},
        "message": {"message": "0x" + message.hex()},
    }


def safe_message_hash(chain_id: int, safe: str, message: bytes) -> bytes:
    """Local equivalent of the Safe's ``getMessageHash(message)``."""
    return typed_data_hash(safe_message_typed_data(chain_id, safe, message))


def sign_safe_message(private_key: str, chain_id: int, safe: str, message: bytes) -> bytes:
    """An owner's 65-byte ECDSA signature (v 27/28) over the SafeMessage hash."""
    signed = Account.sign_typed_data(
        private_key, full_message=safe_message_typed_data(chain_id, safe, message)
    )
    return bytes(signed.signature)


def recover_signer(digest: bytes, signature: bytes) -> str:
    """Address that produced a 65-byte ECDSA signature (v 27/28) over ``digest``."""
    if len(signature) != 65:
        raise SafeError(f"signature must be 65 bytes, got {len(signature)}")
    if signature[64] not in (27, 28):
        raise SafeError(f"unsupported signature type v={signature[64]} (expected 27 or 28; eth_sign 31/32 where the Safe reads it)")
    return to_checksum_address(Account._recover_hash(digest, signature=signature))


def recover_safe_signer(digest: bytes, signature: bytes) -> str:
    """Signer of a 65-byte owner signature as the Safe reads it: ECDSA over ``digest`` (v 27/28)
    or ``eth_sign`` over EIP-191(digest) (v 31/32, what some wallets produce)."""
    if len(signature) == 65 and signature[64] in (31, 32):
        prefixed = eip191_hash(encode_defunct(primitive=digest))
        return recover_signer(prefixed, signature[:64] + bytes([signature[64] - 4]))
    return recover_signer(digest, signature)


def pack_signatures(signed: list[tuple[str, bytes]]) -> bytes:
    """Concatenate (signer, signature) pairs sorted by ascending signer address, as the Safe wants."""
    ordered = sorted(signed, key=lambda item: int(item[0], 16))
    return b"".join(sig for _, sig in ordered)


def decode_safe_revert(raw: bytes) -> str | None:
    """A Safe GSxxx revert (Error(string) "GS013" ...) explained; None for anything else."""
    from adapters.evm.tx import decode_standard_revert

    message = decode_standard_revert(raw) if raw[:4] == bytes.fromhex("08c379a0") else None
    if message and message in GS_REASONS:
        return f"{message}: {GS_REASONS[message]}"
    return None


def revert_reason(exc: Exception) -> str:
    """A one-line reason from a reverted call, with the Safe's GSxxx code explained."""
    text = str(exc)
    for code, meaning in GS_REASONS.items():
        if code in text:
            return f"{code}: {meaning}"
    return text.splitlines()[0][:200] if text else type(exc).__name__


@dataclass(frozen=True)
class SafeInvariants:
    """What must not change behind the owners' backs (Bybit 2025, Radiant 2024)."""

    singleton: str
    owners: tuple[str, ...]
    threshold: int
    modules: tuple[str, ...]
    guard: str
    fallback_handler: str

    def diff(self, other: SafeInvariants) -> list[str]:
        """Names of the fields that differ, with before -> after."""
        out = []
        for key, before in asdict(self).items():
            after = asdict(other)[key]
            if before != after:
                out.append(f"{key}: {before} -> {after}")
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["owners"] = list(self.owners)
        data["modules"] = list(self.modules)
        return data


@dataclass(frozen=True)
class SignatureCheck:
    """The Safe's on-chain verdict on a set of signatures."""

    valid: bool
    reason: str


@dataclass(frozen=True)
class PinnedBlock:
    """The one block every governance read of a check is made at (issue 9, finding 2)."""

    number: int
    hash: bytes
    timestamp: int
    witnesses: int  # other endpoints that confirmed the hash (0: only one URL configured)


class UntrustedRpc(SafeError):
    """The RPC's answer cannot be trusted: stale block, endpoints disagree, lagging node."""


class SafeReads(Protocol):
    """What governance needs from a Safe (a live chain or a fork)."""

    @property
    def address(self) -> str: ...
    @property
    def chain_id(self) -> int: ...

    def pinned_reads(self, now: int | None = None) -> AbstractContextManager[PinnedBlock | None]: ...

    def owners(self) -> list[str]: ...
    def threshold(self) -> int: ...
    def nonce(self) -> int: ...
    def invariants(self) -> SafeInvariants: ...
    def is_valid_signature(self, data_hash: bytes, signatures: bytes) -> SignatureCheck: ...
    def check_n_signatures(self, data_hash: bytes, signatures: bytes, n: int) -> SignatureCheck: ...
    def get_message_hash(self, message: bytes) -> bytes: ...


class SafeAdapter:
    """A Safe 1.4.1 on one chain (sync web3; the daemon calls it from a thread).

    Built from a ChainConnection (adapters/evm/chain.py: every URL, failover, timeout, the
    chain id checked) with ``from_connection``; ``SafeAdapter(w3, address, url)`` wraps a
    single-URL connection around a Web3 that tests and dev chains already hold."""

    def __init__(
        self, w3: Web3, address: str, rpc_url: str | None = None, *, connection: ChainConnection | None = None,
        max_block_age: float | None = None, max_block_lag: int = 2,
    ) -> None:
        self.w3 = w3
        self.max_block_age = max_block_age
        self.max_block_lag = max_block_lag
        self.pinned: PinnedBlock | None = None
        self.address = to_checksum_address(address)
        if not w3.eth.get_code(self.address):
            raise SafeError(f"no contract at Safe address {self.address}")
        if connection is None:
            provider = w3.provider
            if rpc_url is None and isinstance(provider, FailoverHTTPProvider):
                urls = list(provider.urls)
            else:
                url = rpc_url or getattr(provider, "endpoint_uri", None)
                if not url:
                    raise SafeError("an HTTP RPC URL is needed for safe-eth-py")
                urls = [str(url)]
            connection = ChainConnection(urls)
            connection.check_chain_id(int(w3.eth.chain_id))
        self.connection = connection
        self.chain_id = connection.chain_id
        self.rpc_urls = list(connection.urls)
        self.rpc_url = self.rpc_urls[0]
        self.client = connection.ethereum_client()
        self.safe = Safe(self.address, self.client)  # type: ignore[abstract]
        self.contract = get_safe_V1_4_1_contract(w3, self.address)
        self.fallback = w3.eth.contract(address=self.address, abi=_FALLBACK_ABI)
        # One plain Web3 per URL when several are configured: the failover pool answers from
        # whichever works, so a forging or lagging endpoint is caught only by asking each.
        self._endpoints: list[Web3] = []
        if len(self.rpc_urls) > 1:
            self._endpoints = connection.endpoint_w3s()

    @classmethod
    def from_connection(cls, connection: ChainConnection, address: str, *,
                        max_block_age: float | None = None, max_block_lag: int = 2) -> SafeAdapter:
        """The Safe at ``address`` over every URL of ``connection`` (chain id checked)."""
        connection.connect_sync()
        return cls(connection.w3, address, connection=connection,
                   max_block_age=max_block_age, max_block_lag=max_block_lag)

    # -- the pinned block -----------------------------------------------------------------
    def pin(self, now: int | None = None) -> PinnedBlock:
        """Pin every following read to the latest block, after checking it: no older than
        ``max_block_age`` seconds by ``now`` (the local clock), and, with several URLs, the
        same hash on every endpoint and no endpoint more than ``max_block_lag`` blocks ahead
        (a node one block behind can hide a swapOwner)."""
        block = self.w3.eth.get_block("latest")
        number, bhash, ts = int(block["number"]), bytes(block["hash"]), int(block["timestamp"])
        if self.max_block_age is not None and now is not None and now - ts > self.max_block_age:
            raise UntrustedRpc(f"stale RPC: block {number} is {now - ts} s old "
                               f"(limit {self.max_block_age:g} s)")
        seen = 0
        for i, ep in enumerate(self._endpoints):
            try:
                other = ep.eth.get_block(number)
                head = int(ep.eth.block_number)
            except Exception as exc:  # any failure: that endpoint cannot vouch for the block
                raise UntrustedRpc(f"RPC endpoint {i + 1} cannot confirm block {number}: "
                                   f"{type(exc).__name__}") from None
            if bytes(other["hash"]) != bhash:
                raise UntrustedRpc(f"RPC endpoints disagree: block {number} is 0x{bhash.hex()} on one "
                                   f"and 0x{bytes(other['hash']).hex()} on endpoint {i + 1}")
            if head - number > self.max_block_lag:
                raise UntrustedRpc(f"lagging RPC: pinned block {number} is {head - number} block(s) "
                                   f"behind endpoint {i + 1} (limit {self.max_block_lag})")
            seen += 1
        self.pinned = PinnedBlock(number, bhash, ts, max(seen - 1, 0))
        return self.pinned

    @contextmanager
    def pinned_reads(self, now: int | None = None) -> Iterator[PinnedBlock]:
        """Every read inside the block is made at one checked block (``pin``)."""
        outer = self.pinned
        try:
            yield self.pin(now)
        finally:
            self.pinned = outer

    def _at(self) -> BlockIdentifier:
        return self.pinned.number if self.pinned is not None else "latest"

    def _agreed(self, name: str, call: Any, *args: Any, fallback: bool = False) -> Any:
        """``call`` at the pinned block, asked of every endpoint when several are configured;
        any disagreement refuses (a forging node is outvoted by nothing: we stop)."""
        answer = call(self.fallback if fallback else self.contract, *args)
        if self.pinned is None:
            return answer
        for i, ep in enumerate(self._endpoints):
            abi = _FALLBACK_ABI if fallback else self.contract.abi
            other_contract = ep.eth.contract(address=self.address, abi=abi)
            try:
                other = call(other_contract, *args)
            except ContractLogicError as exc:
                other = exc
            if repr(other) != repr(answer):
                raise UntrustedRpc(f"RPC endpoints disagree on {name} at block {self.pinned.number} "
                                   f"(endpoint {i + 1} answers differently)")
        return answer

    # -- reads --------------------------------------------------------------------------
    def owners(self) -> list[str]:
        at = self._at()
        raw = self._agreed("getOwners", lambda c: c.functions.getOwners().call(block_identifier=at))
        return [to_checksum_address(o) for o in raw]

    def threshold(self) -> int:
        at = self._at()
        return int(self._agreed("getThreshold", lambda c: c.functions.getThreshold().call(block_identifier=at)))

    def nonce(self) -> int:
        return int(self.contract.functions.nonce().call())

    def version(self) -> str:
        return str(self.contract.functions.VERSION().call())

    def invariants(self, block: BlockIdentifier | None = None) -> SafeInvariants:
        """At ``block``; default the pinned block (``pin``), else the latest."""
        block = self._at() if block is None else block

        def slot_address(slot: bytes) -> str:
            raw = self.w3.eth.get_storage_at(self.address, int.from_bytes(slot, "big"), block)
            return to_checksum_address(bytes(raw)[-20:])

        singleton = slot_address((0).to_bytes(32, "big"))  # masterCopy lives in slot 0
        modules = self.safe.retrieve_modules(block_identifier=block)
        return SafeInvariants(
            singleton=singleton,
            owners=tuple(to_checksum_address(o) for o in self.contract.functions.getOwners().call(block_identifier=block)),
            threshold=int(self.contract.functions.getThreshold().call(block_identifier=block)),
            modules=tuple(sorted(to_checksum_address(m) for m in modules)),
            guard=slot_address(GUARD_SLOT),
            fallback_handler=slot_address(FALLBACK_HANDLER_SLOT),
        )

    # -- messages (EIP-1271) ------------------------------------------------------------
    def get_message_hash(self, message: bytes) -> bytes:
        """The Safe's own SafeMessage hash (CompatibilityFallbackHandler.getMessageHash)."""
        return bytes(self.fallback.functions.getMessageHash(message).call(block_identifier=self._at()))

    def local_message_hash(self, message: bytes) -> bytes:
        return safe_message_hash(self.chain_id, self.address, message)

    def is_valid_signature(self, data_hash: bytes, signatures: bytes) -> SignatureCheck:
        """EIP-1271 on the Safe: threshold signatures of current owners over SafeMessage(data_hash).

        An empty ``signatures`` asks whether the Safe signed the message on-chain (SignMessageLib).
        """
        at = self._at()
        try:
            out = bytes(self._agreed(
                "isValidSignature",
                lambda c: c.functions.isValidSignature(data_hash, signatures).call(block_identifier=at),
                fallback=True))
        except ContractLogicError as exc:
            return SignatureCheck(False, revert_reason(exc))
        if out != EIP1271_MAGIC:
            return SignatureCheck(False, f"isValidSignature returned 0x{out.hex()}")
        return SignatureCheck(True, "EIP-1271 magic value from the Safe")

    def check_n_signatures(self, data_hash: bytes, signatures: bytes, n: int) -> SignatureCheck:
        """Safe.checkNSignatures over the SafeMessage hash of ``data_hash``: n current owners.
        The hash checked is the Safe's own getMessageHash (and must equal the local one)."""
        message_hash = self.get_message_hash(data_hash)
        if message_hash != self.local_message_hash(data_hash):
            return SignatureCheck(False, "local SafeMessage hash differs from the Safe's getMessageHash")
        at = self._at()
        try:
            self._agreed("checkNSignatures", lambda c: c.functions.checkNSignatures(
                message_hash, data_hash, signatures, n
            ).call(block_identifier=at))
        except ContractLogicError as exc:
            return SignatureCheck(False, revert_reason(exc))
        return SignatureCheck(True, f"{n} owner signature(s) accepted by checkNSignatures")

    # -- transactions ---------------------------------------------------------------------
    def build_tx(
        self,
        to: str,
        value: int,
        data: bytes,
        operation: int = SafeOperationEnum.CALL.value,
        nonce: int | None = None,
    ) -> SafeTx:
        """A SafeTx with zero gas refund fields (the executor pays its own gas)."""
        return SafeTx(
            self.client,
            self.address,
            to_checksum_address(to),
            value,
            HexBytes(data),
            operation,
            0,
            0,
            0,
            NULL_ADDRESS,
            NULL_ADDRESS,
            safe_nonce=self.nonce() if nonce is None else nonce,
            safe_version=SAFE_VERSION,
            chain_id=self.chain_id,
        )

    def onchain_tx_hash(self, tx: SafeTx) -> bytes:
        """The Safe's own getTransactionHash; SafeError if the Safe cannot hash it (e.g. operation 2)."""
        try:
            return bytes(
                self.contract.functions.getTransactionHash(
                    tx.to, tx.value, bytes(tx.data), tx.operation, tx.safe_tx_gas, tx.base_gas,
                    tx.gas_price, tx.gas_token, tx.refund_receiver, tx.safe_nonce,
                ).call()
            )
        except ContractLogicError as exc:
            raise SafeError(f"the Safe cannot hash this transaction: {revert_reason(exc)}") from exc


def safe_tx_typed_data(tx: SafeTx) -> dict[str, Any]:
    """The SafeTx EIP-712 typed data (JSON-ready) for hardware wallets and Safe{Wallet}."""
    data: dict[str, Any] = json.loads(json.dumps(tx.eip712_structured_data, default=_hexify))
    return data


def _hexify(value: object) -> str:
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def local_safe_tx_hash(tx: SafeTx) -> bytes:
    """SafeTx hash with eth-account's EIP-712 encoder (independent of safe-eth-py's)."""
    return typed_data_hash(safe_tx_typed_data(tx))


def verified_safe_tx_hash(tx: SafeTx, adapter: SafeAdapter | None = None) -> bytes:
    """The SafeTx hash, computed twice locally (and once on-chain when an adapter is given);
    any disagreement raises instead of returning a hash someone might sign."""
    ours = local_safe_tx_hash(tx)
    theirs = bytes(tx.safe_tx_hash)
    if ours != theirs:
        raise SafeError(f"SafeTx hash mismatch: eth-account 0x{ours.hex()} vs safe-eth-py 0x{theirs.hex()}")
    if adapter is not None:
        chain = adapter.onchain_tx_hash(tx)
        if chain != ours:
            raise SafeError(f"SafeTx hash mismatch: local 0x{ours.hex()} vs Safe 0x{chain.hex()}")
    return ours


def multisend_call_only_tx(
    adapter: SafeAdapter, multisend_call_only: str, calls: list[tuple[str, bytes]], nonce: int | None = None
) -> SafeTx:
    """One SafeTx: DELEGATECALL to MultiSendCallOnly batching plain CALLs (value 0)."""
    from safe_eth.safe.multi_send import MultiSend, MultiSendOperation, MultiSendTx

    batch = [
        MultiSendTx(MultiSendOperation.CALL, to_checksum_address(to), 0, data) for to, data in calls
    ]
    ms = MultiSend(adapter.client, to_checksum_address(multisend_call_only), call_only=True)
    return adapter.build_tx(
        multisend_call_only, 0, bytes(ms.build_tx_data(batch)), SafeOperationEnum.DELEGATE_CALL.value, nonce
    )


def enable_module_call(safe: str, module: str) -> tuple[str, bytes]:
    contract = get_safe_V1_4_1_contract(Web3(), to_checksum_address(safe))
    data = contract.functions.enableModule(to_checksum_address(module))._encode_transaction_data()
    return to_checksum_address(safe), bytes(HexBytes(data))


def swap_owner_call(adapter: SafeAdapter, old_owner: str, new_owner: str) -> tuple[str, bytes]:
    """swapOwner(prevOwner, oldOwner, newOwner) with prevOwner looked up in the owner list."""
    owners = adapter.owners()
    old = to_checksum_address(old_owner)
    if old not in owners:
        raise SafeError(f"{old} is not an owner")
    i = owners.index(old)
    prev = "0x0000000000000000000000000000000000000001" if i == 0 else owners[i - 1]
    data = adapter.contract.functions.swapOwner(
        to_checksum_address(prev), old, to_checksum_address(new_owner)
    )._encode_transaction_data()
    return adapter.address, bytes(HexBytes(data))


@dataclass(frozen=True)
class SimulationResult:
    success: bool
    gas_used: int
    before: SafeInvariants
    after: SafeInvariants
    reason: str


_DECODERS = (decode_safe_revert, decode_standard_revert)
EXECUTION_SUCCESS_TOPIC = keccak(text="ExecutionSuccess(bytes32,uint256)")


def simulate_on_fork(fork_w3: Web3, safe: str, tx: SafeTx) -> SimulationResult:
    """Execute ``tx`` through the real Safe on an anvil fork, approved by impersonated owners.

    Threshold owners approve the hash on-chain (approveHash) and the first executes with
    v=1 signatures, so the whole Safe path runs (signature checks, guard, delegatecall,
    MultiSend). The fork is changed; callers use a throwaway fork or a snapshot.
    """
    fork = SafeAdapter(fork_w3, safe)
    before = fork.invariants()
    if tx.safe_nonce != fork.nonce():
        return SimulationResult(False, 0, before, before, f"nonce {tx.safe_nonce} is not the Safe's next nonce {fork.nonce()}")
    safe_tx_hash = fork.onchain_tx_hash(tx)
    if safe_tx_hash != bytes(tx.safe_tx_hash):
        return SimulationResult(False, 0, before, before, "SafeTx hash on the fork differs from the local one")
    signers = sorted(fork.owners()[: fork.threshold()], key=lambda a: int(a, 16))
    rpc = fork_w3.provider.make_request
    try:
        for owner in signers:
            rpc("anvil_impersonateAccount", [owner])  # type: ignore[arg-type]
            rpc("anvil_setBalance", [owner, hex(10**20)])  # type: ignore[arg-type]
        executor = signers[0]
        for owner in signers[1:]:
            TxSender(fork_w3, owner, decoders=_DECODERS).call(fork.contract.functions.approveHash(safe_tx_hash))
        signatures = b"".join(
            bytes.fromhex(owner[2:].lower()).rjust(32, b"\0") + b"\0" * 32 + b"\x01" for owner in signers
        )
        fn = fork.contract.functions.execTransaction(
            tx.to, tx.value, bytes(tx.data), tx.operation, tx.safe_tx_gas, tx.base_gas,
            tx.gas_price, tx.gas_token, tx.refund_receiver, signatures,
        )
        try:
            fn.call({"from": executor})
        except ContractLogicError as exc:
            return SimulationResult(False, 0, before, before, revert_reason(exc))
        try:
            receipt = TxSender(fork_w3, executor, decoders=_DECODERS).call(fn)
        except TxReverted as exc:
            return SimulationResult(False, 0, before, before, exc.reason)
    finally:  # never leave owners impersonated on the fork, whatever happened
        for owner in signers:
            rpc("anvil_stopImpersonatingAccount", [owner])  # type: ignore[arg-type]
    ok = receipt["status"] == 1 and any(
        log["address"] == fork.address and bytes(log["topics"][0]) == EXECUTION_SUCCESS_TOPIC
        for log in receipt["logs"]
    )
    after = fork.invariants()
    return SimulationResult(ok, int(receipt["gasUsed"]), before, after, "executed" if ok else "ExecutionFailure")
