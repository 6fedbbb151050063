"""Governance audit trail: every proposal, signature, verification, refusal and application.

Three tables in the bot's database (SQLite by default):
- ``governance_audit``: append-only events, one row per thing that happened;
- ``governance_override``: overrides applied, unique per (chain, Safe, nonce) and per hash,
  so an override can never be applied twice (replay) even by two processes at once;
- ``governance_policy_approval``: policies whose hash the Safe approved, with the exact
  bytes, so the bot can keep running the last approved policy when the file is edited.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.db import open_engine, session_scope
from bot.db.models import AuditEvent, OverrideRecord, PolicyApproval
from bot.db.types import utcnow as _now
from policies.errors import Refused

__all__ = ["EVENTS", "AlreadyApplied", "AuditEvent", "AuditStore", "OverrideRecord",
           "PolicyApproval"]

# An override that cancels an applied one ({"nonce": N}); see bot.governance.
CANCEL = "cancel_override"
EVENTS = ("proposal", "signature", "verification", "refusal", "application", "approval")


class AlreadyApplied(Refused):
    """The override's hash or nonce was applied before."""


class AuditStore:
    """Repository of the audit trail, applied overrides and policy approvals. Like every
    store: built on an engine from ``bot.db.open_engine`` (schema migrated to head) or a URL
    it opens so; every unit of work is one ``bot.db.session_scope``."""

    def __init__(self, db: Engine | str) -> None:
        self.engine = open_engine(db) if isinstance(db, str) else db

    # -- events -----------------------------------------------------------------------------
    def record(
        self,
        event: str,
        subject: str,
        subject_hash: bytes | str,
        chain_id: int,
        safe: str,
        *,
        actor: str = "",
        reason: str = "",
        detail: dict[str, Any] | None = None,
    ) -> AuditEvent:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        row = AuditEvent(
            event=event,
            subject=subject,
            subject_hash=_hex(subject_hash),
            chain_id=chain_id,
            safe=safe,
            actor=actor,
            reason=reason,
            detail=json.dumps(detail or {}, sort_keys=True, default=str),
        )
        with session_scope(self.engine) as session:
            session.add(row)
        return row

    def events(
        self, *, subject_hash: bytes | str | None = None, event: str | None = None
    ) -> Sequence[AuditEvent]:
        stmt = select(AuditEvent).order_by(col(AuditEvent.id))
        if subject_hash is not None:
            stmt = stmt.where(AuditEvent.subject_hash == _hex(subject_hash))
        if event is not None:
            stmt = stmt.where(AuditEvent.event == event)
        with session_scope(self.engine) as session:
            return list(session.exec(stmt).all())

    # -- overrides ----------------------------------------------------------------------------
    def override_by_hash(self, override_hash: bytes | str) -> OverrideRecord | None:
        with session_scope(self.engine) as session:
            return session.exec(
                select(OverrideRecord).where(OverrideRecord.override_hash == _hex(override_hash))
            ).first()

    def override_by_nonce(self, chain_id: int, safe: str, nonce: int) -> OverrideRecord | None:
        with session_scope(self.engine) as session:
            return session.exec(
                select(OverrideRecord).where(
                    OverrideRecord.chain_id == chain_id,
                    OverrideRecord.safe == safe,
                    OverrideRecord.nonce == nonce,
                )
            ).first()

    def next_override_nonce(self, chain_id: int, safe: str) -> int:
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(OverrideRecord.nonce).where(
                    OverrideRecord.chain_id == chain_id, OverrideRecord.safe == safe
                )
            ).all()
        return max(rows, default=-1) + 1

    def apply_override(self, record: OverrideRecord) -> OverrideRecord:
        """Insert atomically; the unique constraints make a second application fail."""
        try:
            with session_scope(self.engine) as session:
                session.add(record)
        except IntegrityError as exc:
            raise AlreadyApplied(
                f"override {record.override_hash} or nonce {record.nonce} already applied"
            ) from exc
        return record

    def active_overrides(self, chain_id: int, safe: str, now: int,
                         policy_hash: str | None = None) -> list[OverrideRecord]:
        """Applied overrides not yet expired at unix time ``now``, in nonce order, without
        cancellations (``cancel_override`` records and the overrides they cancelled);
        with ``policy_hash``, only those bound to that policy (a newer approval retires
        the others)."""
        stmt = select(OverrideRecord).where(
            OverrideRecord.chain_id == chain_id, OverrideRecord.safe == safe,
        )
        if policy_hash is not None:
            stmt = stmt.where(OverrideRecord.policy_hash == _hex(policy_hash))
        with session_scope(self.engine) as session:
            rows = list(session.exec(stmt.order_by(col(OverrideRecord.nonce))).all())
        cancelled = {int(json.loads(r.params)["nonce"]) for r in rows if r.kind == CANCEL}
        return [r for r in rows if r.expiry > now and r.kind != CANCEL and r.nonce not in cancelled]

    # -- policy approvals -----------------------------------------------------------------
    def save_policy_approval(self, approval: PolicyApproval) -> PolicyApproval:
        with session_scope(self.engine) as session:
            existing = session.exec(
                select(PolicyApproval).where(
                    PolicyApproval.chain_id == approval.chain_id,
                    PolicyApproval.safe == approval.safe,
                    PolicyApproval.policy_hash == approval.policy_hash,
                )
            ).first()
            if existing is not None:
                existing.signatures = approval.signatures
                existing.content = approval.content
                existing.source_path = approval.source_path
                existing.approved_at = _now()
                existing.sequence = approval.sequence
                approval = existing
            session.add(approval)
        return approval

    def policy_approvals(self, chain_id: int, safe: str) -> list[PolicyApproval]:
        """Approvals for this Safe, highest sequence first (then newest)."""
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(PolicyApproval)
                .where(PolicyApproval.chain_id == chain_id, PolicyApproval.safe == safe)
                .order_by(col(PolicyApproval.sequence).desc(), col(PolicyApproval.approved_at).desc(),
                          col(PolicyApproval.id).desc())
            ).all()
        return list(rows)


def _hex(value: bytes | str) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value.lower() if value.startswith("0x") else "0x" + value.lower()
