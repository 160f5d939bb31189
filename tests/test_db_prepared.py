"""services.db: statements compiled once and run on the DBAPI cursor (Prepared), and the
PostgreSQL pool's check of connections that waited in it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from services import db
from services.models import Call, CallDirection, CallStatus, CallStatsHour
from tests import factories
from tests.conftest import POSTGRES_URL

_call = Call.__table__
_COLUMNS = ("tenant_id", "direction", "status", "remote_number", "notes", "started_at", "updated_at", "sip_call_id")
_INSERT = db.Prepared(sa.insert(_call), columns=_COLUMNS)
_READ = db.Prepared(
    sa.select(_call.c.id, _call.c.direction, _call.c.status, _call.c.started_at, _call.c.remote_number)
    .where(_call.c.sip_call_id == sa.bindparam("sip_call_id"))
    .order_by(_call.c.id)
    .limit(1)
)


def test_values_and_rows_go_through_the_columns_types_as_sqlalchemy_binds_them(session: Session) -> None:
    firm = factories.make_firm(session)
    # A time with a zone other than UTC, stored as naive UTC by UTCDateTime's bind processor.
    at = datetime(2026, 11, 30, 23, 59, 59, 999_900, tzinfo=timezone(timedelta(hours=3)))
    values = {
        "tenant_id": firm.tenant.id, "direction": CallDirection.OUTBOUND, "status": CallStatus.MISSED,
        "remote_number": "0501234567", "notes": "", "started_at": at, "updated_at": at, "sip_call_id": "prepared-1",
    }
    _INSERT.cursor(session.connection(), values).close()
    session.execute(sa.insert(_call), {**values, "sip_call_id": "orm-1"})

    by_sqlalchemy = session.execute(sa.select(_call).where(_call.c.sip_call_id == "orm-1")).one()
    by_prepared = session.execute(sa.select(_call).where(_call.c.sip_call_id == "prepared-1")).one()
    assert by_prepared._mapping["direction"] == by_sqlalchemy._mapping["direction"] == CallDirection.OUTBOUND
    assert by_prepared._mapping["started_at"] == by_sqlalchemy._mapping["started_at"] == at
    stored = session.connection().exec_driver_sql(
        "SELECT direction, status, started_at FROM call WHERE sip_call_id IN ('orm-1', 'prepared-1') ORDER BY sip_call_id"
    ).all()
    assert stored[0] == stored[1]  # the same text / values in the database, whoever wrote them

    row = _READ.first(session.connection(), {"sip_call_id": "prepared-1"})
    assert row[1:] == (CallDirection.OUTBOUND, CallStatus.MISSED, at, "0501234567")
    assert row[3].tzinfo is not None  # UTCDateTime's result processor ran
    assert _READ.first(session.connection(), {"sip_call_id": "nobody"}) is None
    # The literal of the statement (LIMIT 1) kept its value: one row of two with the same id.
    _INSERT.cursor(session.connection(), {**values, "tenant_id": factories.make_tenant(session).id}).close()
    assert len(_READ.all(session.connection(), {"sip_call_id": "prepared-1"})) == 1


def test_a_missing_value_is_refused_and_nothing_runs(session: Session) -> None:
    firm = factories.make_firm(session)
    with pytest.raises(KeyError, match="no value for the bound parameter"):
        _INSERT.cursor(session.connection(), {"tenant_id": firm.tenant.id, "direction": CallDirection.INBOUND})
    assert session.execute(sa.select(sa.func.count()).select_from(_call)).scalar_one() == 0


def test_database_errors_are_sqlalchemys_and_the_transaction_rolls_back(engine: sa.Engine) -> None:
    with Session(engine) as session:
        firm = factories.make_firm(session)
        session.commit()
        tenant_id = firm.tenant.id
    at = datetime.now(timezone.utc)
    values = {
        "tenant_id": tenant_id, "direction": CallDirection.INBOUND, "status": CallStatus.RINGING,
        "remote_number": "0501234567", "notes": "", "started_at": at, "updated_at": at, "sip_call_id": "twice",
    }
    with Session(engine) as session:
        _INSERT.cursor(session.connection(), values).close()
        with pytest.raises(sa.exc.IntegrityError):
            _INSERT.cursor(session.connection(), values)  # uq_call_tenant_sip_call_id
        session.rollback()
    with Session(engine) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(_call)).scalar_one() == 0
        # The rollups' triggers ran inside the statement and went back with it.
        assert session.execute(sa.select(sa.func.count()).select_from(CallStatsHour)).scalar_one() == 0


def test_an_expanding_in_list_cannot_be_prepared(session: Session) -> None:
    statement = db.Prepared(sa.select(_call.c.id).where(_call.c.id.in_(sa.bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match="expanding"):
        statement.all(session.connection(), {"ids": [1, 2]})


@pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL only (WATHEEQ_TEST_POSTGRES_URL)")
def test_a_postgresql_connection_cut_while_idle_is_replaced_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.create_db_engine(POSTGRES_URL, pool_size=1, max_overflow=0)
    pings: list[int] = []
    real_ping = db._ping
    monkeypatch.setattr(db, "_ping", lambda conn: pings.append(1) or real_ping(conn))
    try:
        with engine.connect() as conn:  # a new connection has just answered: used as it is
            first_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        assert pings == []
        with engine.connect() as conn:  # handed back a moment ago: used as it is
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() == first_pid
        assert pings == []

        admin = sa.create_engine(db.normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as other:
            assert other.exec_driver_sql(f"SELECT pg_terminate_backend({first_pid})").scalar_one()
        admin.dispose()
        # Within the idle window a cut connection is not noticed before use: the statement
        # fails, and SQLAlchemy throws that connection away.
        with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        with engine.connect() as conn:
            second_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        assert second_pid != first_pid

        # Past the window the check runs and replaces a cut connection before use.
        admin = sa.create_engine(db.normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as other:
            assert other.exec_driver_sql(f"SELECT pg_terminate_backend({second_pid})").scalar_one()
        admin.dispose()
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
        pings.clear()
        with engine.connect() as conn:
            third_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        assert third_pid not in (first_pid, second_pid)
        assert len(pings) >= 2  # the cut one failed its check, the new one passed
    finally:
        engine.dispose()
