"""Governance workflow: approved policy, threshold-signed overrides, pre-flight checks.

No single person can override the hedge. The Safe's owners decide, checked by the Safe
itself on-chain; the bot's key is not an owner. Every proposal, signature, verification,
refusal and application lands in the audit table (bot.audit_store).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import collapse_if_tuple
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from safe_eth.safe import SafeOperationEnum, SafeTx
from safe_eth.safe.multi_send import MultiSend, MultiSendOperation
from web3 import Web3

from adapters.evm import safe as safe_mod
from adapters.evm.safe import SafeAdapter, SafeInvariants, SafeReads, SimulationResult
from bot.audit_store import AlreadyApplied, AuditStore, OverrideRecord, PolicyApproval


class GovernanceError(Exception):
    """A governance refusal, with the reason in one line."""


class PolicyNotApproved(GovernanceError):
    pass


class OverrideRefused(GovernanceError):
    pass


class PreflightRefused(GovernanceError):
    pass


# ---------------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class GovernanceSettings:
    """The approved policy's [governance] section; strict when absent."""

    single_owner_may_tighten: bool = False
    override_max_ttl_hours: float = 72.0


def _policy_module() -> Any:
    try:
        from policies import policy_file
    except ImportError:  # the policy engine not there yet: hash the file's bytes
        return None
    return policy_file


def policy_hash_of_bytes(content: bytes) -> bytes:
    """The policy's canonical hash: policies.policy_file's keccak of the parsed policy's
    canonical bytes (whitespace/comments/key order do not matter), or keccak of the raw
    bytes when that module is absent. The one switch point."""
    pf = _policy_module()
    if pf is None:
        return keccak(content)
    try:
        policy = pf.parse_policy(content.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PolicyNotApproved("policy file is not UTF-8 text") from exc
    except ValueError as exc:  # PolicyError
        raise PolicyNotApproved(f"policy file invalid: {exc}") from exc
    return bytes(pf.policy_hash(policy))


def governance_settings(content: bytes) -> GovernanceSettings:
    """The policy's [governance] section (single_owner_may_tighten, override_max_ttl_hours)."""
    pf = _policy_module()
    if pf is not None:
        try:
            gov = pf.parse_policy(content.decode("utf-8")).governance
        except (UnicodeDecodeError, ValueError) as exc:
            raise PolicyNotApproved(f"policy file invalid: {exc}") from exc
        return GovernanceSettings(bool(gov.single_owner_may_tighten), float(gov.override_max_ttl_hours))
    try:
        section = tomllib.loads(content.decode()).get("governance", {})
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return GovernanceSettings()
    may = section.get("single_owner_may_tighten", False)
    ttl = section.get("override_max_ttl_hours", 72)
    if not isinstance(may, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise PolicyNotApproved("[governance] needs single_owner_may_tighten (bool) and override_max_ttl_hours (> 0)")
    return GovernanceSettings(may, float(ttl))


def approval_text(policy_hash: bytes) -> str:
    """The human-readable message the owners sign (Safe{Wallet} shows it as is)."""
    return f"lphedge: approve policy 0x{policy_hash.hex()}"


@dataclass(frozen=True)
class ApprovalRequest:
    policy_hash: bytes
    text: str
    data_hash: bytes  # EIP-191 hash of the text: what isValidSignature(bytes32,...) gets
    safe_message_hash: bytes  # what Safe{Wallet} shows and the owners sign
    typed_data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "policy_hash": "0x" + self.policy_hash.hex(),
            "message": self.text,
            "message_hash": "0x" + self.data_hash.hex(),
            "safe_message_hash": "0x" + self.safe_message_hash.hex(),
            "typed_data": self.typed_data,
        }


def approval_request(policy_hash: bytes, chain_id: int, safe: str) -> ApprovalRequest:
    text = approval_text(policy_hash)
    data_hash = safe_mod.text_message_hash(text)
    return ApprovalRequest(
        policy_hash=policy_hash,
        text=text,
        data_hash=data_hash,
        safe_message_hash=safe_mod.safe_message_hash(chain_id, safe, data_hash),
        typed_data=safe_mod.safe_message_typed_data(chain_id, safe, data_hash),
    )


def sign_policy(content: bytes, owner: LocalAccount, chain_id: int, safe: str) -> dict[str, Any]:
    """An owner's approval signature as a JSON-ready dict (no key material in it)."""
    req = approval_request(policy_hash_of_bytes(content), chain_id, safe)
    sig = safe_mod.sign_safe_message(owner.key.hex(), chain_id, safe, req.data_hash)
    return {
        "type": "lphedge.policy-signature",
        "chain_id": chain_id,
        "safe": to_checksum_address(safe),
        **req.to_json(),
        "signer": owner.address,
        "signature": "0x" + sig.hex(),
    }


@dataclass
class LoadedPolicy:
    content: bytes
    policy_hash: bytes
    settings: GovernanceSettings
    from_file: bool  # False: the file was unapproved and this is the last approved policy
    warning: str = ""


class PolicyGate:
    """The bot runs only a policy whose hash the Safe approved (EIP-1271, current owners)."""

    def __init__(self, safe: SafeReads, store: AuditStore) -> None:
        self.safe = safe
        self.store = store

    def _collect(self, data_hash: bytes, signatures: Iterable[dict[str, Any]]) -> bytes:
        pairs: dict[str, bytes] = {}
        for item in signatures:
            sig = bytes(HexBytes(item["signature"]))
            digest = safe_mod.safe_message_hash(self.safe.chain_id, self.safe.address, data_hash)
            signer = safe_mod.recover_signer(digest, sig)
            if signer in pairs:
                raise PolicyNotApproved(f"duplicate signer {signer}")
            pairs[signer] = sig
        return safe_mod.pack_signatures(list(pairs.items()))

    def approve(self, content: bytes, signatures: list[dict[str, Any]], source: str = "") -> PolicyApproval:
        """Verify signatures on-chain; record the approval (and the bytes) or refuse."""
        phash = policy_hash_of_bytes(content)
        req = approval_request(phash, self.safe.chain_id, self.safe.address)
        onchain = self.safe.get_message_hash(req.data_hash)
        if onchain != req.safe_message_hash:
            raise PolicyNotApproved("local Safe message hash differs from the Safe's getMessageHash")
        for item in signatures:
            claimed = item.get("policy_hash")
            if claimed and bytes(HexBytes(claimed)) != phash:
                self._refuse(phash, f"signature is for policy {claimed}, not 0x{phash.hex()}")
        packed = self._collect(req.data_hash, signatures)
        check = self.safe.is_valid_signature(req.data_hash, packed)
        self.store.record(
            "verification", "policy", phash, self.safe.chain_id, self.safe.address,
            reason=check.reason, detail={"signatures": len(signatures), "valid": check.valid},
        )
        if not check.valid:
            self._refuse(phash, f"policy 0x{phash.hex()} not approved by the Safe: {check.reason}")
        approval = self.store.save_policy_approval(
            PolicyApproval(
                policy_hash="0x" + phash.hex(), chain_id=self.safe.chain_id, safe=self.safe.address,
                signatures="0x" + packed.hex(), content=content, source_path=source,
            )
        )
        self.store.record("approval", "policy", phash, self.safe.chain_id, self.safe.address, detail={"source": source})
        return approval

    def _refuse(self, phash: bytes, reason: str) -> None:
        self.store.record("refusal", "policy", phash, self.safe.chain_id, self.safe.address, reason=reason)
        raise PolicyNotApproved(reason)

    def still_valid(self, approval: PolicyApproval) -> tuple[bool, str]:
        """Re-ask the Safe: owners may have changed since the approval was recorded."""
        phash = bytes(HexBytes(approval.policy_hash))
        if policy_hash_of_bytes(approval.content) != phash:
            return False, "stored policy bytes do not hash to the approved hash"
        req = approval_request(phash, self.safe.chain_id, self.safe.address)
        check = self.safe.is_valid_signature(req.data_hash, bytes(HexBytes(approval.signatures)))
        return check.valid, check.reason

    def load(self, path: Path) -> LoadedPolicy:
        """The policy to run: the file if approved, else the last approved one, else refuse."""
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise PolicyNotApproved(f"cannot read policy file {path}: {exc.strerror}") from exc
        return self.load_bytes(content, label=f"policy file {path}")

    def load_bytes(self, content: bytes, label: str = "policy") -> LoadedPolicy:
        phash = policy_hash_of_bytes(content)
        approvals = self.store.policy_approvals(self.safe.chain_id, self.safe.address)
        reason = "no approval recorded"
        for approval in approvals:
            if approval.policy_hash == "0x" + phash.hex():
                ok, reason = self.still_valid(approval)
                if ok:
                    return LoadedPolicy(content, phash, governance_settings(content), True)
        # The Safe may also have signed the message on-chain (SignMessageLib): empty signature.
        req = approval_request(phash, self.safe.chain_id, self.safe.address)
        if self.safe.is_valid_signature(req.data_hash, b"").valid:
            return LoadedPolicy(content, phash, governance_settings(content), True)
        refusal = f"{label} (hash 0x{phash.hex()}) is not approved by the Safe: {reason}"
        self.store.record("refusal", "policy", phash, self.safe.chain_id, self.safe.address, reason=refusal)
        for approval in approvals:
            ok, _ = self.still_valid(approval)
            if ok:
                return LoadedPolicy(
                    approval.content, bytes(HexBytes(approval.policy_hash)),
                    governance_settings(approval.content), False,
                    warning=refusal + f"; running the last approved policy {approval.policy_hash}",
                )
        raise PolicyNotApproved(refusal)


# -------------------------------------------------------------------------------- overrides
OVERRIDE_KINDS: dict[str, tuple[str, ...]] = {
    # kind -> required params
    "pause_layer": ("layer",),
    "resume_layer": ("layer",),
    "close_protection_early": ("layer",),
    "change_cap": ("cap", "value"),
    "disable_hedging": (),
    "emergency_exit": (),
    "pause_new_risk": (),
    "add_protection": ("layer",),
}
# Tightening: more protection or less risk. Only these may pass with one owner, and only
# when the approved policy says so. Everything else is loosening and needs the threshold.
TIGHTENING_KINDS = frozenset({"pause_new_risk", "emergency_exit", "add_protection"})
LAYERS = ("short", "intermediate", "structural")

OVERRIDE_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Override": [
        {"name": "kind", "type": "string"},
        {"name": "params", "type": "string"},
        {"name": "reason", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "safe", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
    ],
}


def canonical_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def validate_override(kind: str, params: dict[str, Any], reason: str) -> None:
    if kind not in OVERRIDE_KINDS:
        raise OverrideRefused(f"unknown override kind {kind!r} (one of {', '.join(OVERRIDE_KINDS)})")
    missing = [p for p in OVERRIDE_KINDS[kind] if p not in params]
    if missing:
        raise OverrideRefused(f"{kind} needs params: {', '.join(missing)}")
    if "layer" in params and params["layer"] not in LAYERS:
        raise OverrideRefused(f"layer must be one of {', '.join(LAYERS)}")
    if not reason.strip():
        raise OverrideRefused("an override needs a reason")


def override_typed_data(
    kind: str, params: dict[str, Any], reason: str, chain_id: int, safe: str, nonce: int, expiry: int
) -> dict[str, Any]:
    validate_override(kind, params, reason)
    safe = to_checksum_address(safe)
    return {
        "types": OVERRIDE_TYPES,
        "primaryType": "Override",
        "domain": {"name": "lphedge", "version": "1", "chainId": chain_id, "verifyingContract": safe},
        "message": {
            "kind": kind, "params": canonical_params(params), "reason": reason,
            "chainId": chain_id, "safe": safe, "nonce": nonce, "expiry": expiry,
        },
    }


@dataclass(frozen=True)
class OverrideProposal:
    typed_data: dict[str, Any]
    override_hash: bytes
    safe_message_hash: bytes

    @property
    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = self.typed_data["message"]
        return msg

    def to_json(self) -> dict[str, Any]:
        m = self.message
        return {
            "type": "lphedge.override",
            "override_hash": "0x" + self.override_hash.hex(),
            "safe_message_hash": "0x" + self.safe_message_hash.hex(),
            "typed_data": self.typed_data,
            "safe_message_typed_data": safe_mod.safe_message_typed_data(
                int(m["chainId"]), str(m["safe"]), self.override_hash
            ),
        }


def proposal_from_typed_data(typed_data: dict[str, Any]) -> OverrideProposal:
    """Recompute every hash from the fields (never trust a hash written in a file)."""
    if typed_data.get("types") != OVERRIDE_TYPES or typed_data.get("primaryType") != "Override":
        raise OverrideRefused("not an lphedge Override typed-data document")
    m, d = typed_data["message"], typed_data["domain"]
    if d.get("name") != "lphedge" or d.get("version") != "1":
        raise OverrideRefused("override domain is not lphedge v1")
    if int(m["chainId"]) != int(d["chainId"]) or to_checksum_address(m["safe"]) != to_checksum_address(d["verifyingContract"]):
        raise OverrideRefused("override message and domain disagree on chain or Safe")
    try:
        params = json.loads(m["params"])
    except (TypeError, json.JSONDecodeError) as exc:
        raise OverrideRefused("override params are not JSON") from exc
    if canonical_params(params) != m["params"]:
        raise OverrideRefused("override params are not in canonical JSON form")
    validate_override(m["kind"], params, m["reason"])
    ohash = safe_mod.typed_data_hash(typed_data)
    return OverrideProposal(
        typed_data, ohash, safe_mod.safe_message_hash(int(m["chainId"]), str(m["safe"]), ohash)
    )


def propose_override(
    kind: str, params: dict[str, Any], reason: str, chain_id: int, safe: str, nonce: int, expiry: int,
) -> OverrideProposal:
    return proposal_from_typed_data(override_typed_data(kind, params, reason, chain_id, safe, nonce, expiry))


def sign_override(proposal: OverrideProposal, owner: LocalAccount) -> dict[str, Any]:
    m = proposal.message
    sig = safe_mod.sign_safe_message(owner.key.hex(), int(m["chainId"]), str(m["safe"]), proposal.override_hash)
    return {**proposal.to_json(), "type": "lphedge.override-signature", "signer": owner.address, "signature": "0x" + sig.hex()}


def read_override_files(docs: list[dict[str, Any]]) -> tuple[OverrideProposal, list[tuple[str, bytes]]]:
    """The one proposal all files agree on, and the (claimed signer, signature) pairs."""
    proposals = {}
    sigs: list[tuple[str, bytes]] = []
    for doc in docs:
        if doc.get("type") not in ("lphedge.override", "lphedge.override-signature"):
            raise OverrideRefused(f"not an override file (type {doc.get('type')!r})")
        prop = proposal_from_typed_data(doc["typed_data"])
        claimed = doc.get("override_hash")
        if claimed and bytes(HexBytes(claimed)) != prop.override_hash:
            raise OverrideRefused(f"file claims hash {claimed} but its fields hash to 0x{prop.override_hash.hex()}")
        proposals[prop.override_hash] = prop
        if doc["type"] == "lphedge.override-signature":
            sigs.append((str(doc.get("signer", "")), bytes(HexBytes(doc["signature"]))))
    if len(proposals) != 1:
        raise OverrideRefused(f"files describe {len(proposals)} different overrides; apply one at a time")
    return next(iter(proposals.values())), sigs


@dataclass
class AppliedOverride:
    record: OverrideRecord
    signers: list[str]
    required: int


class OverrideGate:
    """Verify an override against the Safe's current owners and threshold; apply it once."""

    def __init__(self, safe: SafeReads, store: AuditStore, settings: GovernanceSettings) -> None:
        self.safe = safe
        self.store = store
        self.settings = settings

    def _refuse(self, proposal: OverrideProposal, reason: str, actor: str = "") -> None:
        self.store.record(
            "refusal", "override", proposal.override_hash, self.safe.chain_id, self.safe.address,
            actor=actor, reason=reason, detail={"kind": proposal.message.get("kind")},
        )
        raise OverrideRefused(reason)

    def record_proposal(self, proposal: OverrideProposal, proposer: str = "") -> None:
        self.store.record(
            "proposal", "override", proposal.override_hash, self.safe.chain_id, self.safe.address,
            actor=proposer, detail={"typed_data": proposal.typed_data},
        )

    def apply(self, docs: list[dict[str, Any]], now: int) -> AppliedOverride:
        try:
            proposal, sigs = read_override_files(docs)
        except OverrideRefused as exc:
            self.store.record("refusal", "override", b"", self.safe.chain_id, self.safe.address, reason=str(exc))
            raise
        m = proposal.message
        ohash = proposal.override_hash
        if int(m["chainId"]) != self.safe.chain_id:
            self._refuse(proposal, f"wrong chain: override is for chain {m['chainId']}, this is chain {self.safe.chain_id}")
        if to_checksum_address(m["safe"]) != self.safe.address:
            self._refuse(proposal, f"wrong Safe: override is for {m['safe']}, this bot serves {self.safe.address}")
        if self.store.override_by_hash(ohash) is not None:
            self._refuse(proposal, f"replayed: override 0x{ohash.hex()} was already applied")
        if self.store.override_by_nonce(self.safe.chain_id, self.safe.address, int(m["nonce"])) is not None:
            self._refuse(proposal, f"replayed: nonce {m['nonce']} was already used by another override")
        expiry = int(m["expiry"])
        if expiry <= now:
            self._refuse(proposal, f"expired at {expiry} (now {now})")
        if expiry > now + int(self.settings.override_max_ttl_hours * 3600):
            self._refuse(proposal, f"expiry {expiry} further than {self.settings.override_max_ttl_hours} h ahead")

        owners = set(self.safe.owners())
        threshold = self.safe.threshold()
        pairs: dict[str, bytes] = {}
        for claimed, sig in sigs:
            try:
                signer = safe_mod.recover_signer(proposal.safe_message_hash, sig)
            except safe_mod.SafeError as exc:
                self._refuse(proposal, f"bad signature: {exc}", actor=claimed)
            if claimed and to_checksum_address(claimed) != signer:
                self._refuse(proposal, f"signature claimed by {claimed} was made by {signer}", actor=signer)
            if signer in pairs:
                self._refuse(proposal, f"duplicate signer {signer}", actor=signer)
            if signer not in owners:
                self._refuse(proposal, f"non-owner signer {signer} (not a current owner of the Safe)", actor=signer)
            pairs[signer] = sig
            self.store.record("signature", "override", ohash, self.safe.chain_id, self.safe.address, actor=signer)
        tightening = m["kind"] in TIGHTENING_KINDS
        required = 1 if tightening and self.settings.single_owner_may_tighten else threshold
        if len(pairs) < required:
            what = "tightening" if tightening else "loosening"
            self._refuse(proposal, f"under threshold: {len(pairs)} of {required} owner signature(s) for {what} override {m['kind']}")
        packed = safe_mod.pack_signatures(list(pairs.items()))
        if required == threshold:
            check = self.safe.is_valid_signature(ohash, packed)
        else:
            check = self.safe.check_n_signatures(ohash, packed, required)
        self.store.record(
            "verification", "override", ohash, self.safe.chain_id, self.safe.address,
            reason=check.reason, detail={"signers": sorted(pairs), "required": required, "valid": check.valid},
        )
        if not check.valid:
            self._refuse(proposal, f"the Safe rejected the signatures: {check.reason}")
        record = OverrideRecord(
            override_hash="0x" + ohash.hex(), chain_id=self.safe.chain_id, safe=self.safe.address,
            nonce=int(m["nonce"]), kind=str(m["kind"]), params=str(m["params"]), reason=str(m["reason"]),
            expiry=expiry, signers=",".join(sorted(pairs)),
        )
        try:
            self.store.apply_override(record)
        except AlreadyApplied as exc:
            self._refuse(proposal, f"replayed: {exc}")
        self.store.record(
            "application", "override", ohash, self.safe.chain_id, self.safe.address,
            detail={"kind": m["kind"], "params": m["params"], "signers": sorted(pairs)},
        )
        return AppliedOverride(record, sorted(pairs), required)


# ------------------------------------------------------------------------------- preflight
@dataclass(frozen=True)
class DecodedCall:
    target: str
    selector: str
    function: str
    args: dict[str, Any]
    operation: int = 0
    value: int = 0

    def describe(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.args.items())
        return f"{'DELEGATECALL' if self.operation else 'CALL'} {self.target}.{self.function}({args})"


def _short(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


@dataclass
class Allowlist:
    """Known (target, selector) pairs, each with the ABI used to decode its calldata."""

    entries: dict[tuple[str, bytes], dict[str, Any]] = field(default_factory=dict)

    def allow(self, target: str, abi: list[dict[str, Any]], names: Iterable[str]) -> Allowlist:
        from eth_utils.abi import function_abi_to_4byte_selector

        wanted = set(names)
        found = set()
        for item in abi:
            if item.get("type") == "function" and item.get("name") in wanted:
                self.entries[(to_checksum_address(target), bytes(function_abi_to_4byte_selector(item)))] = item  # type: ignore[arg-type]
                found.add(item["name"])
        if found != wanted:
            raise ValueError(f"ABI lacks {sorted(wanted - found)}")
        return self

    def decode(self, target: str, data: bytes, operation: int = 0, value: int = 0) -> DecodedCall:
        if len(data) < 4:
            raise PreflightRefused(f"call to {target} without a function selector")
        key = (to_checksum_address(target), bytes(data[:4]))
        abi = self.entries.get(key)
        if abi is None:
            raise PreflightRefused(f"target {key[0]} selector 0x{key[1].hex()} is not on the allowlist")
        contract = Web3().eth.contract(address=key[0], abi=[abi])
        types = [collapse_if_tuple(dict(i)) for i in abi["inputs"]]
        try:
            _, args = contract.decode_function_input(data)
            values = abi_decode(types, bytes(data[4:]))
            reencoded = bytes(data[:4]) + abi_encode(types, values)
        except Exception as exc:
            raise PreflightRefused(f"calldata for {abi['name']} does not decode: {exc}") from exc
        if reencoded != bytes(data):
            raise PreflightRefused(f"calldata for {abi['name']} has extra or non-canonical bytes")
        return DecodedCall(key[0], "0x" + key[1].hex(), str(abi["name"]), dict(args), operation, value)


@dataclass
class PreflightReport:
    safe_tx_hash: bytes
    calls: list[DecodedCall]
    simulation: SimulationResult | None
    invariants_before: SafeInvariants | None = None
    invariants_after: SafeInvariants | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "safe_tx_hash": "0x" + self.safe_tx_hash.hex(),
            "calls": [c.describe() for c in self.calls],
            "simulation": None if self.simulation is None else {
                "success": self.simulation.success, "gas_used": self.simulation.gas_used,
                "reason": self.simulation.reason,
            },
            "invariants_before": self.invariants_before.to_json() if self.invariants_before else None,
            "invariants_after": self.invariants_after.to_json() if self.invariants_after else None,
        }


def is_multisend_call_only(w3: Web3, address: str) -> bool:
    """The code at ``address`` is MultiSendCallOnly 1.4.1: its creation code, run by eth_call,
    returns exactly the deployed runtime (no trust in a configured address alone)."""
    from safe_eth.eth.contracts import get_multi_send_call_only_V1_4_1_contract

    creation = get_multi_send_call_only_V1_4_1_contract(w3).bytecode
    if not creation:
        return False
    runtime = w3.eth.call({"data": HexBytes(creation)})
    return bool(runtime) and bytes(runtime) == bytes(w3.eth.get_code(to_checksum_address(address)))


def decode_safe_tx(w3: Web3, tx: SafeTx, allowlist: Allowlist, multisend_call_only: str | None) -> list[DecodedCall]:
    """CALL only; DELEGATECALL only to a verified MultiSendCallOnly whose inner calls are
    each CALLs on the allowlist. Every calldata is decoded with a known ABI."""
    if tx.operation == SafeOperationEnum.CALL.value:
        return [allowlist.decode(tx.to, bytes(tx.data), 0, tx.value)]
    if tx.operation != SafeOperationEnum.DELEGATE_CALL.value:
        raise PreflightRefused(f"unknown operation {tx.operation}")
    if multisend_call_only is None or to_checksum_address(tx.to) != to_checksum_address(multisend_call_only):
        raise PreflightRefused(f"delegatecall to {tx.to} refused (only MultiSendCallOnly is allowed)")
    if not is_multisend_call_only(w3, tx.to):
        raise PreflightRefused(f"code at {tx.to} is not MultiSendCallOnly 1.4.1")
    if tx.value:
        raise PreflightRefused("delegatecall with value refused")
    inner = MultiSend.from_transaction_data(bytes(tx.data))
    if not inner:
        raise PreflightRefused("MultiSendCallOnly payload does not decode")
    out = []
    for item in inner:
        if item.operation != MultiSendOperation.CALL:
            raise PreflightRefused(f"nested delegatecall to {item.to} refused")
        out.append(allowlist.decode(item.to, bytes(item.data), 0, item.value))
    # the decoded batch must re-encode to the exact bytes that would be signed
    return out


def preflight_safe_tx(
    adapter: SafeAdapter,
    tx: SafeTx,
    allowlist: Allowlist,
    *,
    multisend_call_only: str | None,
    simulate: Callable[[SafeTx], SimulationResult] | None,
    expected_module_changes: Iterable[str] = (),
    store: AuditStore | None = None,
) -> PreflightReport:
    """Everything checked before the bot proposes a SafeTx or anyone signs it."""

    def refuse(reason: str, h: bytes = b"") -> None:
        if store is not None:
            store.record("refusal", "safe_tx", h, adapter.chain_id, adapter.address, reason=reason)
        raise PreflightRefused(reason)

    try:
        h = safe_mod.verified_safe_tx_hash(tx, adapter)
    except safe_mod.SafeError as exc:
        refuse(str(exc))
        raise  # unreachable
    try:
        calls = decode_safe_tx(adapter.w3, tx, allowlist, multisend_call_only)
    except PreflightRefused as exc:
        refuse(str(exc), h)
        raise
    if simulate is None:
        refuse("refused: no simulation available (a fork is required before proposing)", h)
        raise AssertionError  # unreachable
    sim = simulate(tx)
    if not sim.success:
        refuse(f"simulation failed: {sim.reason}", h)
    expected = tuple(sorted({*sim.before.modules, *(to_checksum_address(m) for m in expected_module_changes)}))
    changed = replace(sim.before, modules=expected).diff(sim.after)
    if changed:
        refuse("Safe invariants would change: " + "; ".join(changed), h)
    if store is not None:
        store.record(
            "verification", "safe_tx", h, adapter.chain_id, adapter.address,
            reason="preflight passed", detail={"calls": [c.describe() for c in calls], "gas": sim.gas_used},
        )
    return PreflightReport(h, calls, sim, sim.before, sim.after)


def fork_simulator(fork_url: str, safe: str) -> Callable[[SafeTx], SimulationResult]:
    """A simulator over an anvil fork at ``fork_url``: snapshot, run, revert."""

    def run(tx: SafeTx) -> SimulationResult:
        w3 = Web3(Web3.HTTPProvider(fork_url, request_kwargs={"timeout": 60}))
        snap = w3.provider.make_request("evm_snapshot", [])  # type: ignore[arg-type]
        try:
            return safe_mod.simulate_on_fork(w3, safe, tx)
        finally:
            w3.provider.make_request("evm_revert", [snap["result"]])  # type: ignore[arg-type]

    return run


class BotExecutor:
    """The bot's on-chain actions: allowlist + decode, CALL only, simulate, send, and check
    the Safe's invariants are unchanged afterwards. Goes through the Roles modifier only."""

    def __init__(self, adapter: SafeAdapter, executor: Any, allowlist: Allowlist, store: AuditStore | None = None) -> None:
        self.adapter = adapter
        self.executor = executor  # adapters.evm.roles.RolesExecutor
        self.allowlist = allowlist
        self.store = store

    def _refuse(self, reason: str, h: bytes) -> None:
        if self.store is not None:
            self.store.record("refusal", "roles", h, self.adapter.chain_id, self.adapter.address,
                              actor=str(self.executor.address), reason=reason)
        raise PreflightRefused(reason)

    def execute(self, to: str, data: bytes, *, operation: int = 0, value: int = 0) -> DecodedCall:
        from adapters.evm.roles import RolesError

        h = keccak(bytes.fromhex(to_checksum_address(to)[2:]) + data)
        if operation != 0:
            self._refuse(f"operation {operation} refused: the bot only CALLs", h)
        if value != 0:
            self._refuse("the bot never sends ether", h)
        try:
            call = self.allowlist.decode(to, data)
        except PreflightRefused as exc:
            self._refuse(str(exc), h)
            raise
        before = self.adapter.invariants()
        try:
            self.executor.simulate(to, data)
        except RolesError as exc:
            self._refuse(f"simulation refused by Roles: {exc}", h)
        self.executor.execute(to, data)
        after = self.adapter.invariants()
        if before.diff(after):
            self._refuse("Safe invariants changed after execution: " + "; ".join(before.diff(after)), h)
        if self.store is not None:
            self.store.record("application", "roles", h, self.adapter.chain_id, self.adapter.address,
                              actor=str(self.executor.address), detail={"call": call.describe()})
        return call


def bot_scope_allowlist(position_manager: str, swap_router: str, tokens: Iterable[str]) -> Allowlist:
    """The bot's allowlist, mirroring its Roles scope."""
    from adapters.evm.roles import ERC20_APPROVE_ABI, uniswap_abi

    al = Allowlist()
    al.allow(position_manager, uniswap_abi("NonfungiblePositionManager"), ["decreaseLiquidity", "collect"])
    al.allow(swap_router, uniswap_abi("SwapRouter"), ["exactInputSingle"])
    for t in tokens:
        al.allow(t, ERC20_APPROVE_ABI, ["approve"])
    return al


def roles_setup_allowlist(safe: str, roles: str) -> Allowlist:
    """What a Roles setup SafeTx may contain: enableModule on the Safe and role scoping."""
    from safe_eth.eth.contracts import get_safe_V1_4_1_contract

    from adapters.evm.roles import roles_artifacts

    al = Allowlist()
    al.allow(safe, [dict(i) for i in get_safe_V1_4_1_contract(Web3()).abi], ["enableModule"])
    al.allow(roles, roles_artifacts()["Roles"]["abi"], [
        "assignRoles", "setDefaultRole", "scopeTarget", "allowFunction", "scopeFunction",
    ])
    return al


def propose_safe_tx(
    adapter: SafeAdapter,
    service: Any,
    tx: SafeTx,
    proposer: LocalAccount,
    allowlist: Allowlist,
    *,
    multisend_call_only: str | None,
    simulate: Callable[[SafeTx], SimulationResult] | None,
    expected_module_changes: Iterable[str] = (),
    store: AuditStore | None = None,
) -> PreflightReport:
    """Pre-flight first, then post to the Transaction Service (adapters.safe_tx_service) as a
    delegate; the owners confirm there. Nothing is proposed that failed a check."""
    report = preflight_safe_tx(
        adapter, tx, allowlist, multisend_call_only=multisend_call_only, simulate=simulate,
        expected_module_changes=expected_module_changes, store=store,
    )
    posted = service.propose(tx, proposer)
    if posted != report.safe_tx_hash:
        raise PreflightRefused("the proposed hash differs from the pre-flighted one")
    if store is not None:
        store.record("proposal", "safe_tx", report.safe_tx_hash, adapter.chain_id, adapter.address,
                     actor=proposer.address, detail=report.to_json())
    return report
