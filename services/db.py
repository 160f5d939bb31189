"""The one engine and session factory.

``WATHEEQ_DATABASE_URL`` picks SQLite (default, WAL mode, foreign keys on) or
PostgreSQL. Services receive a session and never commit; the edge that opens the
session (:func:`session_scope`) commits, so several service calls share one
transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from services import config

_lock = threading.Lock()
_engine: Engine | None = None


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(url_or_engine: str | Engine) -> bool:
    url = url_or_engine if isinstance(url_or_engine, str) else str(url_or_engine.url)
    return url.startswith("sqlite")


_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def dialect_insert(session_or_bind: Session | Engine | Connection, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of ``table`` (model or Core table) in the dialect of the session or bind, so
    ``on_conflict_do_nothing`` / ``on_conflict_do_update`` are available on both databases."""
    bind = session_or_bind.get_bind() if isinstance(session_or_bind, Session) else session_or_bind
    return dialect_insert_for(bind.dialect.name, table)


def dialect_insert_for(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """:func:`dialect_insert` by the dialect's name (for statements built once per dialect)."""
    try:
        insert = _INSERTS[dialect]
    except KeyError:
        raise NotImplementedError(f"no upsert for the {dialect} dialect") from None
    return insert(table)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def create_db_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """A new engine for ``url`` (default: the configured database)."""
    url = normalise_url(url or config.database_url())
    if is_sqlite(url):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 10})
        engine = sa.create_engine(url, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return sa.create_engine(url, **kwargs)


def get_engine() -> Engine:
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = create_db_engine()
    return _engine


def configure(engine: Engine | None) -> None:
    """Point every edge at ``engine`` (tests), or back at the configured URL (None)."""
    global _engine
    with _lock:
        _engine = engine


def new_session() -> Session:
    return Session(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# Writes through these sessions announce live changes once they commit (services.live_sources).
from services import live_sources  # noqa: E402,F401
