"""Governance workflow: approved policy, threshold-signed overrides, (pre-flight checks live in bot.preflight).

No single person can override the hedge. The Safe's owners decide, checked by the Safe
itself on-chain; the bot's key is not an owner. Every proposal, signature, verification,
refusal and application lands in the audit table (bot.audit_store).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from adapters.evm import safe as safe_mod
from adapters.evm.safe import SafeReads
from bot.audit_store import AlreadyApplied, AuditStore, OverrideRecord, PolicyApproval
from policies import policy_file, vocab
from policies.errors import Refused


class GovernanceError(Refused):
    """A governance refusal, with the reason in one line."""


class PolicyNotApproved(GovernanceError):
    pass


class OverrideRefused(GovernanceError):
    pass


class PreflightRefused(GovernanceError):
    pass


# ---------------------------------------------------------------------------------- policy
# The approved policy's [governance] section is policies.policy_file.Governance itself;
# without an approved policy at hand, its defaults (strict) apply.
STRICT = policy_file.Governance()


def _parse(content: bytes) -> policy_file.Policy:
    try:
        return policy_file.parse_policy(content.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PolicyNotApproved("policy file is not UTF-8 text") from exc
    except policy_file.PolicyError as exc:
        raise PolicyNotApproved(f"policy file invalid: {exc}") from exc


def policy_hash_of_bytes(content: bytes) -> bytes:
    """The policy's canonical hash: policies.policy_file's keccak of the parsed policy's
    canonical bytes (whitespace, comments and key order do not matter)."""
    return bytes(policy_file.policy_hash(_parse(content)))


def policy_layers(content: bytes) -> tuple[str, ...]:
    """The layer names the policy declares: the ones an override may name."""
    return tuple(_parse(content).layers)


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
    policy: policy_file.Policy  # parsed once, from the approved bytes
    from_file: bool  # False: the file was unapproved and this is the last approved policy
    warning: str = ""

    @property
    def governance(self) -> policy_file.Governance:
        return self.policy.governance

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.policy.layers)


class PolicyGate:
    """The bot runs only a policy whose hash the Safe approved (EIP-1271, current owners)."""

    def __init__(self, safe: SafeReads, store: AuditStore) -> None:
        self.safe = safe
        self.store = store

    def _collect(self, phash: bytes, data_hash: bytes, signatures: Iterable[dict[str, Any]]) -> bytes:
        pairs: dict[str, bytes] = {}
        digest = safe_mod.safe_message_hash(self.safe.chain_id, self.safe.address, data_hash)
        for i, item in enumerate(signatures, 1):
            try:
                sig = bytes(HexBytes(item["signature"]))
                signer = safe_mod.recover_signer(digest, sig)
            except KeyError:
                self._refuse(phash, f"signature file {i}: missing field 'signature'")
            except (TypeError, ValueError, safe_mod.SafeError) as exc:
                self._refuse(phash, f"signature file {i}: unusable signature ({exc})")
            if signer in pairs:
                self._refuse(phash, f"duplicate signer {signer}")
            pairs[signer] = sig
        return safe_mod.pack_signatures(list(pairs.items()))

    def approve(self, content: bytes, signatures: list[dict[str, Any]], source: str = "") -> PolicyApproval:
        """Verify signatures on-chain; record the approval (and the bytes) or refuse."""
        phash = policy_hash_of_bytes(content)
        req = approval_request(phash, self.safe.chain_id, self.safe.address)
        onchain = self.safe.get_message_hash(req.data_hash)
        if onchain != req.safe_message_hash:
            self._refuse(phash, "local Safe message hash differs from the Safe's getMessageHash")
        for item in signatures:
            claimed = item.get("policy_hash")
            if claimed and str(claimed).lower() != "0x" + phash.hex():
                self._refuse(phash, f"signature is for policy {claimed}, not 0x{phash.hex()}")
        packed = self._collect(phash, req.data_hash, signatures)
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

    def _refuse(self, phash: bytes, reason: str) -> NoReturn:
        self.store.record("refusal", "policy", phash, self.safe.chain_id, self.safe.address, reason=reason)
        raise PolicyNotApproved(reason)

    def still_valid(self, approval: PolicyApproval) -> tuple[bool, str]:
        """Re-ask the Safe: owners may have changed since the approval was recorded."""
        phash = bytes(HexBytes(approval.policy_hash))
        try:
            if policy_hash_of_bytes(approval.content) != phash:
                return False, "stored policy bytes do not hash to the approved hash"
        except PolicyNotApproved as exc:
            return False, f"stored policy bytes no longer parse: {exc}"
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
        try:
            policy = _parse(content)  # parsed once: the hash and LoadedPolicy.policy
        except PolicyNotApproved as exc:  # an edited file that no longer parses
            refusal = f"{label} is refused: {exc}"
            self.store.record("refusal", "policy", keccak(content), self.safe.chain_id, self.safe.address, reason=refusal)
            return self._last_approved(refusal)
        phash = bytes(policy_file.policy_hash(policy))
        reason = "no approval recorded"
        for approval in self.store.policy_approvals(self.safe.chain_id, self.safe.address):
            if approval.policy_hash == "0x" + phash.hex():
                ok, reason = self.still_valid(approval)
                if ok:
                    return LoadedPolicy(content, phash, policy, True)
        # The Safe may also have signed the message on-chain (SignMessageLib): empty signature.
        req = approval_request(phash, self.safe.chain_id, self.safe.address)
        if self.safe.is_valid_signature(req.data_hash, b"").valid:
            return LoadedPolicy(content, phash, policy, True)
        refusal = f"{label} (hash 0x{phash.hex()}) is not approved by the Safe: {reason}"
        self.store.record("refusal", "policy", phash, self.safe.chain_id, self.safe.address, reason=refusal)
        return self._last_approved(refusal)

    def _last_approved(self, refusal: str) -> LoadedPolicy:
        """The newest recorded approval the Safe still accepts, else refuse with ``refusal``."""
        for approval in self.store.policy_approvals(self.safe.chain_id, self.safe.address):
            ok, _ = self.still_valid(approval)
            if ok:
                return LoadedPolicy(
                    approval.content, bytes(HexBytes(approval.policy_hash)),
                    _parse(approval.content), False,
                    warning=refusal + f"; running the last approved policy {approval.policy_hash}",
                )
        raise PolicyNotApproved(refusal)


# -------------------------------------------------------------------------------- overrides
OVERRIDE_KINDS: dict[str, tuple[str, ...]] = dict(vocab.OVERRIDE_PARAMS)  # kind -> required params
# Tightening: more protection or less risk. Only these may pass with one owner, and only
# when the approved policy says so. Everything else is loosening and needs the threshold.
TIGHTENING_KINDS = vocab.TIGHTENING_KINDS
# The layers an override may name when no approved policy is at hand; with one, exactly the
# layers it declares (LoadedPolicy.layers).
LAYERS = vocab.DEFAULT_LAYERS

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


def validate_override(kind: str, params: dict[str, Any], reason: str,
                      layers: Collection[str] = LAYERS) -> None:
    """Kind, params and reason of an override; ``layers`` are those the policy declares."""
    if kind not in OVERRIDE_KINDS:
        raise OverrideRefused(f"unknown override kind {kind!r} (one of {', '.join(OVERRIDE_KINDS)})")
    missing = [p for p in OVERRIDE_KINDS[kind] if p not in params]
    if missing:
        raise OverrideRefused(f"{kind} needs params: {', '.join(missing)}")
    if "layer" in params and params["layer"] not in layers:
        raise OverrideRefused(f"layer must be one of {', '.join(layers)}")
    if not reason.strip():
        raise OverrideRefused("an override needs a reason")


def override_typed_data(
    kind: str, params: dict[str, Any], reason: str, chain_id: int, safe: str, nonce: int, expiry: int,
    layers: Collection[str] = LAYERS,
) -> dict[str, Any]:
    validate_override(kind, params, reason, layers)
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


def proposal_from_typed_data(typed_data: dict[str, Any], layers: Collection[str] = LAYERS) -> OverrideProposal:
    """Recompute every hash from the fields (never trust a hash written in a file)."""
    try:
        return _proposal_from_typed_data(typed_data, layers)
    except KeyError as exc:
        raise OverrideRefused(f"override typed data: missing field {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise OverrideRefused(f"override typed data: malformed value ({exc})") from exc


def _proposal_from_typed_data(typed_data: dict[str, Any], layers: Collection[str]) -> OverrideProposal:
    if not isinstance(typed_data, dict) or typed_data.get("types") != OVERRIDE_TYPES or typed_data.get("primaryType") != "Override":
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
    validate_override(m["kind"], params, m["reason"], layers)
    ohash = safe_mod.typed_data_hash(typed_data)
    return OverrideProposal(
        typed_data, ohash, safe_mod.safe_message_hash(int(m["chainId"]), str(m["safe"]), ohash)
    )


def propose_override(
    kind: str, params: dict[str, Any], reason: str, chain_id: int, safe: str, nonce: int, expiry: int,
    layers: Collection[str] = LAYERS,
) -> OverrideProposal:
    return proposal_from_typed_data(
        override_typed_data(kind, params, reason, chain_id, safe, nonce, expiry, layers), layers)


def sign_override(proposal: OverrideProposal, owner: LocalAccount) -> dict[str, Any]:
    m = proposal.message
    sig = safe_mod.sign_safe_message(owner.key.hex(), int(m["chainId"]), str(m["safe"]), proposal.override_hash)
    return {**proposal.to_json(), "type": "lphedge.override-signature", "signer": owner.address, "signature": "0x" + sig.hex()}


def read_override_files(
    docs: list[dict[str, Any]], layers: Collection[str] = LAYERS,
) -> tuple[OverrideProposal, list[tuple[str, bytes]]]:
    """The one proposal all files agree on, and the (claimed signer, signature) pairs.
    A file missing a field or holding a malformed value is refused, naming what is wrong."""
    proposals = {}
    sigs: list[tuple[str, bytes]] = []
    for i, doc in enumerate(docs, 1):
        try:
            if not isinstance(doc, dict) or doc.get("type") not in ("lphedge.override", "lphedge.override-signature"):
                kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
                raise OverrideRefused(f"not an override file (type {kind!r})")
            prop = proposal_from_typed_data(doc["typed_data"], layers)
            claimed = doc.get("override_hash")
            if claimed and bytes(HexBytes(claimed)) != prop.override_hash:
                raise OverrideRefused(f"file claims hash {claimed} but its fields hash to 0x{prop.override_hash.hex()}")
            if doc["type"] == "lphedge.override-signature":
                signer = doc.get("signer") or ""
                sigs.append((to_checksum_address(signer) if signer else "", bytes(HexBytes(doc["signature"]))))
        except KeyError as exc:
            raise OverrideRefused(f"override file {i}: missing field {exc}") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise OverrideRefused(f"override file {i}: malformed value ({exc})") from exc
        proposals[prop.override_hash] = prop
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

    def __init__(self, safe: SafeReads, store: AuditStore, governance: policy_file.Governance,
                 layers: tuple[str, ...] = LAYERS) -> None:
        self.safe = safe
        self.store = store
        self.governance = governance
        self.layers = layers

    def _refuse(self, proposal: OverrideProposal, reason: str, actor: str = "") -> NoReturn:
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
            proposal, sigs = read_override_files(docs, self.layers)
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
        if expiry > now + int(self.governance.override_max_ttl_hours * 3600):
            self._refuse(proposal, f"expiry {expiry} further than {self.governance.override_max_ttl_hours} h ahead")

        owners = set(self.safe.owners())
        threshold = self.safe.threshold()
        pairs: dict[str, bytes] = {}
        for claimed, sig in sigs:
            try:
                signer = safe_mod.recover_signer(proposal.safe_message_hash, sig)
            except safe_mod.SafeError as exc:
                self._refuse(proposal, f"bad signature: {exc}", actor=claimed)
            if claimed and claimed != signer:
                self._refuse(proposal, f"signature claimed by {claimed} was made by {signer}", actor=signer)
            if signer in pairs:
                self._refuse(proposal, f"duplicate signer {signer}", actor=signer)
            if signer not in owners:
                self._refuse(proposal, f"non-owner signer {signer} (not a current owner of the Safe)", actor=signer)
            pairs[signer] = sig
            self.store.record("signature", "override", ohash, self.safe.chain_id, self.safe.address, actor=signer)
        tightening = m["kind"] in TIGHTENING_KINDS
        required = 1 if tightening and self.governance.single_owner_may_tighten else threshold
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
