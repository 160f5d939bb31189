"""Call statistics on hand-made data; every expected figure is worked out in the test."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from services.call_center import close_stale_calls, get_stats, log_call, update_call_status
from services.call_center import stats as stats_module
from services.errors import Forbidden, Invalid
from services.models import (
    Call,
    CallCreate,
    CallDirection,
    CallStatsHour,
    CallStatus,
    CallUpdate,
    Role,
    User,
)
from tests import factories as f

IN, OUT = CallDirection.INBOUND, CallDirection.OUTBOUND
RIYADH = ZoneInfo("Asia/Riyadh")


def _call(session, tenant, agent, direction, status, local_start: datetime, *, ring=None, talk=None):
    started = local_start.astimezone(timezone.utc)
    answered = started + timedelta(seconds=ring) if talk is not None else None
    f.make_call(
        session, tenant, agent=agent, direction=direction, status=status, started_at=started, answered_at=answered,
        ended_at=(answered + timedelta(seconds=talk)) if answered else None, ring_seconds=ring, talk_seconds=talk,
    )


@pytest.fixture
def day(session: Session) -> SimpleNamespace:
    """One Riyadh day (2026-03-10, UTC+3) of a firm with two agents, plus noise around it."""
    tenant = f.make_tenant(session, timezone="Asia/Riyadh")
    amal = f.principal_of(f.make_user(session, tenant, Role.AGENT, full_name="Amal"))
    badr = f.principal_of(f.make_user(session, tenant, Role.AGENT, full_name="Badr"))
    manager = f.principal_of(f.make_user(session, tenant, Role.MANAGER))
    other = f.make_tenant(session)
    stranger = f.principal_of(f.make_user(session, other, Role.AGENT))

    def at(h, m, d=10):
        return datetime(2026, 3, d, h, m, tzinfo=RIYADH)

    _call(session, tenant, amal, IN, CallStatus.COMPLETED, at(9, 0), ring=10, talk=100)
    _call(session, tenant, amal, IN, CallStatus.COMPLETED, at(9, 30), ring=30, talk=200)
    _call(session, tenant, badr, IN, CallStatus.MISSED, at(10, 15), ring=25)
    _call(session, tenant, badr, OUT, CallStatus.COMPLETED, at(10, 45), ring=5, talk=60)
    _call(session, tenant, amal, OUT, CallStatus.NO_ANSWER, at(23, 30), ring=40)
    _call(session, tenant, badr, IN, CallStatus.RINGING, at(23, 50))          # offered, not (yet) missed
    _call(session, tenant, badr, IN, CallStatus.REJECTED, at(0, 10), ring=3)  # 21:10 UTC the day before
    _call(session, tenant, amal, IN, CallStatus.COMPLETED, at(23, 59, d=9), ring=1, talk=1)  # the day before
    _call(session, tenant, amal, IN, CallStatus.COMPLETED, at(0, 0, d=11), ring=1, talk=1)   # the day after
    _call(session, other, stranger, IN, CallStatus.COMPLETED, at(9, 0), ring=1, talk=1)      # another firm
    session.flush()
    return SimpleNamespace(tenant=tenant, amal=amal, badr=badr, manager=manager, start=at(0, 0), end=at(0, 0, d=11))


def _stats(session, day, actor=None, **kw):
    kw.setdefault("date_from", day.start)
    kw.setdefault("date_to", day.end)
    return get_stats(session=session, tenant_id=day.tenant.id, actor=actor or day.manager, **kw)


def test_totals_and_rates_of_a_day(session, day):
    s = _stats(session, day)
    # Seven calls start in the day: Amal 09:00, 09:30, 23:30; Badr 00:10, 10:15, 10:45, 23:50.
    assert (s.total, s.inbound, s.outbound) == (7, 5, 2)
    assert s.answered == 3          # 09:00, 09:30 inbound and 10:45 outbound
    assert s.missed == 2            # 10:15 MISSED and 00:10 REJECTED; 23:50 still rings
    assert s.answer_rate == pytest.approx(2 / 5)
    assert s.service_level == pytest.approx(1 / 5)  # only the 10 s ring is within 20 s
    assert s.service_level_threshold_seconds == 20
    assert s.average_speed_of_answer == pytest.approx((10 + 30) / 2)
    assert s.average_talk_time == pytest.approx((100 + 200 + 60) / 3)
    assert s.average_handle_time == pytest.approx(120)
    assert s.timezone == "Asia/Riyadh"
    assert (s.date_from, s.date_to) == (day.start, day.end)


def test_service_level_follows_the_threshold(session, day):
    assert _stats(session, day, service_level_threshold_s=30).service_level == pytest.approx(2 / 5)
    assert _stats(session, day, service_level_threshold_s=9).service_level == pytest.approx(0)


def test_per_agent_breakdown(session, day):
    by_name = {a.agent_name: a for a in _stats(session, day).per_agent}
    amal, badr = by_name["Amal"], by_name["Badr"]
    assert (amal.total, amal.inbound, amal.outbound, amal.answered, amal.missed) == (3, 2, 1, 2, 0)
    assert (amal.talk_seconds, amal.average_talk_seconds) == (300, 150)
    assert (badr.total, badr.inbound, badr.outbound, badr.answered, badr.missed) == (4, 3, 1, 1, 2)
    assert (badr.talk_seconds, badr.average_talk_seconds) == (60, 60)
    assert [a.agent_name for a in _stats(session, day).per_agent] == ["Badr", "Amal"]  # busiest first


def test_calls_per_hour_are_in_the_firms_time_zone(session, day):
    hours = {h.hour: (h.total, h.answered, h.missed) for h in _stats(session, day).per_hour}
    assert len(hours) == 24
    assert hours[0] == (1, 0, 1)    # 00:10 local is 21:10 UTC of the day before
    assert hours[9] == (2, 2, 0)
    assert hours[10] == (2, 1, 1)
    assert hours[23] == (2, 0, 0)
    assert sum(t for t, _, _ in hours.values()) == 7


def test_calls_per_day_cover_every_day_of_the_period(session, day):
    s = _stats(session, day, date_from=day.start - timedelta(days=1), date_to=day.end + timedelta(days=1))
    assert [(d.day, d.total, d.answered, d.missed) for d in s.per_day] == [
        ("2026-03-09", 1, 1, 0),
        ("2026-03-10", 7, 3, 2),
        ("2026-03-11", 1, 1, 0),
    ]


def test_an_agent_sees_only_their_own_figures(session, day):
    s = _stats(session, day, actor=day.amal)
    assert (s.total, s.inbound, s.answered, s.missed) == (3, 2, 2, 0)
    assert [a.agent_name for a in s.per_agent] == ["Amal"]
    assert s.answer_rate == 1.0 and s.average_speed_of_answer == pytest.approx(20)


def test_other_firms_are_not_counted_and_cannot_be_asked(session, day):
    other = f.make_tenant(session)
    outsider = f.principal_of(f.make_user(session, other, Role.MANAGER))
    assert get_stats(session=session, tenant_id=other.id, actor=outsider, date_from=day.start, date_to=day.end).total == 0
    with pytest.raises(Forbidden):
        get_stats(session=session, tenant_id=day.tenant.id, actor=outsider, date_from=day.start, date_to=day.end)


def test_an_empty_period_has_no_rates(session, day):
    s = _stats(session, day, date_from=day.start + timedelta(days=30), date_to=day.end + timedelta(days=30))
    assert (s.total, s.answer_rate, s.service_level, s.average_speed_of_answer, s.average_talk_time) == (0, None, None, None, None)
    assert s.per_agent == [] and all(h.total == 0 for h in s.per_hour)


def test_the_default_period_is_today_in_the_firms_time_zone(session):
    tenant = f.make_tenant(session, timezone="Asia/Riyadh")
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    log_call(session=session, tenant_id=tenant.id, actor=agent, data=CallCreate(direction=IN, remote_number="1002"))
    log_call(
        session=session, tenant_id=tenant.id, actor=agent,
        data=CallCreate(direction=IN, remote_number="1002", started_at=datetime.now(timezone.utc) - timedelta(days=2)),
    )
    s = get_stats(session=session, tenant_id=tenant.id, actor=agent)
    today = datetime.now(RIYADH).date()
    assert s.total == 1
    assert s.date_from == datetime(today.year, today.month, today.day, tzinfo=RIYADH)
    assert s.date_to - s.date_from == timedelta(days=1)
    assert [d.day for d in s.per_day] == [today.isoformat()]


def test_hours_of_a_half_hour_zone_are_local_hours(session):
    tenant = f.make_tenant(session, timezone="Asia/Kolkata")  # UTC+05:30
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    utc = lambda h, m: datetime(2026, 3, 10, h, m, tzinfo=timezone.utc)  # noqa: E731
    for start in (utc(3, 45), utc(4, 15), utc(4, 35)):  # 09:15, 09:45 and 10:05 in Kolkata
        _call(session, tenant, agent, IN, CallStatus.MISSED, start, ring=5)
    session.flush()
    s = get_stats(session=session, tenant_id=tenant.id, actor=agent, date_from=utc(0, 0) - timedelta(hours=5, minutes=30), date_to=utc(0, 0) + timedelta(hours=18, minutes=30))
    hours = {h.hour: h.total for h in s.per_hour if h.total}
    assert hours == {9: 2, 10: 1}


def test_hours_across_a_daylight_saving_change(session):
    berlin = ZoneInfo("Europe/Berlin")  # 2026-03-29 02:00 CET becomes 03:00 CEST
    tenant = f.make_tenant(session, timezone="Europe/Berlin")
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    _call(session, tenant, agent, IN, CallStatus.MISSED, datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc), ring=5)  # 01:30 CET
    _call(session, tenant, agent, IN, CallStatus.MISSED, datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc), ring=5)  # 03:30 CEST
    _call(session, tenant, agent, IN, CallStatus.MISSED, datetime(2026, 3, 29, 21, 59, tzinfo=timezone.utc), ring=5)  # 23:59 CEST
    session.flush()
    s = get_stats(
        session=session, tenant_id=tenant.id, actor=agent,
        date_from=datetime(2026, 3, 29, tzinfo=berlin), date_to=datetime(2026, 3, 30, tzinfo=berlin),
    )
    assert s.date_to - s.date_from == timedelta(hours=23)
    assert {h.hour: h.total for h in s.per_hour if h.total} == {1: 1, 3: 1, 23: 1}
    assert [(d.day, d.total) for d in s.per_day] == [("2026-03-29", 3)]


@pytest.mark.parametrize(("kw", "field"), [
    ({"date_from": datetime(2026, 3, 10, tzinfo=timezone.utc), "date_to": datetime(2026, 3, 10, tzinfo=timezone.utc)}, "date_from"),
    ({"date_from": datetime(2026, 3, 11, tzinfo=timezone.utc), "date_to": datetime(2026, 3, 10, tzinfo=timezone.utc)}, "date_from"),
    ({"date_from": datetime(2025, 1, 1, tzinfo=timezone.utc), "date_to": datetime(2026, 3, 10, tzinfo=timezone.utc)}, "date_to"),
    ({"date_from": datetime(2026, 3, 10), "date_to": datetime(2026, 3, 11, tzinfo=timezone.utc)}, "date_from"),
    ({"service_level_threshold_s": -1}, "service_level_threshold_s"),
])
def test_bad_periods_are_invalid(session, day, kw, field):
    with pytest.raises(Invalid) as err:
        get_stats(session=session, tenant_id=day.tenant.id, actor=day.manager, **kw)
    assert err.value.field == field


def test_a_full_year_is_allowed(session, day):
    s = _stats(session, day, date_from=day.start - timedelta(days=365), date_to=day.end)
    assert s.total == 8 and len(s.per_day) == 366


# --------------------------------------------------------------------------- hourly rollups

NEW_YORK = ZoneInfo("America/New_York")  # 2026-03-08 02:00 EST becomes 03:00 EDT


def _raw_stats(session, monkeypatch, **kw):
    """The same request with no hour read from the rollups, so every figure comes from the calls."""
    with monkeypatch.context() as m:
        m.setattr(stats_module, "_rollup_span", lambda start, end: (start, start))
        return get_stats(session=session, **kw)


def _random_calls(session, rng, tenant, agents, around: list[datetime], hours: int) -> None:
    statuses = list(CallStatus)
    rows = []
    for _ in range(500):
        base = rng.choice(around)
        started = base + timedelta(seconds=rng.randrange(-hours * 3600, hours * 3600))
        if rng.random() < 0.15:  # exactly on an hour boundary, or its last microsecond
            started = started.replace(minute=0, second=0, microsecond=0) - timedelta(microseconds=rng.choice((0, 1)))
        status = rng.choice(statuses)
        answered = status in (CallStatus.ANSWERED, CallStatus.COMPLETED) or (status == CallStatus.FAILED and rng.random() < 0.3)
        ring = rng.choice((None, rng.randrange(0, 60), 20, 21)) if status != CallStatus.RINGING else None
        talk = rng.randrange(0, 900) if answered and status != CallStatus.ANSWERED and rng.random() < 0.9 else None
        agent = rng.choice(agents)
        rows.append(
            Call(
                tenant_id=tenant.id, agent_user_id=agent.user_id if agent else None, direction=rng.choice((IN, OUT)),
                status=status, remote_number="0501234567", started_at=started,
                answered_at=started + timedelta(seconds=ring or 0) if answered else None,
                ring_seconds=ring, talk_seconds=talk,
            )
        )
    session.add_all(rows)
    session.flush()


def test_rolled_up_figures_equal_the_raw_figures_on_random_calls(session, monkeypatch):
    rng = random.Random(20261125)
    now = datetime.now(timezone.utc)
    spring_forward = datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc)
    firms = []
    for zone in ("Asia/Riyadh", "Asia/Kolkata", "America/New_York", "UTC"):
        tenant = f.make_tenant(session, timezone=zone)
        agents = [f.principal_of(f.make_user(session, tenant, Role.AGENT)) for _ in range(3)]
        manager = f.principal_of(f.make_user(session, tenant, Role.MANAGER))
        # Around a DST change long sealed, and the last two days up to now (unsealed hours, edges).
        _random_calls(session, rng, tenant, [*agents, None], [spring_forward, now - timedelta(days=1)], 30)
        firms.append((tenant, manager, agents))

    def periods(tz: ZoneInfo) -> list[dict]:
        local_day = datetime(2026, 3, 8, tzinfo=tz)
        chosen = [
            {"date_from": local_day, "date_to": local_day + timedelta(days=1)},
            {"date_from": local_day - timedelta(days=1), "date_to": local_day + timedelta(days=2)},
            {"date_from": now - timedelta(days=3), "date_to": now},
            {"date_from": now - timedelta(hours=7, minutes=13), "date_to": now + timedelta(minutes=1)},
            {},
        ]
        for _ in range(6):
            a = spring_forward + timedelta(minutes=rng.randrange(-40 * 60, 40 * 60))
            chosen.append({"date_from": a, "date_to": a + timedelta(minutes=rng.randrange(1, 60 * 60))})
            b = now - timedelta(minutes=rng.randrange(0, 60 * 60))
            chosen.append({"date_from": b - timedelta(minutes=rng.randrange(1, 60 * 50)), "date_to": b})
        return chosen

    compared = 0
    for tenant, manager, agents in firms:
        for period in periods(ZoneInfo(tenant.timezone)):
            for actor in (manager, agents[0]):
                for threshold in (20, 0, 21):
                    kw = {"tenant_id": tenant.id, "actor": actor, "service_level_threshold_s": threshold, **period}
                    rolled = get_stats(session=session, **kw)
                    assert rolled == _raw_stats(session, monkeypatch, **kw), (tenant.timezone, period, threshold)
                    compared += 1
    assert compared == 4 * 17 * 2 * 3
    assert session.execute(sa.select(sa.func.count()).select_from(CallStatsHour)).scalar_one() > 100


@pytest.fixture
def sealed(session: Session) -> SimpleNamespace:
    """A firm with one inbound call ringing since three days ago, and its day's stats."""
    tenant = f.make_tenant(session, timezone="Asia/Riyadh")
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT, full_name="Amal"))
    manager = f.principal_of(f.make_user(session, tenant, Role.MANAGER))
    started = (datetime.now(timezone.utc) - timedelta(days=3)).replace(minute=10, second=0, microsecond=0)
    call = log_call(
        session=session, tenant_id=tenant.id, actor=agent,
        data=CallCreate(direction=IN, remote_number="0501234567", started_at=started, sip_call_id="late-1"),
    )
    period = {"date_from": started - timedelta(days=1), "date_to": started + timedelta(days=1)}
    ns = SimpleNamespace(tenant=tenant, agent=agent, manager=manager, call=call, started=started, period=period)
    ns.stats = lambda: get_stats(session=session, tenant_id=tenant.id, actor=manager, **period)
    return ns


def _rollup_rows(session, tenant_id) -> dict[tuple[datetime, int], tuple[int, int, int]]:
    """(hour, agent) → (total, answered, missed) of the firm's rollup rows that count a call."""
    t = CallStatsHour.__table__
    rows = session.execute(
        sa.select(t.c.hour_start, t.c.agent_key, sa.func.sum(t.c.total), sa.func.sum(t.c.answered), sa.func.sum(t.c.missed))
        .where(t.c.tenant_id == tenant_id).group_by(t.c.hour_start, t.c.agent_key)
    )
    return {(h, a): (int(t), int(ans), int(m)) for h, a, t, ans, m in rows if t}


def test_a_late_update_of_an_old_call_changes_its_rolled_up_stats(session, sealed, monkeypatch):
    before = sealed.stats()
    assert (before.total, before.answered, before.missed) == (1, 0, 0)
    hour = sealed.started.replace(minute=0)
    assert _rollup_rows(session, sealed.tenant.id) == {(hour, sealed.agent.user_id): (1, 0, 0)}

    update_call_status(
        session=session, tenant_id=sealed.tenant.id, actor=sealed.agent, call_id=sealed.call.id,
        data=CallUpdate(status=CallStatus.ANSWERED, answered_at=sealed.started + timedelta(seconds=8)),
    )
    assert _rollup_rows(session, sealed.tenant.id) == {(hour, sealed.agent.user_id): (1, 1, 0)}
    after = sealed.stats()
    assert (after.answered, after.answer_rate, after.service_level, after.average_speed_of_answer) == (1, 1.0, 1.0, 8)

    update_call_status(
        session=session, tenant_id=sealed.tenant.id, actor=sealed.agent, call_id=sealed.call.id,
        data=CallUpdate(status=CallStatus.COMPLETED, ended_at=sealed.started + timedelta(seconds=68)),
    )
    final = sealed.stats()
    assert (final.average_talk_time, final.per_agent[0].talk_seconds) == (60, 60)
    assert final == _raw_stats(session, monkeypatch, tenant_id=sealed.tenant.id, actor=sealed.manager, **sealed.period)


def test_a_late_change_changes_only_its_own_hour(session, sealed):
    log_call(
        session=session, tenant_id=sealed.tenant.id, actor=sealed.agent,
        data=CallCreate(direction=OUT, remote_number="0501234567", started_at=sealed.started + timedelta(hours=2)),
    )
    before = _rollup_rows(session, sealed.tenant.id)
    update_call_status(
        session=session, tenant_id=sealed.tenant.id, actor=sealed.agent, call_id=sealed.call.id,
        data=CallUpdate(status=CallStatus.MISSED),
    )
    assert sealed.stats().missed == 1
    after = _rollup_rows(session, sealed.tenant.id)
    changed_hour, other_hour = sealed.started.replace(minute=0), sealed.started.replace(minute=0) + timedelta(hours=2)
    key, other = (changed_hour, sealed.agent.user_id), (other_hour, sealed.agent.user_id)
    assert after[other] == before[other] == (1, 0, 0)
    assert (before[key], after[key]) == ((1, 0, 0), (1, 0, 1))


def test_logging_an_old_call_late_and_closing_stale_ones_change_rolled_up_stats(session, sealed, monkeypatch):
    assert sealed.stats().total == 1
    log_call(
        session=session, tenant_id=sealed.tenant.id, actor=sealed.agent,
        data=CallCreate(direction=OUT, remote_number="0501234567", started_at=sealed.started + timedelta(minutes=5), status=CallStatus.COMPLETED),
    )
    assert (sealed.stats().total, sealed.stats().outbound) == (2, 1)
    # A repeated event of the old ringing call moves it on, which also counts.
    log_call(
        session=session, tenant_id=sealed.tenant.id, actor=sealed.agent,
        data=CallCreate(direction=IN, remote_number="0501234567", sip_call_id="late-1", status=CallStatus.MISSED),
    )
    assert sealed.stats().missed == 1
    assert sealed.stats() == _raw_stats(session, monkeypatch, tenant_id=sealed.tenant.id, actor=sealed.manager, **sealed.period)


def test_closing_a_stale_old_call_counts_it_as_missed(session, sealed):
    assert sealed.stats().missed == 0
    session.execute(sa.update(Call).where(Call.id == sealed.call.id).values(updated_at=sealed.started))
    assert close_stale_calls(session=session, tenant_id=sealed.tenant.id) == 1
    assert sealed.stats().missed == 1


def test_a_call_of_this_hour_is_in_the_rollups_at_once(session):
    tenant = f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    call = log_call(session=session, tenant_id=tenant.id, actor=agent, data=CallCreate(direction=IN, remote_number="1002"))
    update_call_status(session=session, tenant_id=tenant.id, actor=agent, call_id=call.id, data=CallUpdate(status=CallStatus.ANSWERED))
    session.flush()
    assert _rollup_rows(session, tenant.id) == {(call.started_at.replace(minute=0, second=0, microsecond=0), agent.user_id): (1, 1, 0)}
    assert get_stats(session=session, tenant_id=tenant.id, actor=agent).answered == 1


def test_a_deleted_agents_rolled_up_calls_count_as_without_agent(session, sealed, monkeypatch):
    sealed.stats()
    session.execute(sa.delete(User).where(User.id == sealed.agent.user_id))
    session.expire_all()
    s = sealed.stats()
    assert [(a.agent_user_id, a.total) for a in s.per_agent] == [(None, 1)]
    assert s == _raw_stats(session, monkeypatch, tenant_id=sealed.tenant.id, actor=sealed.manager, **sealed.period)


def test_rollups_commit_and_roll_back_with_their_calls(engine, session, sealed):
    session.commit()
    period = {"tenant_id": sealed.tenant.id, "actor": sealed.manager, **sealed.period}

    def log(s: Session, minute: int, sip: str) -> None:
        log_call(
            session=s, tenant_id=sealed.tenant.id, actor=sealed.agent,
            data=CallCreate(direction=IN, remote_number="0501234567", started_at=sealed.started + timedelta(minutes=minute), sip_call_id=sip),
        )

    with Session(engine) as first:
        log(first, 1, "tx-rolled-back")
        assert get_stats(session=first, **period).total == 2
        first.rollback()
    with Session(engine) as reader:
        assert get_stats(session=reader, **period).total == 1

    # Two writers of the same hour and agent, both counted. On SQLite the second waits for the
    # first's commit; on PostgreSQL it waits only when both connections add to the same shard
    # of the rollup row (test_stats_rollups: different shards never wait).
    first = Session(engine)
    try:
        log(first, 2, "tx-first")
        done: list[int] = []

        def second_writer() -> None:
            with Session(engine) as second:
                log(second, 3, "tx-second")
                second.commit()
                done.append(1)

        thread = threading.Thread(target=second_writer)
        thread.start()
        thread.join(0.5)
        if engine.dialect.name == "sqlite":
            assert thread.is_alive() and not done
        first.commit()
    finally:
        # Never left open on a failure: the next test's TRUNCATE would wait for it.
        first.close()
    thread.join(10)
    assert done == [1]
    with Session(engine) as reader:
        assert get_stats(session=reader, **period).total == 3
        hour = sealed.started.replace(minute=0)
        assert _rollup_rows(reader, sealed.tenant.id) == {(hour, sealed.agent.user_id): (3, 0, 0)}


def test_many_scattered_hours_changed_in_bulk(session, monkeypatch):
    tenant = f.make_tenant(session, timezone="UTC")
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    first = datetime(2026, 1, 1, tzinfo=timezone.utc)
    starts = [first + timedelta(hours=i) for i in range(0, 2 * 1100, 2)]  # 1,100 separate hours
    for start in starts:
        _call(session, tenant, agent, IN, CallStatus.MISSED, start + timedelta(minutes=5), ring=5)
    session.flush()
    period = {"tenant_id": tenant.id, "actor": agent, "date_from": first, "date_to": first + timedelta(days=100)}
    assert get_stats(session=session, **period).missed == 1100
    # Changed past the services, as a bulk import or a migration would: the triggers follow.
    session.execute(
        sa.update(Call).where(Call.tenant_id == tenant.id).values(status=CallStatus.COMPLETED, answered_at=Call.started_at, talk_seconds=30)
    )
    s = get_stats(session=session, **period)
    assert (s.total, s.answered, s.missed, s.average_talk_time) == (1100, 1100, 0, 30)
    assert s == _raw_stats(session, monkeypatch, **period)
