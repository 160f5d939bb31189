"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from services import db, migrate
from services import models  # noqa: F401  (registers every table)

POSTGRES_URL = os.environ.get("WATHEEQ_TEST_POSTGRES_URL")
T = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)



def _in_scratch_schema(schema: str, check) -> None:
    """Runs ``check(url)`` on the test PostgreSQL, in a schema of its own made for it and dropped after."""
    base = db.create_db_engine(POSTGRES_URL)
    try:
        with base.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        url = db.normalise_url(POSTGRES_URL)
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
        check(url)
    finally:
        with base.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        base.dispose()

def _schema_differences(url: str) -> list[str]:
    """What autogenerate would still change after the migrations ran (one line each)."""
    engine = db.create_db_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
            return [_describe(diff) for diff in compare_metadata(context, SQLModel.metadata)]
    finally:
        engine.dispose()


def _describe(diff: object) -> str:
    if isinstance(diff, tuple) and len(diff) > 1 and hasattr(diff[1], "name"):
        return f"{diff[0]} {getattr(getattr(diff[1], 'table', None), 'name', '')} {diff[1].name}".replace("  ", " ")
    return repr(diff)


def test_migrations_on_fresh_sqlite_match_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    migrate.upgrade(url)
    assert _schema_differences(url) == []


def test_migrations_are_idempotent_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    migrate.upgrade(url)
    migrate.upgrade(url)
    engine = db.create_db_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= tables


@pytest.mark.skipif(not POSTGRES_URL, reason="WATHEEQ_TEST_POSTGRES_URL is not set")
def test_migrations_on_fresh_postgres_match_the_models() -> None:
    def check(url: str) -> None:
        migrate.upgrade(url)
        assert _schema_differences(url) == []

    _in_scratch_schema("migration_check", check)


def _fill(conn: sa.Connection, table_name: str, /, **values: object) -> int:
    """Insert one row into the reflected table ``name``: ``values``, and a plain value for
    every other NOT NULL column without a default (the schema of an older revision)."""
    table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
    row = dict(values)
    for column in table.columns:
        if column.name in row or column.nullable or column.server_default is not None or column.primary_key:
            continue
        kind = column.type.python_type if not isinstance(column.type, sa.types.NullType) else str
        text = f"{table_name}-{column.name}"[: getattr(column.type, "length", None) or None]
        row[column.name] = {int: 1, bool: False, datetime: T}.get(kind, text)
    return conn.execute(table.insert().values(**row).returning(table.c.id)).scalar_one()


def _migrate_with_data(url: str) -> None:
    """Upgrade to the revision before bl01a1b20008, store legs, recordings and WhatsApp
    messages (with and without a file) the old way, upgrade to head, and check what the
    migration made of them: each leg's kind, one blob per stored file, the old columns gone."""
    command.upgrade(migrate.alembic_config(url), "me01a1b20007")
    engine = db.create_db_engine(url)
    try:
        with engine.begin() as conn:
            tenant = _fill(conn, "tenant", name="Firm", slug="firm")
            call = _fill(conn, "call", tenant_id=tenant, direction="INBOUND", status="COMPLETED", remote_number="1")
            for uid, transferred_by, answered in (("u1", None, None), ("u2", None, T), ("u3", "1001", T)):
                _fill(conn, "call_leg", tenant_id=tenant, call_id=call, unique_id=uid, transferred_by=transferred_by,
                      answered_at=answered, started_at=T, ended_at=T, disposition="ANSWERED")
            stored = _fill(conn, "call_recording", tenant_id=tenant, call_id=call, source_file="a.wav", storage_key="recordings/t1/a.wav",
                           content_type="audio/wav", size_bytes=1234, sha256="ab" * 32, created_at=T)
            pending = _fill(conn, "call_recording", tenant_id=tenant, call_id=call, source_file="b.wav", created_at=T)
            media = _fill(conn, "whatsapp_message", tenant_id=tenant, wa_message_id="W1", direction="INBOUND", status="RECEIVED",
                          media_state="stored", media_key="whatsapp/t1/m1", media_mime="application/pdf", media_size=99,
                          media_sha256="cd" * 32, created_at=T, updated_at=T)
            text = _fill(conn, "whatsapp_message", tenant_id=tenant, wa_message_id="W2", direction="INBOUND", status="RECEIVED",
                         created_at=T, updated_at=T)
        command.upgrade(migrate.alembic_config(url), "head")
        with engine.connect() as conn:
            kinds = dict(conn.execute(sa.text("SELECT unique_id, kind FROM call_leg")).all())
            blobs = {row.storage_key: row for row in conn.execute(sa.text("SELECT * FROM blob")).all()}
            recordings = dict(conn.execute(sa.text("SELECT id, blob_id FROM call_recording")).all())
            messages = dict(conn.execute(sa.text("SELECT id, blob_id FROM whatsapp_message")).all())
            recording_columns = {c["name"] for c in sa.inspect(conn).get_columns("call_recording")}
            message_columns = {c["name"] for c in sa.inspect(conn).get_columns("whatsapp_message")}
        assert kinds == {"u1": "ring", "u2": "answer", "u3": "transfer"}
        rec, wa = blobs["recordings/t1/a.wav"], blobs["whatsapp/t1/m1"]
        assert (rec.tenant_id, rec.kind, rec.content_type, rec.size_bytes, rec.sha256) == (tenant, "recording", "audio/wav", 1234, "ab" * 32)
        assert (wa.tenant_id, wa.kind, wa.content_type, wa.size_bytes, wa.sha256) == (tenant, "whatsapp_media", "application/pdf", 99, "cd" * 32)
        assert len(blobs) == 2
        assert recordings == {stored: rec.id, pending: None} and messages == {media: wa.id, text: None}
        assert not {"storage_key", "size_bytes", "sha256", "content_type"} & recording_columns
        assert not {"media_key", "media_sha256"} & message_columns
        assert _schema_differences(url) == []
    finally:
        engine.dispose()


def test_migration_moves_existing_rows_on_sqlite(tmp_path: Path) -> None:
    _migrate_with_data(f"sqlite:///{tmp_path / 'migrated.db'}")


@pytest.mark.skipif(not POSTGRES_URL, reason="WATHEEQ_TEST_POSTGRES_URL is not set")
def test_migration_moves_existing_rows_on_postgres() -> None:
    _in_scratch_schema("migration_data_check", _migrate_with_data)


def _triggers(conn: sa.Connection) -> set[str]:
    if conn.dialect.name == "sqlite":
        return set(conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
    return set(conn.execute(sa.text(
        "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE NOT t.tgisinternal AND c.relnamespace = to_regnamespace(current_schema())"
    )).scalars())


def _migrate_rollups_with_data(url: str) -> None:
    """Calls and legs stored before cs01a1b2001r get their rollups from the migration, the
    triggers keep them from then on, and the lazy tables are gone (and back on downgrade)."""
    from services.models.call_stats_triggers import TRIGGERS

    command.upgrade(migrate.alembic_config(url), "lv02a1b20009")
    engine = db.create_db_engine(url)
    h9, h10 = T, T + timedelta(hours=1)
    try:
        with engine.begin() as conn:
            tenant = _fill(conn, "tenant", name="Firm", slug="firm")
            amal = _fill(conn, "user", tenant_id=tenant, email="a@firm", full_name="Amal", role="AGENT")
            badr = _fill(conn, "user", tenant_id=tenant, email="b@firm", full_name="Badr", role="AGENT")
            answered = dict(direction="INBOUND", status="COMPLETED", remote_number="1", answered_at=h9, ring_seconds=5, talk_seconds=60)
            _fill(conn, "call", tenant_id=tenant, agent_user_id=amal, started_at=h9 + timedelta(minutes=10), **answered)
            _fill(conn, "call", tenant_id=tenant, agent_user_id=amal, started_at=h9 + timedelta(minutes=50), direction="INBOUND",
                  status="MISSED", remote_number="2", ring_seconds=30)
            _fill(conn, "call", tenant_id=tenant, agent_user_id=None, started_at=h10, direction="OUTBOUND", status="FAILED", remote_number="3")
            # A PBX call: its talk goes to the agents of its two answered legs.
            pbx = _fill(conn, "call", tenant_id=tenant, agent_user_id=amal, started_at=h10 + timedelta(minutes=20),
                        pbx_linked_id="L1", **{**answered, "talk_seconds": 100})
            for uid, agent, talk in (("u1", amal, 40), ("u2", badr, 60)):
                _fill(conn, "call_leg", tenant_id=tenant, call_id=pbx, unique_id=uid, agent_user_id=agent, answered_at=h10,
                      started_at=h10, ended_at=h10, talk_seconds=talk, disposition="ANSWERED")
            _fill(conn, "call_hourly_rollup", tenant_id=tenant, hour_start=h9, agent_user_id=amal, total=99)
        command.upgrade(migrate.alembic_config(url), "head")

        def rows(conn: sa.Connection) -> dict:
            # Each (hour, agent)'s shards summed (PostgreSQL's triggers add to a shard no other
            # transaction holds; the migration's rows are shard 0).
            figures = ("total", "inbound", "answered", "missed", "answered_inbound", "ring_seconds_sum",
                       "talk_seconds_sum", "agent_talk_seconds_sum", "agent_talk_count", "total_before_15")
            return {
                (str(h)[:13], agent): tuple(int(v) for v in rest)
                for h, agent, *rest in conn.execute(sa.text(
                    f"SELECT hour_start, agent_key, {', '.join(f'SUM({c})' for c in figures)} FROM call_stats_hour"
                    " GROUP BY hour_start, agent_key ORDER BY hour_start, agent_key"
                ))
            }

        with engine.begin() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert not {"call_hourly_rollup", "call_rollup_hour"} & tables
            assert set(TRIGGERS) <= _triggers(conn)
            assert rows(conn) == {
                ("2026-01-01 09", amal): (2, 2, 1, 1, 1, 5, 60, 60, 1, 1),
                ("2026-01-01 10", 0): (1, 0, 0, 0, 0, 0, 0, 0, 0, 1),
                ("2026-01-01 10", amal): (1, 1, 1, 0, 1, 5, 100, 40, 1, 0),
                ("2026-01-01 10", badr): (0, 0, 0, 0, 0, 0, 0, 60, 1, 0),
            }
            # From now on the triggers keep them.
            conn.execute(sa.text("DELETE FROM call_leg WHERE unique_id = 'u2'"))
            _fill(conn, "call", tenant_id=tenant, agent_user_id=badr, started_at=h9, direction="OUTBOUND", status="BUSY", remote_number="4")
            after = rows(conn)
            assert after[("2026-01-01 10", badr)] == (0,) * 8 + (0, 0)
            assert after[("2026-01-01 09", badr)] == (1, 0, 0, 0, 0, 0, 0, 0, 0, 1)
        assert _schema_differences(url) == []

        if engine.dialect.name == "postgresql":
            # At head a trigger takes a shard no other transaction holds; one step down, the
            # connection's own again (sh01a1b2001s), and the rows as they were.
            def function() -> str:
                with engine.connect() as conn:
                    return conn.execute(sa.text("SELECT pg_get_functiondef('call_stats_call'::regproc)")).scalar_one()

            assert "FOR UPDATE SKIP LOCKED" in function()
            with engine.connect() as conn:
                at_head = rows(conn)
            command.downgrade(migrate.alembic_config(url), "sh01a1b2001s")
            assert "FOR UPDATE SKIP LOCKED" not in function() and "mod(pg_backend_pid(), 8)" in function()
            with engine.connect() as conn:
                assert rows(conn) == at_head
            command.upgrade(migrate.alembic_config(url), "head")
            assert "FOR UPDATE SKIP LOCKED" in function()

        # Down to one row per (hour, agent) again: the shards summed, the triggers still keeping them.
        with engine.connect() as conn:
            sharded = rows(conn)
        command.downgrade(migrate.alembic_config(url), "cs01a1b2001r")
        with engine.begin() as conn:
            assert "shard" not in {c["name"] for c in sa.inspect(conn).get_columns("call_stats_hour")}
            assert rows(conn) == sharded
            _fill(conn, "call", tenant_id=tenant, agent_user_id=badr, started_at=h9, direction="OUTBOUND", status="BUSY", remote_number="5")
            assert rows(conn)[("2026-01-01 09", badr)] == (2, 0, 0, 0, 0, 0, 0, 0, 0, 2)
        command.upgrade(migrate.alembic_config(url), "head")
        with engine.connect() as conn:
            assert rows(conn)[("2026-01-01 09", badr)] == (2, 0, 0, 0, 0, 0, 0, 0, 0, 2)

        command.downgrade(migrate.alembic_config(url), "lv02a1b20009")
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert {"call_hourly_rollup", "call_rollup_hour"} <= tables and "call_stats_hour" not in tables
            assert not set(TRIGGERS) & _triggers(conn)
        command.upgrade(migrate.alembic_config(url), "head")
        with engine.connect() as conn:
            assert rows(conn)[("2026-01-01 09", badr)] == (2, 0, 0, 0, 0, 0, 0, 0, 0, 2)
    finally:
        engine.dispose()


def _number_dictionary_with_data(url: str) -> None:
    """ns02a1b2010n builds number search's dictionary (call_number) from the calls already
    stored, its triggers keep it for new calls, and the downgrade takes both away."""
    command.upgrade(migrate.alembic_config(url), "lv02a1b20009")
    engine = db.create_db_engine(url)
    stored = (("0501112222", "+966501112222"), ("+966501112222", "+966501112222"), ("1042", None), ("anonymous", None))
    try:
        with engine.begin() as conn:
            tenants = [_fill(conn, "tenant", name=f"Firm {i}", slug=f"firm-{i}") for i in range(2)]
            for tenant in tenants:
                for number, e164 in stored:
                    _fill(conn, "call", tenant_id=tenant, direction="INBOUND", status="COMPLETED", remote_number=number,
                          remote_e164=e164, started_at=T, updated_at=T)
        command.upgrade(migrate.alembic_config(url), "head")

        def dictionary() -> set[tuple[int, str, str]]:
            with engine.connect() as conn:
                return set(conn.execute(sa.text("SELECT tenant_id, suffix, number FROM call_number")).all())

        def kept(number: str) -> set[str]:
            return {number} | {number[i:] for i in range(len(number) - 2) if number[i].isdigit()}

        numbers = {"+966501112222", "1042", "anonymous"}
        assert dictionary() == {(t, s, n) for t in tenants for n in numbers for s in kept(n)}
        with engine.begin() as conn:
            _fill(conn, "call", tenant_id=tenants[0], direction="INBOUND", status="COMPLETED", remote_number="2055",
                  started_at=T, updated_at=T)
        assert {(s, n) for t, s, n in dictionary() if n == "2055"} == {("2055", "2055"), ("055", "2055")}
        assert _schema_differences(url) == []
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                definition = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_call_tenant_remote' AND schemaname = current_schema()")).scalar_one()
            assert definition.endswith("INCLUDE (id)"), definition
        command.downgrade(migrate.alembic_config(url), "lv02a1b20009")
        with engine.begin() as conn:
            assert "call_number" not in sa.inspect(conn).get_table_names()
            _fill(conn, "call", tenant_id=tenants[0], direction="INBOUND", status="COMPLETED", remote_number="3066",
                  started_at=T, updated_at=T)
    finally:
        engine.dispose()


def test_rollups_migration_with_data_on_sqlite(tmp_path: Path) -> None:
    _migrate_rollups_with_data(f"sqlite:///{tmp_path / 'migrated.db'}")


@pytest.mark.skipif(not POSTGRES_URL, reason="WATHEEQ_TEST_POSTGRES_URL is not set")
def test_rollups_migration_with_data_on_postgres() -> None:
    _in_scratch_schema("migration_rollup_check", _migrate_rollups_with_data)


def test_number_dictionary_migration_on_sqlite(tmp_path: Path) -> None:
    _number_dictionary_with_data(f"sqlite:///{tmp_path / 'migrated.db'}")


@pytest.mark.skipif(not POSTGRES_URL, reason="WATHEEQ_TEST_POSTGRES_URL is not set")
def test_number_dictionary_migration_on_postgres() -> None:
    _in_scratch_schema("migration_number_check", _number_dictionary_with_data)
