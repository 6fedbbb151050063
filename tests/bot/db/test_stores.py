"""The three repositories over bot.db (positions, market history, governance audit) on both
databases: exact chain integers, UTC datetimes, idempotence and the unique constraints that
make an override apply once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.audit_store import AlreadyApplied, AuditStore, OverrideRecord, PolicyApproval
from bot.db import open_engine
from bot.db.migrate import current, head
from bot.market_store import MarketStore
from bot.store import PositionSnapshot, PositionStore, WatchedPosition
from policies.errors import Refused
from policies.lp_math import PositionMetrics
from policies.types import Level, PoolState, Position, TickFeeGrowth, Token

AT = datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)
SAFE = "0x5afe00000000000000000000000000000000cafe"


@pytest.fixture
def db(db_url: str) -> Engine:
    engine = open_engine(db_url)
    assert current(engine) == head()
    return engine


def _position(token_id: int, liquidity: int) -> tuple[Position, PositionMetrics]:
    pool = PoolState("0xpool", Token("0xt0", "WETH", 18), Token("0xt1", "USDC", 6), 500, 10,
                     2**160 - 1, 887271, 2**128 - 1, 2**256 - 1, 2**255)
    pos = Position(token_id, SAFE, "0xnpm", pool, -887270, 887270, liquidity, 0, 0, 0, 0,
                   TickFeeGrowth(0, 0), TickFeeGrowth(0, 0))
    metrics = PositionMetrics(token_id, 2**255 + 1, 7, 2**200, 0, True, 3012.5, 1.0, 9.0,
                              1.5, 0.25, -0.5, 1e-9, 2.0, 3)
    return pos, metrics


def test_position_store_keeps_chain_integers_and_utc(db: Engine) -> None:
    store = PositionStore(db)
    assert store.record(1, [_position(2**256 - 1, 2**128 - 1), _position(7, 1)], at=AT) == 2
    later = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    store.record(1, [_position(7, 2)], at=later)
    with Session(db) as s:
        watched = {w.token_id: w for w in s.exec(select(WatchedPosition)).all()}
        snaps = s.exec(select(PositionSnapshot).order_by(col(PositionSnapshot.id))).all()
    assert set(watched) == {str(2**256 - 1), "7"}
    assert (watched["7"].first_seen, watched["7"].last_seen) == (AT, later)
    assert watched["7"].last_seen.tzinfo is UTC
    assert [(x.token_id, x.liquidity) for x in snaps] == [
        (str(2**256 - 1), str(2**128 - 1)), ("7", "1"), ("7", "2")]
    assert snaps[0].sqrt_price_x96 == str(2**160 - 1) and snaps[0].amount0 == str(2**255 + 1)
    assert snaps[0].fees0 == str(2**200) and snaps[0].taken_at == AT


def test_market_store_levels_and_tvl(db: Engine) -> None:
    store = MarketStore(db)
    store.save_levels({"ETH:funding": Level.CRISIS, "ETH:depeg": None}, 1000)
    store.save_levels({"ETH:funding": None}, 1600)  # unknown keeps the last known level
    assert store.load_levels() == {"ETH:funding": Level.CRISIS, "ETH:depeg": None}
    assert store.load_levels(1000 + 86401, 86400)["ETH:funding"] is None
    assert store.record_tvl("tvl:x", 10, 1.5, "chain") is True
    assert store.record_tvl("tvl:x", 10, 9.0, "chain") is False  # first sample kept
    assert store.record_tvl("tvl:x", 20, 2.5, "chain") is True
    assert store.tvl_series("tvl:x", 11) == [(20, 2.5)]
    assert store.tvl_series("tvl:x", 0) == [(10, 1.5), (20, 2.5)]


def _override(h: str, nonce: int) -> OverrideRecord:
    return OverrideRecord(override_hash=h, chain_id=1, safe=SAFE, nonce=nonce, kind="pause_layer",
                          params="{}", reason="storm", expiry=2_000_000_000, signers="0xa,0xb")


def test_audit_store_applies_an_override_once(db: Engine) -> None:
    store = AuditStore(db)
    row = store.record("proposal", "override", b"\x01\x02", 1, SAFE, detail={"n": 1})
    assert row.id is not None and row.subject_hash == "0x0102" and row.created_at.tzinfo is UTC
    applied = store.apply_override(_override("0xaa", 0))
    assert applied.id is not None and applied.applied_at.tzinfo is UTC
    for dup in (_override("0xaa", 1), _override("0xbb", 0)):  # same hash / same nonce
        with pytest.raises(AlreadyApplied) as exc:
            AuditStore(db).apply_override(dup)
        assert isinstance(exc.value, Refused)
    assert [o.override_hash for o in store.active_overrides(1, SAFE, 1_999_999_999)] == ["0xaa"]
    assert store.active_overrides(1, SAFE, 2_000_000_000) == []
    assert store.next_override_nonce(1, SAFE) == 1
    a = store.save_policy_approval(PolicyApproval(policy_hash="0xp", chain_id=1, safe=SAFE,
                                                  signatures="0x", content=b"\x00v1"))
    b = store.save_policy_approval(PolicyApproval(policy_hash="0xp", chain_id=1, safe=SAFE,
                                                  signatures="0x01", content=b"\x00v2"))
    assert a.id == b.id
    assert [(p.content, p.signatures) for p in store.policy_approvals(1, SAFE)] == [
        (b"\x00v2", "0x01")]
