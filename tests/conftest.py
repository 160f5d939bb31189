"""Shared fixtures: a real database per test, on SQLite and (when reachable) PostgreSQL.

``engine`` is parametrised over the backends: every service and API test that uses it
runs on a fresh SQLite file and, when ``WATHEEQ_TEST_POSTGRES_URL`` is set, on that
PostgreSQL database too (schema created by the real migrations once, tables emptied
between tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

# Tests never touch the developer's .env or database.
os.environ["WATHEEQ_ENV_FILE"] = str(Path(__file__).parent / "no-such.env")
os.environ.pop("WATHEEQ_DATABASE_URL", None)
os.environ.pop("WATHEEQ_PREVIOUS_SECRET_KEYS", None)

from services import db, migrate, security  # noqa: E402
from services import models  # noqa: E402,F401

os.environ["WATHEEQ_SECRET_KEY"] = security.generate_key()



def _database_of_this_worker(url: str | None) -> str | None:
    """Under pytest-xdist each worker gets its own PostgreSQL database beside the one named
    (``test`` → ``test_gw0``, created once), so workers never drop each other's schema. The
    environment variable is rewritten too: tests that start processes pass it on."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    base = sa.engine.make_url(db.normalise_url(url))
    name = f"{base.database}_{worker}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar() is None:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    mine = sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    os.environ["WATHEEQ_TEST_POSTGRES_URL"] = mine
    return mine


POSTGRES_URL = _database_of_this_worker(os.environ.get("WATHEEQ_TEST_POSTGRES_URL"))
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@pytest.fixture(scope="session")
def _postgres_engine() -> Iterator[Engine]:
    assert POSTGRES_URL
    engine = db.create_db_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    migrate.upgrade(db.normalise_url(POSTGRES_URL))
    yield engine
    engine.dispose()


def _truncate_all(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgresql":
        eng = request.getfixturevalue("_postgres_engine")
        _truncate_all(eng)
        db.configure(eng)
        yield eng
        db.configure(None)
        return
    url = f"sqlite:///{tmp_path / 'watheeq-test.db'}"
    eng = db.create_db_engine(url)
    SQLModel.metadata.create_all(eng)
    db.configure(eng)
    yield eng
    db.configure(None)
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s
