"""Alembic migrations on SQLite and PostgreSQL: from an empty database, from the schema the
bot made before migrations existed (rows kept exactly), down to base and back, the result
equal to bot.db.models (autogenerate finds nothing to do), a foreign table refused by name,
and several processes upgrading one database at once.

Revision-agnostic: "head" and the list of revisions come from the migration scripts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, select

from bot.db import models
from bot.db.migrate import SchemaMismatch, current, downgrade, head, revisions, upgrade
from tests.bot.db.conftest import create_legacy_schema

LEGACY_TABLES = {
    "governance_audit", "governance_override", "governance_policy_approval",
    "market_signal_state", "market_tvl_sample", "position_snapshot", "watched_position",
}
UINT256_MAX = "115792089237316195423570985008687907853269984665640564039457584007913129639935"
UINT128_MAX = "340282366920938463463374607431768211455"
MAX_SQRT_RATIO = "1461446703485210103287273052203988822378723970342"
SAFE = "0x5afe00000000000000000000000000000000cafe"
NPM = "0xc36442b4a4522e871399cd717abdd847ab11fe88"
WHEN = datetime(2026, 11, 30, 12, 34, 56, 789012, tzinfo=UTC)
LATER = datetime(2026, 12, 1, 0, 0, 0, 1, tzinfo=UTC)


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def schema_diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, models.metadata))


def version_rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


def _ts(engine: Engine, dt: datetime) -> str:
    """A datetime literal as the pre-migration code stored it: SQLite text without an
    offset (UTC), PostgreSQL timestamptz."""
    assert dt.tzinfo is UTC
    base = dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"'{base}'" if engine.dialect.name == "sqlite" else f"'{base}+00'"


def insert_legacy_rows(engine: Engine) -> None:
    """One row per table, written with plain SQL in the pre-migration layout."""
    w, later = _ts(engine, WHEN), _ts(engine, LATER)
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO watched_position (chain_id, position_manager, token_id, owner, pool, "
            "token0, token1, fee, tick_lower, tick_upper, first_seen, last_seen) VALUES (1, :npm, "
            f":tid, :safe, '0xpool', '0xtoken0', '0xtoken1', 500, -887270, 887270, {w}, {later})"),
            {"npm": NPM, "tid": UINT256_MAX, "safe": SAFE})
        c.execute(text(
            "INSERT INTO position_snapshot (taken_at, chain_id, position_manager, token_id, tick, "
            "sqrt_price_x96, liquidity, amount0, amount1, fees0, fees1, in_range, price, value, "
            f"fees_value, delta, gamma) VALUES ({w}, 1, :npm, :tid, -887272, :sqrt, :liq, :liq, "
            "'0', '1', '2', :inr, 3012.5, 123456.75, 0.125, -40.5, 0.0078125)"),
            {"npm": NPM, "tid": UINT256_MAX, "sqrt": MAX_SQRT_RATIO, "liq": UINT128_MAX,
             "inr": True})
        c.execute(text(
            "INSERT INTO governance_audit (created_at, event, subject, subject_hash, chain_id, "
            f"safe, actor, reason, detail) VALUES ({w}, 'approval', 'policy', '0xabc', 1, :safe, "
            "'0xowner', 'ok', '{\"seq\": 3}')"), {"safe": SAFE})
        c.execute(text(
            "INSERT INTO governance_override (override_hash, chain_id, safe, nonce, kind, params, "
            "reason, expiry, signers, applied_at) VALUES ('0xdef', 1, :safe, 0, 'pause_layer', "
            f"'{{}}', 'storm', 1796000000, '0xa,0xb', {later})"), {"safe": SAFE})
        c.execute(text(
            "INSERT INTO governance_policy_approval (policy_hash, chain_id, safe, signatures, "
            f"content, source_path, approved_at) VALUES ('0x123', 1, :safe, '0x', :content, "
            f"'policy.toml', {w})"), {"safe": SAFE, "content": b"\x00\xffversion = 3\n"})
        c.execute(text("INSERT INTO market_tvl_sample (key, ts, tvl_usd, source) VALUES "
                       "('tvl:USDC/USDT/100', 1796000000, 98765432.5, 'chain')"))
        c.execute(text("INSERT INTO market_signal_state (key, level, ts) VALUES "
                       "('ETH:funding', 2, 1796000000), ('ETH:depeg', NULL, 0)"))


def assert_legacy_rows(engine: Engine) -> None:
    with Session(engine) as s:
        (wp,) = s.exec(select(models.WatchedPosition)).all()
        assert (wp.id, wp.chain_id, wp.position_manager, wp.token_id, wp.owner) == (
            1, 1, NPM, UINT256_MAX, SAFE)
        assert (wp.fee, wp.tick_lower, wp.tick_upper) == (500, -887270, 887270)
        assert wp.first_seen == WHEN and wp.first_seen.tzinfo is UTC
        assert wp.last_seen == LATER and wp.last_seen.tzinfo is UTC
        (ps,) = s.exec(select(models.PositionSnapshot)).all()
        assert (ps.token_id, ps.sqrt_price_x96, ps.liquidity, ps.amount0, ps.fees1) == (
            UINT256_MAX, MAX_SQRT_RATIO, UINT128_MAX, UINT128_MAX, "2")
        assert int(ps.liquidity) == 2**128 - 1 and int(ps.token_id) == 2**256 - 1
        assert ps.taken_at == WHEN and ps.tick == -887272 and ps.in_range is True
        assert (ps.price, ps.value, ps.fees_value, ps.delta, ps.gamma) == (
            3012.5, 123456.75, 0.125, -40.5, 0.0078125)
        (ev,) = s.exec(select(models.AuditEvent)).all()
        assert (ev.event, ev.subject, ev.subject_hash, ev.detail, ev.created_at) == (
            "approval", "policy", "0xabc", '{"seq": 3}', WHEN)
        (ov,) = s.exec(select(models.OverrideRecord)).all()
        assert (ov.override_hash, ov.nonce, ov.kind, ov.params, ov.expiry, ov.signers) == (
            "0xdef", 0, "pause_layer", "{}", 1796000000, "0xa,0xb")
        assert ov.applied_at == LATER
        (pa,) = s.exec(select(models.PolicyApproval)).all()
        assert (pa.content, pa.signatures, pa.approved_at) == (b"\x00\xffversion = 3\n", "0x", WHEN)
        (tv,) = s.exec(select(models.TvlSample)).all()
        assert (tv.key, tv.ts, tv.tvl_usd, tv.source) == (
            "tvl:USDC/USDT/100", 1796000000, 98765432.5, "chain")
        levels = {r.key: (r.level, r.ts) for r in s.exec(select(models.SignalState)).all()}
        assert levels == {"ETH:funding": (2, 1796000000), "ETH:depeg": (None, 0)}


def test_upgrade_from_empty_reaches_head_with_the_models_schema(engine: Engine) -> None:
    assert current(engine) is None and tables(engine) == set()
    m = upgrade(engine)
    assert (m.before, m.after, m.applied) == (None, head(), tuple(revisions()))
    assert current(engine) == head() and version_rows(engine) == [head()]
    assert tables(engine) == set(models.metadata.tables)
    assert tables(engine) >= LEGACY_TABLES
    assert schema_diff(engine) == []
    again = upgrade(engine)  # at head: nothing to do
    assert (again.before, again.after, again.applied) == (head(), head(), ())


def test_schema_diff_sees_a_difference(engine: Engine) -> None:
    """The comparison the other tests rely on can fail: a dropped index is reported."""
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_governance_audit_event")
    diff = schema_diff(engine)
    assert [d[0] for d in diff] == ["add_index"]
    assert diff[0][1].name == "ix_governance_audit_event"


def test_upgrade_adopts_the_pre_migration_schema_and_keeps_rows(engine: Engine) -> None:
    create_legacy_schema(engine)
    insert_legacy_rows(engine)
    assert tables(engine) == LEGACY_TABLES and current(engine) is None
    m = upgrade(engine)
    assert (m.before, m.after, m.applied) == (None, head(), tuple(revisions()))
    assert version_rows(engine) == [head()]
    assert schema_diff(engine) == []
    assert_legacy_rows(engine)
    with Session(engine) as s:  # ids keep counting after the adopted rows (PostgreSQL SERIAL)
        s.add(models.AuditEvent(event="refusal", subject="policy", subject_hash="0x1",
                                chain_id=1, safe=SAFE))
        s.commit()
        assert [e.id for e in s.exec(select(models.AuditEvent)).all()] == [1, 2]


def test_upgrade_adopts_a_partial_pre_migration_schema(engine: Engine) -> None:
    """A database made by only some stores (e.g. only `positions --record` ran)."""
    create_legacy_schema(engine)
    with engine.begin() as conn:
        for t in ("governance_audit", "market_signal_state"):
            conn.exec_driver_sql(f"DROP TABLE {t}")
    assert tables(engine) == LEGACY_TABLES - {"governance_audit", "market_signal_state"}
    upgrade(engine)
    assert current(engine) == head() and schema_diff(engine) == []
    assert tables(engine) >= LEGACY_TABLES


@pytest.mark.parametrize(
    ("table", "alter", "missing", "extra"),
    [
        ("watched_position", "ALTER TABLE watched_position ADD COLUMN nickname VARCHAR",
         "none", "nickname"),
        ("position_snapshot", "ALTER TABLE position_snapshot DROP COLUMN gamma", "gamma", "none"),
        ("market_tvl_sample", "ALTER TABLE market_tvl_sample RENAME COLUMN source TO origin",
         "source", "origin"),
    ],
)
def test_a_foreign_table_is_refused_naming_table_and_columns(
    engine: Engine, table: str, alter: str, missing: str, extra: str
) -> None:
    create_legacy_schema(engine)
    insert_legacy_rows(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE governance_audit")  # would be created by the baseline
        conn.exec_driver_sql(alter)
    before = tables(engine)
    with pytest.raises(SchemaMismatch) as exc:
        upgrade(engine)
    assert str(exc.value) == (f"table {table} is not the pre-migration schema: missing columns "
                              f"{missing}; unexpected columns {extra}")
    # nothing half-written: no table created, no version stamped, rows still there
    assert tables(engine) == before and "governance_audit" not in before
    assert current(engine) is None
    with engine.connect() as conn:
        assert conn.execute(text("SELECT token_id FROM watched_position")).scalar() == UINT256_MAX


def test_downgrade_to_base_and_back_one_revision_at_a_time(engine: Engine) -> None:
    revs = revisions()
    assert revs[-1] == head()
    upgrade(engine)
    for i in reversed(range(len(revs))):
        target = revs[i - 1] if i else "base"
        m = downgrade(engine, target)
        assert (m.before, m.after, m.applied) == (revs[i], revs[i - 1] if i else None, (revs[i],))
    assert tables(engine) == set() and current(engine) is None
    for rev in revs:
        m = upgrade(engine, rev)
        assert m.applied == (rev,) and current(engine) == rev
    assert schema_diff(engine) == []
    insert_legacy_rows(engine)  # the schema at head still takes the old rows' shape
    assert_legacy_rows(engine)


def test_downgrade_from_an_adopted_legacy_database_and_back(engine: Engine) -> None:
    create_legacy_schema(engine)
    upgrade(engine)
    downgrade(engine, "base")
    assert tables(engine) == set()
    upgrade(engine)
    assert current(engine) == head() and schema_diff(engine) == []


N_RACERS = 2
RACER = """
import json, sys, time
from pathlib import Path
from bot.db.engine import make_engine
from bot.db.migrate import upgrade
engine = make_engine(sys.argv[1])
Path(sys.argv[2]).touch()
while not Path(sys.argv[3]).exists():
    time.sleep(0.002)
m = upgrade(engine)
print(json.dumps({"before": m.before, "after": m.after, "applied": list(m.applied)}))
"""


@pytest.mark.cli  # starts processes
@pytest.mark.parametrize("legacy", [False, True], ids=["empty", "legacy"])
def test_processes_upgrading_at_once_apply_each_revision_once(
    db_url: str, engine: Engine, tmp_path: Path, legacy: bool
) -> None:
    if legacy:
        create_legacy_schema(engine)
        insert_legacy_rows(engine)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER, db_url, str(tmp_path / f"ready{i}"), str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=Path(__file__).resolve().parents[3])
        for i in range(N_RACERS)
    ]
    try:
        deadline = time.monotonic() + 120  # a bound on start-up, not a timing assertion
        while not all((tmp_path / f"ready{i}").exists() for i in range(N_RACERS)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
                p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.01)
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * N_RACERS, [err for _, err in outs]
    results = [json.loads(out) for out, _ in outs]
    assert all(r["after"] == head() for r in results)
    applied = [rev for r in results for rev in r["applied"]]
    assert sorted(applied) == sorted(revisions())  # each revision applied by exactly one
    assert version_rows(engine) == [head()] and schema_diff(engine) == []
    if legacy:
        assert_legacy_rows(engine)


def test_open_engine_migrates_and_stores_use_it(db_url: str) -> None:
    from bot.db import open_engine

    eng = open_engine(db_url)
    try:
        assert current(eng) == head() and schema_diff(eng) == []
    finally:
        eng.dispose()
