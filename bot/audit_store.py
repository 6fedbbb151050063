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
from sqlmodel import Session, col, select

from bot.db import open_engine
from bot.db.migrate import upgrade
from bot.db.models import AuditEvent, OverrideRecord, PolicyApproval
from bot.db.types import utcnow as _now

__all__ = ["EVENTS", "AlreadyApplied", "AuditEvent", "AuditStore", "OverrideRecord",
           "PolicyApproval", "make_engine", "make_engine_tables"]

EVENTS = ("proposal", "signature", "verification", "refusal", "application", "approval")


class AlreadyApplied(Exception):
    """The override's hash or nonce was applied before."""


def make_engine(url: str) -> Engine:
    """The bot's engine (bot.db) with the schema migrated to head."""
    return open_engine(url)


class AuditStore:
    def __init__(self, engine_or_url: Engine | str) -> None:
        self.engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
        if not isinstance(engine_or_url, str):
            make_engine_tables(self.engine)

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
        with Session(self.engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
        return row

    def events(
        self, *, subject_hash: bytes | str | None = None, event: str | None = None
    ) -> Sequence[AuditEvent]:
        stmt = select(AuditEvent).order_by(col(AuditEvent.id))
        if subject_hash is not None:
            stmt = stmt.where(AuditEvent.subject_hash == _hex(subject_hash))
        if event is not None:
            stmt = stmt.where(AuditEvent.event == event)
        with Session(self.engine) as session:
            return list(session.exec(stmt).all())

    # -- overrides ----------------------------------------------------------------------------
    def override_by_hash(self, override_hash: bytes | str) -> OverrideRecord | None:
        with Session(self.engine) as session:
            return session.exec(
                select(OverrideRecord).where(OverrideRecord.override_hash == _hex(override_hash))
            ).first()

    def override_by_nonce(self, chain_id: int, safe: str, nonce: int) -> OverrideRecord | None:
        with Session(self.engine) as session:
            return session.exec(
                select(OverrideRecord).where(
                    OverrideRecord.chain_id == chain_id,
                    OverrideRecord.safe == safe,
                    OverrideRecord.nonce == nonce,
                )
            ).first()

    def next_override_nonce(self, chain_id: int, safe: str) -> int:
        with Session(self.engine) as session:
            rows = session.exec(
                select(OverrideRecord.nonce).where(
                    OverrideRecord.chain_id == chain_id, OverrideRecord.safe == safe
                )
            ).all()
        return max(rows, default=-1) + 1

    def apply_override(self, record: OverrideRecord) -> OverrideRecord:
        """Insert atomically; the unique constraints make a second application fail."""
        with Session(self.engine) as session:
            session.add(record)
            try:
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                raise AlreadyApplied(
                    f"override {record.override_hash} or nonce {record.nonce} already applied"
                ) from exc
            session.refresh(record)
        return record

    def active_overrides(self, chain_id: int, safe: str, now: int) -> list[OverrideRecord]:
        """Applied overrides not yet expired at unix time ``now``."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(OverrideRecord)
                .where(
                    OverrideRecord.chain_id == chain_id,
                    OverrideRecord.safe == safe,
                    OverrideRecord.expiry > now,
                )
                .order_by(col(OverrideRecord.id))
            ).all()
        return list(rows)

    # -- policy approvals -----------------------------------------------------------------
    def save_policy_approval(self, approval: PolicyApproval) -> PolicyApproval:
        with Session(self.engine) as session:
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
                approval = existing
            session.add(approval)
            session.commit()
            session.refresh(approval)
        return approval

    def policy_approvals(self, chain_id: int, safe: str) -> list[PolicyApproval]:
        """Approvals for this Safe, newest first."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(PolicyApproval)
                .where(PolicyApproval.chain_id == chain_id, PolicyApproval.safe == safe)
                .order_by(col(PolicyApproval.approved_at).desc(), col(PolicyApproval.id).desc())
            ).all()
        return list(rows)


def make_engine_tables(engine: Engine) -> None:
    """Migrate ``engine``'s database to head (every table, not only ours)."""
    upgrade(engine)


def _hex(value: bytes | str) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value.lower() if value.startswith("0x") else "0x" + value.lower()
