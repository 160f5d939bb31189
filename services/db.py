"""The one engine and session factory.

``WATHEEQ_DATABASE_URL`` picks SQLite (default, WAL mode, foreign keys on) or
PostgreSQL. Services receive a session and never commit; the edge that opens the
session (:func:`session_scope`) commits, so several service calls share one
transaction.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
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


_MISSING = object()


def _key(dialect: Any) -> str:
    return f"{dialect.name}+{dialect.driver}"


class Prepared:
    """A Core statement compiled once per dialect and run on the DBAPI cursor of a
    :class:`Connection`, inside that connection's transaction.

    For the paths that run on every call event and every stats request: SQLAlchemy's execution
    of an already compiled statement (its cache key, the parameters' processing, the result's
    set-up: ~50-60 µs) costs more than SQLite takes to answer a small statement. The values
    still go through each bound parameter's type as SQLAlchemy would bind them (enums, UTC
    times), and the selected columns through their types' result processors; database errors
    are raised as SQLAlchemy's (``sa.exc.IntegrityError`` ...). What it skips are SQLAlchemy's
    execution events: a write through it announces its live change itself
    (``live.publish_on_commit``), as the ORM session would have (services.live_sources).
    """

    def __init__(self, statement: Any, *, columns: tuple[str, ...] | None = None) -> None:
        # ``columns``: the columns an INSERT writes (each given at every execution, by name).
        self.statement = statement
        self.columns = columns
        self._plans: dict[str, tuple[str, bool, tuple[tuple[str, Any, Any], ...]]] = {}
        # Per dialect: each selected column's result processor (None: none needs one), made from
        # the first execution's cursor description, as SQLAlchemy makes them.
        self._results: dict[str, tuple[Any, ...] | None] = {}

    def _plan(self, dialect: Any) -> tuple[str, bool, tuple[tuple[str, Any, Any], ...]]:
        plan = self._plans.get(_key(dialect))
        if plan is not None:
            return plan
        compiled = self.statement.compile(dialect=dialect, column_keys=self.columns)
        if compiled.escaped_bind_names or compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("a prepared statement binds plain named values only (no expanding IN, no escaped names)")
        names = compiled.positiontup if compiled.positional else list(dict.fromkeys(compiled.bind_names.values()))
        binds = []
        for name in names:
            bind = compiled.binds[name]
            # A literal of the statement (LIMIT 1) keeps its value; every other value is given
            # at each execution (an INSERT's column defaults are not applied here).
            default = bind.value if not bind.required and bind.callable is None and bind.value is not None else _MISSING
            binds.append((name, default, bind.type.dialect_impl(dialect).bind_processor(dialect)))
        plan = (compiled.string, compiled.positional, tuple(binds))
        self._plans[_key(dialect)] = plan
        return plan

    def cursor(self, connection: Connection, params: dict[str, Any]) -> Any:
        """The DBAPI cursor the statement ran on, with ``params`` (by bound name) applied."""
        dialect = connection.dialect
        sql, positional, binds = self._plan(dialect)
        values = []
        for name, default, process in binds:
            value = params.get(name, default)
            if value is _MISSING:
                raise KeyError(f"no value for the bound parameter {name!r}")
            values.append(value if process is None else process(value))
        args: Any = tuple(values) if positional else dict(zip((b[0] for b in binds), values))
        dbapi_connection = connection.connection.dbapi_connection
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql, args)
        except dialect.loaded_dbapi.Error as error:
            cursor.close()
            if dialect.is_disconnect(error, dbapi_connection, cursor):
                connection.invalidate(error)
            raise sa.exc.DBAPIError.instance(sql, args, error, dialect.loaded_dbapi.Error, dialect=dialect) from error
        return cursor

    def all(self, connection: Connection, params: dict[str, Any]) -> list[Any]:
        """Every row the statement returns (a SELECT's, or an INSERT's RETURNING), each a tuple
        of the selected columns' values."""
        cursor = self.cursor(connection, params)
        try:
            rows = cursor.fetchall()
            dialect = connection.dialect
            key = _key(dialect)
            if key in self._results:
                processors = self._results[key]
            else:
                made = tuple(
                    column.type.dialect_impl(dialect).result_processor(dialect, described[1])
                    for column, described in zip(self.statement.exported_columns, cursor.description)
                )
                processors = self._results[key] = made if any(made) else None
        finally:
            cursor.close()
        if processors is None:
            return rows
        return [tuple(v if p is None else p(v) for p, v in zip(processors, row)) for row in rows]

    def first(self, connection: Connection, params: dict[str, Any]) -> Any:
        """The first row, or None."""
        rows = self.all(connection, params)
        return rows[0] if rows else None


class _WriteGate:
    """One SQLite database file's writer, within this process.

    SQLite lets one connection write at a time; another that wants to write meanwhile gets
    SQLITE_BUSY and its busy handler *sleeps* (1, 2, 5, 10 ... 100 ms) before it looks again.
    Eight requests logging calls at once in one worker spent most of their time asleep there:
    p95 100 ms and p99 340 ms for a statement that takes a fraction of a millisecond. The gate
    makes the connections of this process queue for the writer's place instead, each woken the
    moment the one before commits. Other processes on the same file (the sidecar, the
    reconciler, a second worker) still meet SQLite's own lock and busy handler, as before.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None  # the thread whose connection holds the gate

    def enter(self, timeout: float) -> bool:
        # A thread that holds the gate through one connection and writes through another
        # would wait for itself: it goes on ungated and meets SQLite's lock, as before.
        if self.owner == threading.get_ident():
            return False
        if not self.lock.acquire(timeout=timeout):
            return False
        self.owner = threading.get_ident()
        return True

    def leave(self) -> None:
        self.owner = None
        self.lock.release()


_GATES: dict[str, _WriteGate] = {}
_GATES_LOCK = threading.Lock()
# Statements that never write; any other statement outside a transaction queues at the gate
# (an INSERT, UPDATE or DELETE opens the transaction that holds it until COMMIT or ROLLBACK).
_READS = ("select", "values", "explain")


def _gate_for(database: str) -> _WriteGate | None:
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    with _GATES_LOCK:
        return _GATES.setdefault(database, _WriteGate())


class _GatedCursor(sqlite3.Cursor):
    def _gated(self, run: Callable[..., Any], sql: str, *args: Any) -> Any:
        connection: _GatedConnection = self.connection  # type: ignore[assignment]
        connection._enter(sql)
        try:
            return run(sql, *args)
        finally:
            connection._settle()

    def execute(self, sql: str, parameters: Any = (), /) -> Any:  # type: ignore[override]
        return self._gated(super().execute, sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:  # type: ignore[override]
        return self._gated(super().executemany, sql, seq_of_parameters)

    def executescript(self, sql_script: str, /) -> Any:  # type: ignore[override]
        return self._gated(super().executescript, sql_script)


class _GatedConnection(sqlite3.Connection):
    """A pysqlite connection whose writes queue at its file's :class:`_WriteGate`."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._gate = _gate_for(str(database))
        self._timeout = float(kwargs.get("timeout", args[0] if args else 5.0))
        self._holding = False

    def cursor(self, factory: Any = _GatedCursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)

    def _enter(self, sql: str) -> None:
        if self._gate is None or self._holding or self.in_transaction:
            return
        if sql.lstrip()[:7].lower().startswith(_READS):
            return
        self._holding = self._gate.enter(self._timeout)

    def _settle(self) -> None:
        # The statement ran (or failed) without leaving a transaction open: the gate is free again.
        if self._holding and not self.in_transaction:
            self._release()

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            assert self._gate is not None
            self._gate.leave()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._settle()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._settle()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()


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
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 10, "factory": _GatedConnection})
        engine = sa.create_engine(url, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    if "pool_pre_ping" in kwargs:
        return sa.create_engine(url, **kwargs)
    engine = sa.create_engine(url, **kwargs)
    sa.event.listen(engine, "connect", _note_connected)
    sa.event.listen(engine, "checkout", _ping_if_idle)
    sa.event.listen(engine, "checkin", _note_checkin)
    return engine


# A pooled PostgreSQL connection is checked (SELECT 1) before use when it has waited in the pool
# longer than this: a server restarted or a connection cut while idle is replaced before a
# request uses it, as pool_pre_ping would, without pool_pre_ping's round trip on every checkout
# (one of the five a logged call made on PostgreSQL). A connection handed back a moment ago was
# working a moment ago.
PING_AFTER_IDLE_S = 1.0
_RETURNED_AT = "watheeq_returned_at"


def _note_checkin(_dbapi_conn: Any, record: Any) -> None:
    if record is not None:
        record.info[_RETURNED_AT] = time.monotonic()


def _note_connected(_dbapi_conn: Any, record: Any) -> None:
    # A connection opened a moment ago answered its handshake a moment ago: its first use is
    # not checked (the check was one more round trip on a new backend, before its first query).
    _note_checkin(_dbapi_conn, record)


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    returned = record.info.get(_RETURNED_AT)
    if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_S:
        return
    try:
        alive = _ping(dbapi_conn)
    except Exception as error:  # any failure: the pool replaces the connection and retries
        raise sa.exc.DisconnectionError(f"the pooled connection failed its check: {error}") from error
    if not alive:
        raise sa.exc.DisconnectionError("the pooled connection failed its check")


def _ping(dbapi_conn: Any) -> bool:
    """SELECT 1 outside any transaction (as SQLAlchemy's pre-ping does on psycopg)."""
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    try:
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    finally:
        if not dbapi_conn.closed:
            dbapi_conn.autocommit = autocommit


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


class _Unit:
    __slots__ = ("work", "context", "settle")

    def __init__(self, work: Callable[[Session], Any], context: contextvars.Context, settle: Callable[[Any, BaseException | None], None]) -> None:
        self.work = work
        self.context = context
        self.settle = settle


class GroupCommit:
    """Small units of work from many requests, run by a few writer threads and committed
    together: one transaction, one commit (on PostgreSQL one flush of the log to disk) for
    whatever arrived while the previous group was being written.

    Each unit is a function of a session, as inside :func:`session_scope`; it is told its
    outcome (``settle(result, None)`` or ``settle(None, error)``) only after its group has
    committed, so nothing is acknowledged that is not on disk. A group whose unit raises, or
    whose commit fails, is rolled back whole and each of its units is run again alone, in a
    transaction of its own, so every unit gets exactly the outcome it would have had alone
    and no unit's failure costs another its write. Units therefore touch nothing but the
    database (a live change is announced on commit, ``live.publish_on_commit``).

    For the hottest write (``POST /calls``: every call event of every softphone and PBX):
    eight requests at once each opening, writing and committing their own transaction queued
    for SQLite's one writer (or, on PostgreSQL, each waited for its own flush), and the
    session and commit machinery per request cost more than the INSERT.
    """

    MAX_GROUP = 64

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Unit] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._writers = 0

    def writers(self) -> int:
        """How many writer threads this process runs (started if they were not)."""
        if self._pid != os.getpid():
            self._start()
        return self._writers

    def submit(self, work: Callable[[Session], Any], settle: Callable[[Any, BaseException | None], None]) -> None:
        """Queue ``work`` (run in a copy of the caller's context); ``settle`` is called from a
        writer thread once its outcome is committed."""
        if self._pid != os.getpid():
            self._start()
        self._queue.put(_Unit(work, contextvars.copy_context(), settle))

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # One writer on SQLite (it has one writer); on PostgreSQL a few, so that a group's
            # flush overlaps the next group's statements. Started in the process that writes
            # (a forked worker starts its own).
            writers = 1 if is_sqlite(get_engine()) else 2
            self._queue = queue.SimpleQueue()
            self._writers = writers
            for n in range(writers):
                threading.Thread(target=self._write, name=f"watheeq-group-commit-{n}", daemon=True).start()
            self._pid = os.getpid()

    def _write(self) -> None:
        units = self._queue
        while True:
            group = [units.get()]
            while len(group) < self.MAX_GROUP:
                try:
                    group.append(units.get_nowait())
                except queue.Empty:
                    break
            self.run_group(group)

    @staticmethod
    def run_group(group: list[_Unit]) -> None:
        if len(group) > 1:
            try:
                with session_scope() as session:
                    results = [unit.context.run(unit.work, session) for unit in group]
            except Exception:  # noqa: BLE001 - each unit is run again alone below and meets its own error
                pass
            else:
                for unit, result in zip(group, results):
                    _tell(unit, result, None)
                return
        for unit in group:
            try:
                with session_scope() as session:
                    result = unit.context.run(unit.work, session)
            except Exception as error:  # noqa: BLE001 - handed to the unit's caller
                _tell(unit, None, error)
            else:
                _tell(unit, result, None)


def _tell(unit: _Unit, result: Any, error: BaseException | None) -> None:
    # A caller that cannot be told (its event loop closed) must not stop the writer thread:
    # every later unit would wait for ever.
    try:
        unit.settle(result, error)
    except Exception:  # noqa: BLE001
        logging.getLogger("watheeq.db").exception("a group commit's outcome could not be handed to its caller")


group_commit = GroupCommit()


# Writes through these sessions announce live changes once they commit (services.live_sources).
from services import live_sources  # noqa: E402,F401
