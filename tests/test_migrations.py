"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from services import db, migrate
from services import models  # noqa: F401  (registers every table)

POSTGRES_URL = os.environ.get("WATHEEQ_TEST_POSTGRES_URL")


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
    base = db.create_db_engine(POSTGRES_URL)
    schema = "migration_check"
    try:
        with base.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        url = db.normalise_url(POSTGRES_URL)
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
        migrate.upgrade(url)
        assert _schema_differences(url) == []
    finally:
        with base.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        base.dispose()
