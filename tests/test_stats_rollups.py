"""The rollups stay equal to the calls, whoever writes them.

Random sequences of every kind of write to calls and legs (log_call, status changes, softphone
events, the PBX ledger's ingest with merges and folds, stale-call closing, the audited delete,
a user deleted, a bulk UPDATE past the services, a firm deleted), each in a savepoint that a
refused operation rolls back. After each step: the rows of ``call_stats_hour`` equal the rows
rebuilt from scratch from the calls and legs, and ``get_stats`` (rollups for whole hours)
equals the same request counted from the calls only, for several zones, periods, viewers and
service-level thresholds. Runs on SQLite and PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from services.call_center import (
    add_notes,
    close_stale_calls,
    delete_call,
    get_stats,
    log_call,
    update_call_status,
)
from services.call_center import stats as stats_module
from services.call_center.calls import answered_on_another_phone
from services.call_center.softphone import SoftphoneCallEvent, SoftphoneEventKind, apply_softphone_event
from services.call_center.stale_calls import close_open_calls_for_agent
from services.errors import DomainError
from services.models import Call, CallCreate, CallDirection, CallStatsDay, CallStatsHour, CallStatus, CallUpdate, Role, Tenant, User
from services.models.call_stats import CALL_FIGURES, ROLLUP_FIGURES
from services.models.call_stats_triggers import rebuild_sql
from services.pbx import ledger
from services.pbx.records import CdrRecord, LegDirection, LegDisposition
from tests import factories as f
from tests.conftest import POSTGRES_URL, _truncate_all

IN, OUT = CallDirection.INBOUND, CallDirection.OUTBOUND
# Around New York's spring-forward (2026-03-08 07:00 UTC), not far from now.
T0 = datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc)
ZONES = ("Asia/Kolkata", "America/New_York", "Asia/Kathmandu", "Asia/Riyadh")
_table = CallStatsHour.__table__
_days = CallStatsDay.__table__


def _nonzero_rows(session: Session) -> dict[tuple, tuple]:
    """Both rollup tables' figures that count something, keyed by (table, firm, time, agent),
    each key's shards summed."""
    out = {}
    for table, names in ((_table, ROLLUP_FIGURES), (_days, CALL_FIGURES)):
        slot = table.c.hour_start if table is _table else table.c.day_start
        key = (table.c.tenant_id, slot, table.c.agent_key)
        rows = session.execute(sa.select(*key, *(sa.func.sum(table.c[n]) for n in names)).group_by(*key)).all()
        out.update({(table.name, *r[:3]): tuple(int(v) for v in r[3:]) for r in rows if any(r[3:])})
    return out


def assert_rollups_equal_a_rebuild(session: Session) -> None:
    session.flush()
    kept = _nonzero_rows(session)
    nested = session.begin_nested()
    session.execute(sa.delete(_table))
    session.execute(sa.delete(_days))
    for statement in rebuild_sql(session.get_bind().dialect.name):
        session.execute(sa.text(statement))
    rebuilt = _nonzero_rows(session)
    nested.rollback()
    assert kept == rebuilt
    assert min((v for r in kept.values() for v in r), default=0) >= 0


def raw_stats(session: Session, **kw):
    with pytest.MonkeyPatch.context() as m:
        m.setattr(stats_module, "_rollup_span", lambda start, end: (start, start))
        return get_stats(session=session, **kw)


def assert_stats_equal_raw(session: Session, firm: SimpleNamespace, rng: random.Random) -> None:
    tz = ZoneInfo(firm.tenant.timezone)
    local_day = datetime(2026, 3, 8, tzinfo=tz)
    periods = [
        {"date_from": local_day, "date_to": local_day + timedelta(days=1)},
        {"date_from": local_day - timedelta(days=2), "date_to": local_day + timedelta(days=3)},
        {"date_from": T0 - timedelta(hours=30, minutes=7), "date_to": T0 + timedelta(hours=41, minutes=3)},
        {"date_from": T0 + timedelta(minutes=rng.randrange(-3000, 3000)), "date_to": T0 + timedelta(minutes=3001 + rng.randrange(2000))},
    ]
    alive = [a for a in firm.agents if session.get(User, a.user_id) is not None]
    for period in periods:
        for actor in (firm.manager, *alive[:1]):
            for threshold in (20, rng.choice((0, 7, 45))):
                kw = {"tenant_id": firm.tenant.id, "actor": actor, "service_level_threshold_s": threshold, **period}
                assert get_stats(session=session, **kw) == raw_stats(session, **kw), (firm.tenant.timezone, period, threshold)


class Writers:
    """Every writer of calls and legs, with random arguments that are mostly valid."""

    def __init__(self, session: Session, rng: random.Random, firm: SimpleNamespace) -> None:
        self.s, self.rng, self.firm = session, rng, firm
        self.sip = 0
        self.linked: dict[str, list[CdrRecord]] = {}
        self.position = 0

    # -- helpers
    def when(self) -> datetime:
        moment = T0 + timedelta(seconds=self.rng.randrange(-40 * 3600, 40 * 3600))
        if self.rng.random() < 0.15:  # on an hour boundary, or its last microsecond
            moment = moment.replace(minute=0, second=0, microsecond=0) - timedelta(microseconds=self.rng.choice((0, 1)))
        return moment

    def agent(self):
        alive = [a for a in self.firm.agents if self.s.get(User, a.user_id) is not None]
        return self.rng.choice(alive) if alive else None

    def calls(self, *statuses: CallStatus) -> list[Call]:
        query = sa.select(Call).where(Call.tenant_id == self.firm.tenant.id)
        if statuses:
            query = query.where(Call.status.in_(statuses))
        return list(self.s.execute(query.order_by(Call.id)).scalars())

    # -- the writers
    def log(self) -> None:
        agent = self.agent()
        if agent is None:
            return
        self.sip += 1
        status = self.rng.choice([CallStatus.RINGING, CallStatus.COMPLETED, CallStatus.MISSED, CallStatus.ANSWERED, CallStatus.NO_ANSWER])
        repeat = self.rng.random() < 0.2 and self.sip > 1
        sip = f"sip-{self.rng.randrange(1, self.sip)}" if repeat else f"sip-{self.sip}"
        actor, for_agent = (self.firm.manager, agent.user_id) if self.rng.random() < 0.3 else (agent, None)
        log_call(session=self.s, tenant_id=self.firm.tenant.id, actor=actor, data=CallCreate(
            direction=self.rng.choice((IN, OUT)), remote_number="0501234567", status=status, started_at=self.when(),
            sip_call_id=sip, agent_user_id=for_agent,
        ))

    def update(self) -> None:
        open_calls = self.calls(CallStatus.RINGING, CallStatus.ANSWERED)
        if not open_calls:
            return
        call = self.rng.choice(open_calls)
        if call.status is CallStatus.RINGING:
            target = self.rng.choice([CallStatus.ANSWERED, CallStatus.MISSED, CallStatus.REJECTED, CallStatus.BUSY, CallStatus.FAILED])
        else:
            target = self.rng.choice([CallStatus.COMPLETED, CallStatus.FAILED])
        data = CallUpdate(status=target)
        if target is CallStatus.ANSWERED:
            data.answered_at = call.started_at + timedelta(seconds=self.rng.randrange(0, 60))
        else:
            data.ended_at = (call.answered_at or call.started_at) + timedelta(seconds=self.rng.randrange(0, 900))
        update_call_status(session=self.s, tenant_id=self.firm.tenant.id, actor=self.firm.manager, call_id=call.id, data=data)

    def answered_elsewhere(self) -> None:
        missed = self.calls(CallStatus.MISSED)
        if missed:
            call = self.rng.choice(missed)
            answered_on_another_phone(session=self.s, tenant_id=self.firm.tenant.id, actor=self.firm.manager, call_id=call.id,
                                      answered_at=call.started_at + timedelta(seconds=self.rng.randrange(1, 40)))

    def softphone(self) -> None:
        agent = self.agent()
        if agent is None:
            return
        sip = f"phone-{self.rng.randrange(12)}"
        start = T0 + timedelta(minutes=self.rng.randrange(-600, 600))
        kind = self.rng.choice(list(SoftphoneEventKind))
        at = start + timedelta(seconds=self.rng.randrange(0, 600))
        apply_softphone_event(
            session=self.s, tenant_id=self.firm.tenant.id, actor=agent, extension=self.firm.extensions[agent.user_id],
            event=SoftphoneCallEvent(
                kind=kind, sip_call_id=sip, direction=self.rng.choice((IN, OUT)), remote_number="0501234567", at=at,
                started_at=start, cause=self.rng.choice((None, "Canceled", "Busy", "No Answer")),
                answered_at=start + timedelta(seconds=5) if kind is SoftphoneEventKind.ACCEPTED and self.rng.random() < 0.5 else None,
            ),
        )

    def pbx(self) -> None:
        """A batch of the PBX's legs: new calls, more legs of known ones, records read again
        with other figures (a call moving hour, a leg moving agent)."""
        records: list[CdrRecord] = []
        for _ in range(self.rng.randrange(1, 4)):
            if self.linked and self.rng.random() < 0.4:
                linked_id = self.rng.choice(sorted(self.linked))
            else:
                linked_id = f"L{len(self.linked) + 1}"
                self.linked[linked_id] = []
            start = self.when()
            for _ in range(self.rng.randrange(1, 3)):
                self.position += 1
                old = self.linked[linked_id]
                unique_id = self.rng.choice(old).unique_id if old and self.rng.random() < 0.3 else f"{linked_id}-{self.position}"
                answered = start + timedelta(seconds=self.rng.randrange(0, 30)) if self.rng.random() < 0.6 else None
                ended = (answered or start) + timedelta(seconds=self.rng.randrange(1, 600))
                extension = self.rng.choice([*self.firm.extensions.values(), None])
                record = CdrRecord(
                    position=self.position, unique_id=unique_id, linked_id=linked_id,
                    direction=self.rng.choice(list(LegDirection)), remote_number="+966501234567", extension=extension,
                    started_at=start, answered_at=answered, ended_at=ended,
                    disposition=LegDisposition.ANSWERED if answered else self.rng.choice(list(LegDisposition)[1:]),
                    sip_call_id=f"phone-{self.rng.randrange(12)}" if self.rng.random() < 0.3 else None,
                )
                old.append(record)
                records.append(record)
        ledger.ingest(session=self.s, tenant_id=self.firm.tenant.id, records=records)

    def stale(self) -> None:
        if self.rng.random() < 0.5:
            close_stale_calls(session=self.s, tenant_id=self.firm.tenant.id, now=T0 + timedelta(days=self.rng.randrange(0, 3)))
        elif (agent := self.agent()) is not None:
            close_open_calls_for_agent(session=self.s, tenant_id=self.firm.tenant.id, user_id=agent.user_id, before=self.when())

    def delete(self) -> None:
        calls = self.calls()
        if calls:
            delete_call(session=self.s, tenant_id=self.firm.tenant.id, actor=self.firm.admin, call_id=self.rng.choice(calls).id)

    def note(self) -> None:
        calls = self.calls()
        if calls:
            add_notes(session=self.s, tenant_id=self.firm.tenant.id, actor=self.firm.manager, call_id=self.rng.choice(calls).id, note="n")

    def bulk(self) -> None:
        """Past the services, as a migration or an import would: some calls move by hours."""
        shift = timedelta(minutes=self.rng.choice((-95, -30, 17, 60, 125)))
        rows = [{"b_id": c.id, "b_start": c.started_at + shift} for c in self.calls() if self.rng.random() < 0.3]
        if rows:
            table = Call.__table__
            self.s.execute(sa.update(table).where(table.c.id == sa.bindparam("b_id")).values(started_at=sa.bindparam("b_start")), rows)
            self.s.expire_all()

    def delete_agent(self) -> None:
        if self.rng.random() < 0.3 and (agent := self.agent()) is not None:
            self.s.execute(sa.delete(User).where(User.id == agent.user_id))
            self.s.expire_all()


WRITES = ("log", "log", "update", "update", "answered_elsewhere", "softphone", "softphone", "pbx", "pbx", "stale",
          "delete", "note", "bulk", "delete_agent")


def _firm(session: Session, zone: str) -> SimpleNamespace:
    tenant = f.make_tenant(session, timezone=zone)
    users = [f.make_user(session, tenant, Role.AGENT) for _ in range(3)]
    extensions = {u.id: f.make_extension(session, u, extension=str(1001 + i)).extension for i, u in enumerate(users)}
    return SimpleNamespace(
        tenant=tenant, agents=[f.principal_of(u) for u in users], extensions=extensions,
        manager=f.principal_of(f.make_user(session, tenant, Role.MANAGER)),
        admin=f.principal_of(f.make_user(session, tenant, Role.ADMIN)),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_equal_the_calls_after_random_writes(session: Session, seed: int) -> None:
    rng = random.Random(seed)
    firm = _firm(session, ZONES[seed % len(ZONES)])
    doomed = _firm(session, ZONES[(seed + 1) % len(ZONES)])  # a firm deleted along the way
    writers = [Writers(session, rng, firm), Writers(session, rng, doomed)]
    refused = 0
    done: dict[str, int] = {}
    for step in range(120):
        writer = writers[0] if rng.random() < 0.8 or writers[1] is None else writers[1]
        name = rng.choice(WRITES)
        nested = session.begin_nested()
        try:
            getattr(writer, name)()
            session.flush()
        except DomainError:
            nested.rollback()
            refused += 1
        else:
            nested.commit()
            done[name] = done.get(name, 0) + 1
        if step == 60 and writers[1] is not None:
            assert session.execute(sa.select(sa.func.count()).select_from(_table).where(_table.c.tenant_id == doomed.tenant.id)).scalar_one()
            session.execute(sa.delete(Tenant).where(Tenant.id == doomed.tenant.id))
            session.expire_all()
            writers[1] = None
            for table in (_table, _days):
                assert not session.execute(sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == doomed.tenant.id)).scalar_one()
        if step % 20 == 19:
            assert_rollups_equal_a_rebuild(session)
            assert_stats_equal_raw(session, firm, rng)
    assert_rollups_equal_a_rebuild(session)
    assert_stats_equal_raw(session, firm, rng)
    calls = session.execute(sa.select(sa.func.count()).select_from(Call).where(Call.tenant_id == firm.tenant.id)).scalar_one()
    # Every writer ran, and the firm has calls of every kind to count.
    assert set(done) == set(WRITES), (done, refused)
    assert calls > 20


def test_the_check_fails_on_a_wrong_rollup(session: Session) -> None:
    """The comparison above would see a trigger that missed a change."""
    firm = _firm(session, "Asia/Kolkata")
    log_call(session=session, tenant_id=firm.tenant.id, actor=firm.agents[0],
             data=CallCreate(direction=IN, remote_number="0501234567", started_at=T0 + timedelta(minutes=40), status=CallStatus.COMPLETED))
    session.flush()
    assert_rollups_equal_a_rebuild(session)
    assert_stats_equal_raw(session, firm, random.Random(1))
    for table in (_table, _days):
        nested = session.begin_nested()
        session.execute(sa.update(table).values(answered=table.c.answered + 1))
        with pytest.raises(AssertionError):
            assert_rollups_equal_a_rebuild(session)
        with pytest.raises(AssertionError):
            assert_stats_equal_raw(session, firm, random.Random(1))
        nested.rollback()


@pytest.mark.skipif(not POSTGRES_URL, reason="WATHEEQ_TEST_POSTGRES_URL is not set")
def test_connections_logging_one_agents_calls_at_once_never_wait_for_each_other(_postgres_engine) -> None:
    """PostgreSQL: a trigger adds to a shard of the agent's hour and day that no other
    transaction holds, so a transaction logging a call never waits for another's commit (it
    did, for that row's lock, whenever two connections' process ids fell in one shard); a key
    gets only as many rows as transactions wrote it at once; the shards' sums still equal the
    calls, whichever connection changes a call."""
    engine = _postgres_engine
    _truncate_all(engine)
    with Session(engine, expire_on_commit=False) as setup:
        firm = _firm(setup, "Asia/Riyadh")
        setup.commit()
    agent = firm.agents[0]
    held = [Session(bind=engine.connect(), expire_on_commit=False) for _ in range(3)]

    def logged(s: Session, minute: int, status: CallStatus) -> int:
        # Numbers of their own: two transactions adding one new number to number search's
        # dictionary do wait for each other (that row is one).
        call = log_call(session=s, tenant_id=firm.tenant.id, actor=agent,
                        data=CallCreate(direction=IN, remote_number=f"05012345{minute:02d}", started_at=T0 + timedelta(minutes=minute), status=status))
        s.flush()
        return call.id

    def rows() -> int:
        with Session(engine) as reader:
            return reader.execute(sa.select(sa.func.count()).select_from(_table).where(_table.c.tenant_id == firm.tenant.id)).scalar_one()

    try:
        first_call = logged(held[0], 5, CallStatus.RINGING)  # its transaction stays open
        for n, s in enumerate(held[1:], start=1):
            # The same agent, hour and day while the others' transactions hold their rows: no wait.
            s.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            logged(s, 5 + n, CallStatus.COMPLETED)
        for s in held:
            s.commit()
        # Three transactions at once: three rows of the (hour, agent); one at a time after
        # that, from any connection, adds to those rows (none locked) and makes no new one.
        assert rows() == 3
        for minute in range(20, 25):
            with Session(engine) as s:
                logged(s, minute, CallStatus.MISSED)
                s.commit()
        assert rows() == 3
        # A call changed by another connection: its old share leaves whichever row that one takes.
        update_call_status(session=held[2], tenant_id=firm.tenant.id, actor=agent, call_id=first_call,
                           data=CallUpdate(status=CallStatus.ANSWERED, answered_at=T0 + timedelta(minutes=5, seconds=7)))
        held[2].commit()
    finally:
        for s in held:
            bind = s.get_bind()
            s.close()
            bind.close()
    with Session(engine, expire_on_commit=False) as session:
        assert_rollups_equal_a_rebuild(session)
        assert_stats_equal_raw(session, firm, random.Random(4))
        stats = get_stats(session=session, tenant_id=firm.tenant.id, actor=firm.manager,
                          date_from=T0 - timedelta(hours=1), date_to=T0 + timedelta(hours=2))
        assert (stats.total, stats.answered, stats.missed) == (8, 3, 5)
