"""services.db: units of work committed together (GroupCommit), and SQLite's writers of one
process queueing at their file's gate instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services import db
from services.models import Client
from tests import factories

WAIT_S = 10


class _Outcomes:
    """What each unit was told, and whether its row was visible to a new connection then."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.told: dict[str, tuple[Any, BaseException | None, bool]] = {}
        self.done = threading.Condition()

    def settle_for(self, name: str):
        def settle(result: Any, error: BaseException | None) -> None:
            with Session(self.engine) as session:
                visible = session.exec(select(Client.id).where(Client.name == name)).first() is not None
            with self.done:
                self.told[name] = (result, error, visible)
                self.done.notify_all()

        return settle

    def wait_for(self, count: int) -> None:
        with self.done:
            assert self.done.wait_for(lambda: len(self.told) >= count, timeout=WAIT_S), self.told


def _add_client(tenant_id: int, name: str, sessions: list[Session], fail: bool = False):
    def work(session: Session) -> str:
        sessions.append(session)  # kept, so that no two sessions seen share an id()
        session.add(Client(tenant_id=tenant_id, name=name, phone="0501234567", phone_e164="+966501234567"))
        session.flush()
        if fail:
            raise ValueError(f"{name} refused")
        return name

    return work


def _hold_the_writers() -> list[threading.Event]:
    """A unit per writer thread that keeps it busy until its event is set, so that what is
    submitted meanwhile waits in the queue; setting the first event lets one writer take
    all of it as one group (the others stay held until theirs are set)."""
    releases = []
    for _ in range(db.group_commit.writers()):
        started, release = threading.Event(), threading.Event()

        def hold(_session: Session, started: threading.Event = started, release: threading.Event = release) -> None:
            started.set()
            release.wait(WAIT_S)

        db.group_commit.submit(hold, lambda *_: None)
        assert started.wait(WAIT_S)  # taken by a writer of its own (the others are held)
        releases.append(release)
    return releases


def _release(releases: list[threading.Event]) -> None:
    for release in releases:
        release.set()


def test_units_submitted_together_share_one_transaction_and_hear_only_after_its_commit(engine: Engine, session: Session) -> None:
    tenant = factories.make_tenant(session)
    session.commit()
    outcomes, sessions = _Outcomes(engine), []
    releases = _hold_the_writers()
    names = [f"grouped {n}" for n in range(5)]
    try:
        for name in names:
            db.group_commit.submit(_add_client(tenant.id, name, sessions), outcomes.settle_for(name))
        releases[0].set()
        outcomes.wait_for(len(names))
    finally:
        _release(releases)

    assert {name: outcomes.told[name] for name in names} == {name: (name, None, True) for name in names}
    assert len({id(s) for s in sessions}) == 1  # one session, one transaction, one commit for the five


def test_a_unit_that_fails_costs_the_others_nothing_and_leaves_nothing_of_its_own(engine: Engine, session: Session) -> None:
    tenant = factories.make_tenant(session)
    session.commit()
    outcomes, sessions = _Outcomes(engine), []
    releases = _hold_the_writers()
    plan = {"kept 1": False, "refused": True, "kept 2": False}
    try:
        for name, fail in plan.items():
            db.group_commit.submit(_add_client(tenant.id, name, sessions, fail=fail), outcomes.settle_for(name))
        releases[0].set()
        outcomes.wait_for(len(plan))
    finally:
        _release(releases)

    assert outcomes.told["kept 1"] == ("kept 1", None, True)
    assert outcomes.told["kept 2"] == ("kept 2", None, True)
    result, error, visible = outcomes.told["refused"]
    assert result is None and isinstance(error, ValueError) and str(error) == "refused refused" and not visible
    with Session(engine) as fresh:
        names = sorted(fresh.exec(select(Client.name).where(Client.tenant_id == tenant.id)).all())
    assert names == ["kept 1", "kept 2"]  # each once: the group was rolled back whole, then each ran alone
    # The group (one session, stopped at the refused unit), then each of the three alone.
    assert len(sessions) == 5 and len({id(s) for s in sessions[:2]}) == 1 and len({id(s) for s in sessions[2:]}) == 3


def test_a_unit_runs_in_its_callers_context(engine: Engine, session: Session) -> None:
    import contextvars

    tenant = factories.make_tenant(session)
    session.commit()
    where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="writer")
    seen: list[str] = []
    token = where.set("request 7")
    try:
        outcomes = _Outcomes(engine)
        db.group_commit.submit(lambda s: seen.append(where.get()), outcomes.settle_for("context"))
    finally:
        where.reset(token)
    outcomes.wait_for(1)
    assert seen == ["request 7"] and tenant.id


def test_a_caller_that_cannot_be_told_does_not_stop_the_writer(engine: Engine, session: Session) -> None:
    tenant = factories.make_tenant(session)
    session.commit()
    outcomes, sessions = _Outcomes(engine), []

    def unreachable(_result: Any, _error: BaseException | None) -> None:
        raise RuntimeError("Event loop is closed")

    db.group_commit.submit(_add_client(tenant.id, "told nobody", sessions), unreachable)
    db.group_commit.submit(_add_client(tenant.id, "told", sessions), outcomes.settle_for("told"))
    outcomes.wait_for(1)
    assert outcomes.told["told"] == ("told", None, True)


# --------------------------------------------------------------------------- SQLite's write gate


def _sqlite(tmp_path: Path, timeout: float) -> Engine:
    """The product's SQLite engine on a file of its own, its busy timeout (SQLite's own wait) shortened to ``timeout``."""
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'gate.db'}")

    @sa.event.listens_for(engine, "connect")
    def busy_timeout(dbapi_conn: Any, _record: Any) -> None:
        # After the product's own pragmas (listeners run in the order they were added).
        dbapi_conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")

    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, thread TEXT)")
    return engine


def test_writers_of_one_process_queue_for_the_file_and_none_is_refused(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path, timeout=0.05)
    # With a 50 ms busy timeout, eight threads each holding the writer's place for a moment
    # would be refused "database is locked" by SQLite; at the gate they wait their turn.
    errors: list[BaseException] = []

    def write(name: str) -> None:
        try:
            for _ in range(20):
                with engine.begin() as conn:
                    conn.exec_driver_sql("INSERT INTO t (thread) VALUES (?)", (name,))
                    time.sleep(0.002)
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 160
    engine.dispose()


def test_the_gate_is_free_again_after_a_rollback_a_failed_statement_and_a_read(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path, timeout=0.05)
    gate = db._gate_for(str(tmp_path / "gate.db"))
    assert gate is not None
    with engine.connect() as conn:
        conn.exec_driver_sql("INSERT INTO t (thread) VALUES ('rolled back')")
        assert gate.lock.locked()  # held while the transaction is open
        conn.rollback()
    assert not gate.lock.locked()
    with engine.connect() as conn:
        with pytest.raises(sa.exc.OperationalError):
            conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")
        assert not gate.lock.locked()  # the statement failed before any transaction began
        conn.exec_driver_sql("SELECT count(*) FROM t").scalar()
        assert not gate.lock.locked()  # a read outside a transaction never queues
    engine.dispose()


def test_a_thread_writing_through_a_second_connection_meets_sqlites_lock_not_itself(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path, timeout=0.2)
    with engine.connect() as first:
        first.exec_driver_sql("INSERT INTO t (thread) VALUES ('first')")
        began = time.monotonic()
        with engine.connect() as second:
            # The same thread already holds the gate: waiting for it would be waiting for itself.
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                second.exec_driver_sql("INSERT INTO t (thread) VALUES ('second')")
        assert time.monotonic() - began < 5
        first.commit()
    engine.dispose()


def test_an_in_memory_database_has_no_gate() -> None:
    assert db._gate_for(":memory:") is None
    connection = sqlite3.connect(":memory:", factory=db._GatedConnection)
    connection.execute("CREATE TABLE t (n)")
    connection.execute("INSERT INTO t VALUES (1)")
    connection.commit()
    connection.close()
