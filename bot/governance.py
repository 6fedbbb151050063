"""Governance workflow: approved policy, threshold-signed overrides, (pre-flight checks live in bot.preflight).

No single person can override the hedge. The Safe's owners decide, checked by the Safe
itself on-chain; the bot's key is not an owner. Every proposal, signature, verification,
refusal and application lands in the audit table (bot.audit_store).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from adapters.evm import safe as safe_mod
from adapters.evm.safe import SafeReads
from bot.audit_store import AlreadyApplied, AuditStore, OverrideRecord, PolicyApproval
from policies import overrides as override_rules
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
    from_file: bool  # False: the file was unapproved and this is the policy in force
    warning: str = ""

    @property
    def governance(self) -> policy_file.Governance:
        return self.policy.governance

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.policy.layers)

    @property
    def sequence(self) -> int:
        return self.policy.governance.sequence


def _wall_clock() -> int:
    return int(time.time())


def pin_mismatch(gov: policy_file.Governance, safe: SafeReads) -> str:
    """Where the Safe on chain (at the pinned block) differs from what the approved policy
    pins: owners, threshold, modules, guard. Empty when it agrees (or nothing is pinned)."""
    problems = []
    if gov.owners:
        chain = sorted(o.lower() for o in safe.owners())
        if chain != list(gov.owners):
            problems.append(f"owners on chain {', '.join(chain)} differ from the pinned {', '.join(gov.owners)}")
    if gov.threshold is not None:
        t = safe.threshold()
        if t != gov.threshold:
            problems.append(f"threshold on chain {t} differs from the pinned {gov.threshold}")
    if gov.modules is not None or gov.guard is not None:
        inv = safe.invariants()
        if gov.modules is not None:
            mods = sorted(m.lower() for m in inv.modules)
            if mods != list(gov.modules):
                problems.append(f"modules on chain [{', '.join(mods)}] differ from the pinned [{', '.join(gov.modules)}]")
        if gov.guard is not None and inv.guard.lower() != gov.guard:
            problems.append(f"guard on chain {inv.guard.lower()} differs from the pinned {gov.guard}")
    return "; ".join(problems)


def _authority_problem(gov: policy_file.Governance, signers: Collection[str], what: str,
                       *, all_pinned: bool = True, required: int | None = None) -> str:
    """Signers (recovered locally, never taken from the RPC) must be pinned owners, at least
    ``required`` (default: the pinned threshold) of them: a forging node cannot make a
    stranger's signature count. ``all_pinned=False``: strangers allowed, only the count of
    pinned owners among the signers matters (the policy in force vouching for its successor)."""
    if not gov.owners or gov.threshold is None:
        return ""
    pinned = set(gov.owners)
    strangers = sorted(s for s in signers if s.lower() not in pinned)
    if all_pinned and strangers:
        return f"{what}: signer {', '.join(strangers)} is not a pinned owner"
    need = gov.threshold if required is None else required
    have = sum(1 for s in signers if s.lower() in pinned)
    if have < need:
        return f"{what}: {have} of the pinned owners signed, {need} required"
    return ""


class PolicyGate:
    """The bot runs only a policy whose hash the Safe approved (EIP-1271, current owners),
    whose sequence is the highest approved, not expired, and whose pins match the chain."""

    def __init__(self, safe: SafeReads, store: AuditStore, clock: Callable[[], int] = _wall_clock) -> None:
        self.safe = safe
        self.store = store
        self.clock = clock

    def _collect(self, phash: bytes, data_hash: bytes, signatures: Iterable[dict[str, Any]]) -> tuple[bytes, list[str]]:
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
        return safe_mod.pack_signatures(list(pairs.items())), list(pairs)

    def _highest(self) -> PolicyApproval | None:
        """The recorded approval with the highest sequence: the pin authority, whether or
        not its signatures still verify (a lower sequence never comes back)."""
        rows = self.store.policy_approvals(self.safe.chain_id, self.safe.address)
        return rows[0] if rows else None

    def approve(self, content: bytes, signatures: list[dict[str, Any]], source: str = "") -> PolicyApproval:
        """Verify signatures on-chain; record the approval (and the bytes) or refuse."""
        policy = _parse(content)
        phash = bytes(policy_file.policy_hash(policy))
        now = self.clock()
        req = approval_request(phash, self.safe.chain_id, self.safe.address)
        try:
            with self.safe.pinned_reads(now):
                return self._approve(content, policy, phash, req, signatures, source, now)
        except safe_mod.UntrustedRpc as exc:
            self._refuse(phash, str(exc))
        raise AssertionError("unreachable")  # pragma: no cover

    def _approve(self, content: bytes, policy: policy_file.Policy, phash: bytes, req: ApprovalRequest,
                 signatures: list[dict[str, Any]], source: str, now: int) -> PolicyApproval:
        gov = policy.governance
        onchain = self.safe.get_message_hash(req.data_hash)
        if onchain != req.safe_message_hash:
            self._refuse(phash, "local Safe message hash differs from the Safe's getMessageHash")
        for item in signatures:
            claimed = item.get("policy_hash")
            if claimed and str(claimed).lower() != "0x" + phash.hex():
                self._refuse(phash, f"signature is for policy {claimed}, not 0x{phash.hex()}")
        packed, signers = self._collect(phash, req.data_hash, signatures)
        if not gov.owners or gov.threshold is None:
            self._refuse(phash, "policy [governance] must pin the Safe's owners and threshold")
        if gov.approval_expiry is not None and gov.approval_expiry <= now:
            self._refuse(phash, f"policy approval_expiry {gov.approval_expiry} has passed (now {now})")
        top = self._highest()
        if top is not None:
            if gov.sequence < top.sequence:
                self._refuse(phash, f"sequence {gov.sequence} is lower than sequence {top.sequence} "
                                    f"already approved (policy {top.policy_hash}): an older policy cannot come back")
            if gov.sequence == top.sequence and top.policy_hash != "0x" + phash.hex():
                self._refuse(phash, f"sequence {gov.sequence} is already used by approved policy "
                                    f"{top.policy_hash}: a new policy needs a higher sequence")
        check = self.safe.is_valid_signature(req.data_hash, packed)
        self.store.record(
            "verification", "policy", phash, self.safe.chain_id, self.safe.address,
            reason=check.reason, detail={"signatures": len(signatures), "valid": check.valid},
        )
        if not check.valid:
            self._refuse(phash, f"policy 0x{phash.hex()} not approved by the Safe: {check.reason}")
        # The Safe's word comes from the RPC: also checked locally against the pins.
        mismatch = pin_mismatch(gov, self.safe)
        if mismatch:
            self._refuse(phash, f"policy 0x{phash.hex()} pins a Safe the chain does not show: {mismatch}")
        problem = _authority_problem(gov, signers, "this policy")
        if not problem and top is not None:  # the policy in force decides who may replace it
            problem = _authority_problem(_parse(top.content).governance, signers,
                                         f"policy in force {top.policy_hash}", all_pinned=False)
        if problem:
            self._refuse(phash, problem)
        approval = self.store.save_policy_approval(
            PolicyApproval(
                policy_hash="0x" + phash.hex(), chain_id=self.safe.chain_id, safe=self.safe.address,
                signatures="0x" + packed.hex(), content=content, source_path=source, sequence=gov.sequence,
            )
        )
        self.store.record("approval", "policy", phash, self.safe.chain_id, self.safe.address,
                          detail={"source": source, "sequence": gov.sequence})
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

    def _not_in_force(self, policy: policy_file.Policy, phash: bytes, now: int) -> str:
        """Why an approved policy may not run now: expired, superseded, pins not on chain."""
        gov = policy.governance
        if gov.approval_expiry is not None and gov.approval_expiry <= now:
            return f"its approval expired at {gov.approval_expiry} (now {now})"
        top = self._highest()
        if top is not None and (gov.sequence < top.sequence or
                                (gov.sequence == top.sequence and top.policy_hash != "0x" + phash.hex())):
            return f"sequence {gov.sequence} is superseded by sequence {top.sequence} (policy {top.policy_hash})"
        mismatch = pin_mismatch(gov, self.safe)
        return f"the Safe differs from the policy's pins: {mismatch}" if mismatch else ""

    def load(self, path: Path) -> LoadedPolicy:
        """The policy to run: the file if approved, else the last approved one, else refuse."""
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise PolicyNotApproved(f"cannot read policy file {path}: {exc.strerror}") from exc
        return self.load_bytes(content, label=f"policy file {path}")

    def load_bytes(self, content: bytes, label: str = "policy") -> LoadedPolicy:
        now = self.clock()
        try:
            with self.safe.pinned_reads(now):
                return self._load_bytes(content, label, now)
        except safe_mod.UntrustedRpc as exc:
            self.store.record("refusal", "policy", keccak(content), self.safe.chain_id, self.safe.address,
                              reason=str(exc))
            raise PolicyNotApproved(f"{label}: {exc}") from None

    def _load_bytes(self, content: bytes, label: str, now: int) -> LoadedPolicy:
        try:
            policy = _parse(content)  # parsed once: the hash and LoadedPolicy.policy
        except PolicyNotApproved as exc:  # an edited file that no longer parses
            refusal = f"{label} is refused: {exc}"
            self.store.record("refusal", "policy", keccak(content), self.safe.chain_id, self.safe.address, reason=refusal)
            return self._in_force(refusal, now)
        phash = bytes(policy_file.policy_hash(policy))
        reason = "no approval recorded"
        approved = False
        for approval in self.store.policy_approvals(self.safe.chain_id, self.safe.address):
            if approval.policy_hash == "0x" + phash.hex():
                approved, reason = self.still_valid(approval)
                break
        if not approved:
            # The Safe may also have signed the message on-chain (SignMessageLib): empty signature.
            req = approval_request(phash, self.safe.chain_id, self.safe.address)
            if self.safe.is_valid_signature(req.data_hash, b"").valid:
                approved = True
                top = self._highest()
                if top is None or policy.governance.sequence > top.sequence:  # seen: record it
                    self.store.save_policy_approval(PolicyApproval(
                        policy_hash="0x" + phash.hex(), chain_id=self.safe.chain_id, safe=self.safe.address,
                        signatures="0x", content=content, source_path="(signed on-chain)",
                        sequence=policy.governance.sequence))
        if approved:
            why = self._not_in_force(policy, phash, now)
            if not why:
                return LoadedPolicy(content, phash, policy, True)
            refusal = f"{label} (hash 0x{phash.hex()}) is approved but not in force: {why}"
        else:
            refusal = f"{label} (hash 0x{phash.hex()}) is not approved by the Safe: {reason}"
        self.store.record("refusal", "policy", phash, self.safe.chain_id, self.safe.address, reason=refusal)
        return self._in_force(refusal, now)

    def in_force(self) -> LoadedPolicy:
        """The approved policy in force (highest sequence, still valid, unexpired, pins on
        chain), for commands that need the governance rules: never a path on the command line."""
        now = self.clock()
        try:
            with self.safe.pinned_reads(now):
                return self._in_force("no approved policy in force", now)
        except safe_mod.UntrustedRpc as exc:
            raise PolicyNotApproved(str(exc)) from None

    def _in_force(self, refusal: str, now: int) -> LoadedPolicy:
        """The highest-sequence approval, if the Safe still accepts it; else refuse with
        ``refusal``. Never an approval of a lower sequence: an old policy cannot come back."""
        top = self._highest()
        if top is None:
            raise PolicyNotApproved(refusal)
        ok, why = self.still_valid(top)
        if ok:
            policy = _parse(top.content)
            why = self._not_in_force(policy, bytes(HexBytes(top.policy_hash)), now)
            if not why:
                return LoadedPolicy(
                    top.content, bytes(HexBytes(top.policy_hash)), policy, False,
                    warning=refusal + f"; running the last approved policy {top.policy_hash} "
                                      f"(sequence {top.sequence})",
                )
        raise PolicyNotApproved(f"{refusal}; the policy in force {top.policy_hash} "
                                f"(sequence {top.sequence}) cannot run either: {why}")


# -------------------------------------------------------------------------------- overrides
CANCEL = "cancel_override"
# kind -> required params. ``cancel_override`` {nonce} retires an applied override; it is
# loosening (it can lift a pause), so it always needs the threshold.
OVERRIDE_KINDS: dict[str, tuple[str, ...]] = {**vocab.OVERRIDE_PARAMS, CANCEL: ("nonce",)}
# Tightening: more protection or less risk. Only these may pass with one owner, and only
# when the approved policy says so. Everything else is loosening and needs the threshold.
TIGHTENING_KINDS = vocab.TIGHTENING_KINDS
# The layers an override may name when no approved policy is at hand; with one, exactly the
# layers it declares (LoadedPolicy.layers).
LAYERS = vocab.DEFAULT_LAYERS
# The policy hash an override is bound to when no approved policy is in force.
NO_POLICY = b"\0" * 32
MAX_REASON = 500

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
        {"name": "policyHash", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
    ],
}


def canonical_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def _is_fraction(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return False
    return d.is_finite() and Decimal(0) <= d <= Decimal(1)


def validate_override(kind: str, params: dict[str, Any], reason: str,
                      layers: Collection[str] = LAYERS) -> None:
    """Kind, params and reason of an override; ``layers`` are those the policy declares.
    Each kind has a strict schema: exactly its params, each of its type (issue 9, finding 8)."""
    if kind not in OVERRIDE_KINDS:
        raise OverrideRefused(f"unknown override kind {kind!r} (one of {', '.join(OVERRIDE_KINDS)})")
    if not isinstance(params, dict):
        raise OverrideRefused(f"{kind}: params must be an object")
    missing = [p for p in OVERRIDE_KINDS[kind] if p not in params]
    if missing:
        raise OverrideRefused(f"{kind} needs params: {', '.join(missing)}")
    extra = sorted(p for p in params if p not in OVERRIDE_KINDS[kind])
    if extra:
        allowed = ", ".join(OVERRIDE_KINDS[kind]) or "none"
        raise OverrideRefused(f"{kind} takes no param {', '.join(extra)} (allowed: {allowed})")
    if "layer" in params and params["layer"] not in layers:
        raise OverrideRefused(f"layer must be one of {', '.join(layers)}")
    if kind == "change_cap":
        if params["cap"] not in override_rules.CAPS:
            raise OverrideRefused(f"change_cap: cap must be one of {', '.join(sorted(override_rules.CAPS))}")
        if not _is_fraction(params["value"]):
            raise OverrideRefused(f"change_cap: value {params['value']!r} is not a fraction in [0, 1]")
    if kind == CANCEL:
        n = params["nonce"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise OverrideRefused(f"{CANCEL}: nonce must be a non-negative integer, got {n!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise OverrideRefused("an override needs a reason")
    if len(reason) > MAX_REASON:
        raise OverrideRefused(f"reason longer than {MAX_REASON} characters")


def override_typed_data(
    kind: str, params: dict[str, Any], reason: str, chain_id: int, safe: str, nonce: int, expiry: int,
    layers: Collection[str] = LAYERS, *, policy_hash: bytes = NO_POLICY,
) -> dict[str, Any]:
    validate_override(kind, params, reason, layers)
    safe = to_checksum_address(safe)
    return {
        "types": OVERRIDE_TYPES,
        "primaryType": "Override",
        "domain": {"name": "lphedge", "version": "1", "chainId": chain_id, "verifyingContract": safe},
        "message": {
            "kind": kind, "params": canonical_params(params), "reason": reason,
            "chainId": chain_id, "safe": safe, "policyHash": "0x" + bytes(policy_hash).hex(),
            "nonce": nonce, "expiry": expiry,
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

    @property
    def policy_hash(self) -> bytes:
        return bytes(HexBytes(self.message["policyHash"]))

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


def _uint(m: dict[str, Any], name: str) -> int:
    """A uint256 field as a JSON integer: a hex or decimal string, a float or a bool is refused
    (the EIP-712 encoder would accept some of them and hash what the owner did not read)."""
    v = m[name]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**256:
        raise OverrideRefused(f"override typed data: {name} must be a non-negative integer, got {v!r}")
    return v


def _proposal_from_typed_data(typed_data: dict[str, Any], layers: Collection[str]) -> OverrideProposal:
    if not isinstance(typed_data, dict) or typed_data.get("types") != OVERRIDE_TYPES or typed_data.get("primaryType") != "Override":
        raise OverrideRefused("not an lphedge Override typed-data document")
    m, d = typed_data["message"], typed_data["domain"]
    if d.get("name") != "lphedge" or d.get("version") != "1":
        raise OverrideRefused("override domain is not lphedge v1")
    for name in ("chainId", "nonce", "expiry"):
        _uint(m, name)
    ph = m["policyHash"]
    if not isinstance(ph, str) or len(ph) != 66 or not ph.startswith("0x") or ph != ph.lower():
        raise OverrideRefused(f"override typed data: policyHash must be 0x + 64 lower-case hex digits, got {ph!r}")
    bytes.fromhex(ph[2:])
    if _uint(m, "chainId") != _uint(d, "chainId") or to_checksum_address(m["safe"]) != to_checksum_address(d["verifyingContract"]):
        raise OverrideRefused("override message and domain disagree on chain or Safe")
    try:
        params = json.loads(m["params"])
    except (TypeError, json.JSONDecodeError) as exc:
        raise OverrideRefused("override params are not JSON") from exc
    if not isinstance(params, dict) or canonical_params(params) != m["params"]:
        raise OverrideRefused("override params are not in canonical JSON form")
    validate_override(m["kind"], params, m["reason"], layers)
    ohash = safe_mod.typed_data_hash(typed_data)
    return OverrideProposal(
        typed_data, ohash, safe_mod.safe_message_hash(int(m["chainId"]), str(m["safe"]), ohash)
    )


def propose_override(
    kind: str, params: dict[str, Any], reason: str, chain_id: int, safe: str, nonce: int, expiry: int,
    layers: Collection[str] = LAYERS, *, policy_hash: bytes = NO_POLICY,
) -> OverrideProposal:
    return proposal_from_typed_data(
        override_typed_data(kind, params, reason, chain_id, safe, nonce, expiry, layers,
                            policy_hash=policy_hash), layers)


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
    """Verify an override against the Safe's current owners and threshold (and the approved
    policy's pins); apply it once, in nonce order, bound to the policy in force."""

    def __init__(self, safe: SafeReads, store: AuditStore, governance: policy_file.Governance,
                 layers: tuple[str, ...] = LAYERS, *, policy_hash: bytes = NO_POLICY) -> None:
        self.safe = safe
        self.store = store
        self.governance = governance
        self.layers = layers
        self.policy_hash = bytes(policy_hash)
        self.last_check = ""  # the Safe's verdict on the last signatures checked

    @classmethod
    def for_policy(cls, safe: SafeReads, store: AuditStore, loaded: LoadedPolicy | None) -> OverrideGate:
        """The gate under the approved policy in force (its rules, layers and hash); without
        one, the strict defaults and overrides bound to no policy."""
        if loaded is None:
            return cls(safe, store, STRICT)
        return cls(safe, store, loaded.governance, loaded.layers, policy_hash=loaded.policy_hash)

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

    def required(self, kind: str, threshold: int) -> int:
        tightening = kind in TIGHTENING_KINDS
        return 1 if tightening and self.governance.single_owner_may_tighten else threshold

    def verify_signers(self, ohash: bytes, kind: str, signers: Collection[str], packed: bytes) -> tuple[int, str]:
        """(required, problem): the signers against the pinned owners (local), the chain's
        owners and threshold, then the Safe's own check. Inside a pinned-block read."""
        mismatch = pin_mismatch(self.governance, self.safe)
        if mismatch:
            return 0, f"the Safe differs from the approved policy's pins: {mismatch}"
        self.last_check = ""
        owners = set(self.safe.owners())
        threshold = self.safe.threshold()
        if self.governance.threshold is not None:
            threshold = max(threshold, self.governance.threshold)
        required = self.required(kind, threshold)
        for signer in signers:
            if signer not in owners:
                return required, f"non-owner signer {signer} (not a current owner of the Safe)"
        if len(signers) < required:
            what = "tightening" if kind in TIGHTENING_KINDS else "loosening"
            return required, f"under threshold: {len(signers)} of {required} owner signature(s) for {what} override {kind}"
        problem = _authority_problem(self.governance, signers, "override", required=required)
        if problem:
            return required, problem
        if required == self.safe.threshold():
            check = self.safe.is_valid_signature(ohash, packed)
        else:
            check = self.safe.check_n_signatures(ohash, packed, required)
        self.last_check = check.reason
        if not check.valid:
            return required, f"the Safe rejected the signatures: {check.reason}"
        return required, ""

    def apply(self, docs: list[dict[str, Any]], now: int) -> AppliedOverride:
        try:
            proposal, sigs = read_override_files(docs, self.layers)
        except OverrideRefused as exc:
            self.store.record("refusal", "override", b"", self.safe.chain_id, self.safe.address, reason=str(exc))
            raise
        try:
            with self.safe.pinned_reads(now):
                return self._apply(proposal, sigs, now)
        except safe_mod.UntrustedRpc as exc:
            self._refuse(proposal, str(exc))

    def _apply(self, proposal: OverrideProposal, sigs: list[tuple[str, bytes]], now: int) -> AppliedOverride:
        m = proposal.message
        ohash = proposal.override_hash
        chain_id, safe = self.safe.chain_id, self.safe.address
        if int(m["chainId"]) != chain_id:
            self._refuse(proposal, f"wrong chain: override is for chain {m['chainId']}, this is chain {chain_id}")
        if to_checksum_address(m["safe"]) != safe:
            self._refuse(proposal, f"wrong Safe: override is for {m['safe']}, this bot serves {safe}")
        if proposal.policy_hash != self.policy_hash:
            self._refuse(proposal, f"wrong policy: override is bound to policy 0x{proposal.policy_hash.hex()}, "
                                   f"the policy in force is 0x{self.policy_hash.hex()}")
        if self.store.override_by_hash(ohash) is not None:
            self._refuse(proposal, f"replayed: override 0x{ohash.hex()} was already applied")
        nonce = int(m["nonce"])
        if self.store.override_by_nonce(chain_id, safe, nonce) is not None:
            self._refuse(proposal, f"replayed: nonce {nonce} was already used by another override")
        last = self.store.next_override_nonce(chain_id, safe) - 1
        if nonce <= last:
            self._refuse(proposal, f"out of order: nonce {nonce} is not above the last applied nonce {last} "
                                   f"(nonces strictly increase per Safe)")
        expiry = int(m["expiry"])
        if expiry <= now:
            self._refuse(proposal, f"expired at {expiry} (now {now})")
        if expiry > now + int(self.governance.override_max_ttl_hours * 3600):
            self._refuse(proposal, f"expiry {expiry} further than {self.governance.override_max_ttl_hours} h ahead")

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
            pairs[signer] = sig
        packed = safe_mod.pack_signatures(list(pairs.items()))
        required, problem = self.verify_signers(ohash, str(m["kind"]), list(pairs), packed)
        for signer in pairs:
            self.store.record("signature", "override", ohash, chain_id, safe, actor=signer)
        self.store.record(
            "verification", "override", ohash, chain_id, safe,
            reason=problem or self.last_check, detail={"signers": sorted(pairs), "required": required, "valid": not problem},
        )
        if problem:
            actor = problem.split("signer ")[1].split(" ")[0] if "non-owner signer" in problem else ""
            self._refuse(proposal, problem, actor=actor)
        if m["kind"] == CANCEL:
            target_nonce = int(json.loads(m["params"])["nonce"])
            target = self.store.override_by_nonce(chain_id, safe, target_nonce)
            if target is None or target.kind == CANCEL or target.policy_hash != "0x" + self.policy_hash.hex():
                self._refuse(proposal, f"cancel: no applied override with nonce {target_nonce} under the policy in force")
        record = OverrideRecord(
            override_hash="0x" + ohash.hex(), chain_id=chain_id, safe=safe,
            nonce=nonce, kind=str(m["kind"]), params=str(m["params"]), reason=str(m["reason"]),
            expiry=expiry, signers=",".join(sorted(pairs)), policy_hash="0x" + self.policy_hash.hex(),
            signatures="0x" + packed.hex(),
        )
        try:
            self.store.apply_override(record)
        except AlreadyApplied as exc:
            self._refuse(proposal, f"replayed: {exc}")
        self.store.record(
            "application", "override", ohash, chain_id, safe,
            detail={"kind": m["kind"], "params": m["params"], "signers": sorted(pairs)},
        )
        return AppliedOverride(record, sorted(pairs), required)

    def in_force(self, now: int) -> list[OverrideRecord]:
        """The overrides to hand to decide: applied under the policy in force, not expired, not
        cancelled, and each re-verified now (pinned owners, the Safe's own signature check at
        a pinned block): an override whose signers are no longer owners does not count."""
        with self.safe.pinned_reads(now):
            rows = self.store.active_overrides(self.safe.chain_id, self.safe.address, now,
                                               policy_hash="0x" + self.policy_hash.hex())
            out = []
            for r in rows:
                _, problem = self.verify_signers(bytes(HexBytes(r.override_hash)), r.kind,
                                                 [s for s in r.signers.split(",") if s],
                                                 bytes(HexBytes(r.signatures or "0x")))
                if problem:
                    self.store.record("refusal", "override", r.override_hash, self.safe.chain_id,
                                      self.safe.address, reason=f"no longer in force: {problem}")
                    continue
                out.append(r)
            return out
