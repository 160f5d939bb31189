"""services.callbacks and services.business_hours: the queue of missed calls and the firm's hours."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services import business_hours, call_center, callbacks, live
from services.business_hours import BusinessHoursIn
from services.call_center.softphone import SoftphoneCallEvent, SoftphoneEventKind, apply_softphone_event
from services.errors import Conflict, Forbidden, Invalid, NotFound
from services.models import (
    BusinessHours,
    CallbackChannel,
    CallbackMissIn,
    CallbackOutcome,
    CallCreate,
    CallDirection,
    CallStatus,
)
from tests.factories import make_call, make_client, make_firm, make_user, principal_of

RIYADH = ZoneInfo("Asia/Riyadh")


def _missed(session: Session, firm, agent, *, sip: str, number: str = "0501234567", ext: str = "2001", at: datetime | None = None):
    at = at or datetime.now(timezone.utc)
    event = SoftphoneCallEvent(
        kind=SoftphoneEventKind.FAILED, sip_call_id=sip, direction=CallDirection.INBOUND, remote_number=number,
        at=at, started_at=at - timedelta(seconds=20), originator="remote", cause="Canceled",
    )
    return apply_softphone_event(session=session, tenant_id=firm.tenant.id, actor=agent, extension=ext, event=event)


def test_misses_from_one_number_are_one_item_and_ring_group_legs_count_once(session: Session) -> None:
    firm = make_firm(session)
    client = make_client(session, firm.tenant, phone="0501234567")
    call = _missed(session, firm, firm.agent, sip="abc", ext="2001")
    assert call.status == CallStatus.MISSED
    _missed(session, firm, firm.manager, sip="abc", ext="2002")  # the same call rang a second agent
    [item] = callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    assert (item.miss_count, item.number, item.client_name, item.channel) == (1, "+966501234567", client.name, CallbackChannel.CALL)
    _missed(session, firm, firm.agent, sip="def", number="+966 50 123 4567")
    _missed(session, firm, firm.agent, sip="xyz", number="0559999999")
    items = callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    assert [(i.number, i.miss_count) for i in items] == [("+966501234567", 2), ("+966559999999", 1)]


def test_answered_and_outbound_calls_are_not_queued_and_stale_ringing_calls_are(session: Session) -> None:
    firm = make_firm(session)
    call_center.log_call(session=session, tenant_id=firm.tenant.id, actor=firm.agent, data=CallCreate(
        direction=CallDirection.INBOUND, remote_number="0501111111", status=CallStatus.COMPLETED))
    assert callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=firm.agent) == []
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    make_call(session, firm.tenant, agent=firm.agent, status=CallStatus.RINGING, remote_number="0502222222",
              remote_e164="+966502222222", started_at=old, updated_at=old)
    assert call_center.close_stale_calls(session=session, tenant_id=firm.tenant.id) == 1
    [item] = callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    assert item.number == "+966502222222"


def test_claim_link_the_callback_call_and_close(session: Session) -> None:
    firm = make_firm(session)
    seen: list[live.Change] = []
    stop = live.subscribe(seen.append)
    try:
        _missed(session, firm, firm.agent, sip="abc")
        session.commit()
        [item] = callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
        assert ("callbacks", str(item.id)) in [(c.topic, c.ref) for c in seen]
        claimed = callbacks.claim(session=session, tenant_id=firm.tenant.id, actor=firm.agent, callback_id=item.id)
        assert claimed.claimed_by_user_id == firm.agent.user_id and claimed.claimed_by_name
        with pytest.raises(Conflict):
            callbacks.claim(session=session, tenant_id=firm.tenant.id, actor=firm.manager, callback_id=item.id)
        # Another agent's call to the number is not this callback; the claimer's is.
        other = principal_of(make_user(session, firm.tenant))
        call_center.log_call(session=session, tenant_id=firm.tenant.id, actor=other, data=CallCreate(direction=CallDirection.OUTBOUND, remote_number="0501234567"))
        assert callbacks.get_callback(session=session, tenant_id=firm.tenant.id, actor=firm.agent, callback_id=item.id).attempts == 0
        back = call_center.log_call(session=session, tenant_id=firm.tenant.id, actor=firm.agent, data=CallCreate(direction=CallDirection.OUTBOUND, remote_number="+966501234567"))
        linked = callbacks.get_callback(session=session, tenant_id=firm.tenant.id, actor=firm.agent, callback_id=item.id)
        assert (linked.callback_call_id, linked.attempts) == (back.id, 1)
        assert linked.first_callback_at == back.started_at
        with pytest.raises(Conflict):
            callbacks.close(session=session, tenant_id=firm.tenant.id, actor=other, callback_id=item.id, outcome=CallbackOutcome.REACHED)
        done = callbacks.close(session=session, tenant_id=firm.tenant.id, actor=firm.agent, callback_id=item.id, outcome=CallbackOutcome.REACHED)
        assert done.outcome == CallbackOutcome.REACHED and done.closed_at is not None
        with pytest.raises(Conflict):
            callbacks.claim(session=session, tenant_id=firm.tenant.id, actor=other, callback_id=item.id)
        assert callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=firm.agent) == []
        _missed(session, firm, firm.agent, sip="again")
        [fresh] = callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
        assert fresh.id != item.id and fresh.miss_count == 1
    finally:
        stop()


def test_two_agents_claiming_at_once_one_wins(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as session:
        firm = make_firm(session)
        agents = [principal_of(make_user(session, firm.tenant)) for _ in range(2)]
        item = callbacks.record_miss(session=session, tenant_id=firm.tenant.id, actor=firm.agent, data=CallbackMissIn(number="0501234567"))
        session.commit()
    barrier = threading.Barrier(2)
    results: list[str] = []

    def claim(agent) -> None:
        with Session(engine) as s:
            barrier.wait()
            try:
                callbacks.claim(session=s, tenant_id=firm.tenant.id, actor=agent, callback_id=item.id)
                s.commit()
                results.append("won")
            except Conflict:
                s.rollback()
                results.append("lost")

    threads = [threading.Thread(target=claim, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["lost", "won"]


def test_other_firms_items_are_not_found_and_reports_need_a_member(session: Session) -> None:
    firm, other = make_firm(session), make_firm(session)
    item = callbacks.record_miss(session=session, tenant_id=firm.tenant.id, actor=firm.agent, data=CallbackMissIn(number="0501234567", channel=CallbackChannel.WHATSAPP))
    assert item.channel == CallbackChannel.WHATSAPP
    for action in (callbacks.claim, callbacks.get_callback):
        with pytest.raises(NotFound):
            action(session=session, tenant_id=other.tenant.id, actor=other.agent, callback_id=item.id)
    with pytest.raises(NotFound):
        callbacks.close(session=session, tenant_id=other.tenant.id, actor=other.agent, callback_id=item.id, outcome=CallbackOutcome.NO_ANSWER)
    with pytest.raises(Forbidden):
        callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=other.agent)
    assert callbacks.list_callbacks(session=session, tenant_id=other.tenant.id, actor=other.agent) == []
    with pytest.raises(Invalid):
        callbacks.record_miss(session=session, tenant_id=firm.tenant.id, actor=firm.agent, data=CallbackMissIn(number="abc"))


def _riyadh(*args: int) -> datetime:
    return datetime(*args, tzinfo=RIYADH)


def test_business_hours_in_the_firms_zone_across_a_day_boundary_and_holidays() -> None:
    hours = BusinessHours(tenant_id=1, days=[6, 0, 1, 2, 3], opens="09:00", closes="17:00", holidays=["2026-12-02"])
    # 23:30 UTC on Wednesday 2 Dec is 02:30 Thursday in Riyadh: closed; 06:30 UTC is 09:30 there: open.
    assert not business_hours.is_open(hours, RIYADH, datetime(2026, 12, 2, 23, 30, tzinfo=timezone.utc))
    assert business_hours.is_open(hours, RIYADH, datetime(2026, 12, 3, 6, 30, tzinfo=timezone.utc))
    assert not business_hours.is_open(hours, RIYADH, _riyadh(2026, 12, 2, 10, 0))  # a holiday
    assert not business_hours.is_open(hours, RIYADH, _riyadh(2026, 12, 4, 10, 0))  # Friday
    # Thursday 16:50 → Sunday 09:10: ten minutes before the weekend and ten after.
    assert business_hours.business_seconds(hours, RIYADH, _riyadh(2026, 12, 3, 16, 50), _riyadh(2026, 12, 6, 9, 10)) == 1200
    # Tuesday 16:50 → Thursday 09:10 skips the Wednesday holiday.
    assert business_hours.business_seconds(hours, RIYADH, _riyadh(2026, 12, 1, 16, 50), _riyadh(2026, 12, 3, 9, 10)) == 1200


def test_over_target_counts_business_time_and_outside_hours_is_marked(session: Session) -> None:
    firm = make_firm(session, timezone="Asia/Riyadh")
    business_hours.set_hours(session=session, tenant_id=firm.tenant.id, actor=firm.admin, data=BusinessHoursIn(
        days=[6, 0, 1, 2, 3], opens="09:00", closes="17:00", callback_target_minutes=30))
    late = callbacks.record_miss(session=session, tenant_id=firm.tenant.id, actor=firm.agent,
                                 data=CallbackMissIn(number="0501234567", missed_at=datetime.now(timezone.utc) - timedelta(minutes=1)))
    hours = business_hours.get_hours(session=session, tenant_id=firm.tenant.id)
    assert late.outside_hours == (not business_hours.is_open(hours, RIYADH, late.first_missed_at))
    # Judged at fixed instants: a miss at Thursday 16:40 is over target (30 min) on Sunday at 09:11, not at 09:09.
    from services.models import Callback
    from services.tenancy import tenant_select
    row = session.exec(tenant_select(Callback, firm.tenant.id)).one()
    row.first_missed_at = _riyadh(2026, 12, 3, 16, 40)
    session.flush()
    at = lambda *a: callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=firm.agent, now=_riyadh(*a))[0].over_target
    assert at(2026, 12, 6, 9, 9) is False and at(2026, 12, 6, 9, 11) is True
    with pytest.raises(Forbidden):
        business_hours.set_hours(session=session, tenant_id=firm.tenant.id, actor=firm.agent, data=BusinessHoursIn(days=[0], opens="09:00", closes="17:00"))
    for bad, field in ((dict(days=[7]), "days"), (dict(closes="08:00"), "closes"), (dict(opens="9am"), "opens"),
                       (dict(holidays=["2026-13-01"]), "holidays"), (dict(callback_target_minutes=0), "callback_target_minutes")):
        data = {"days": [0], "opens": "09:00", "closes": "17:00", **bad}
        with pytest.raises(Invalid) as err:
            business_hours.set_hours(session=session, tenant_id=firm.tenant.id, actor=firm.admin, data=BusinessHoursIn(**data))
        assert err.value.field == field


def test_the_wallboard_counts_callers_once_per_call_and_reads_the_queue(session: Session) -> None:
    from services import presence, wallboard
    from services.presence import PhoneEvent

    firm = make_firm(session)
    now = datetime.now(timezone.utc)
    # One caller ringing two agents (a ring group), one caller talking to an agent.
    for ext in ("2001", "2002"):
        make_call(session, firm.tenant, agent=firm.agent, status=CallStatus.RINGING, sip_call_id=f"ring1;in={ext}",
                  started_at=now - timedelta(seconds=25), updated_at=now)
    make_call(session, firm.tenant, agent=firm.agent, status=CallStatus.RINGING, sip_call_id="ring2;in=2001",
              started_at=now - timedelta(seconds=5), updated_at=now)
    make_call(session, firm.tenant, agent=firm.manager, status=CallStatus.ANSWERED, sip_call_id="talk;in=2003",
              started_at=now - timedelta(seconds=90), answered_at=now - timedelta(seconds=80), updated_at=now)
    presence.report_phone(session=session, tenant_id=firm.tenant.id, actor=firm.agent, event=PhoneEvent.REGISTERED)
    _missed(session, firm, firm.agent, sip="gone")
    board = wallboard.snapshot(session=session, tenant_id=firm.tenant.id, actor=firm.manager, now=now)
    assert (board.calls_in_progress, board.callers_ringing) == (1, 2)
    assert board.longest_ring_started_at == now - timedelta(seconds=25)
    assert board.callbacks_open == 1 and board.oldest_callback_at is not None
    assert board.missed_today == 1
    assert {a.user_id: a.status for a in board.agents}[firm.agent.user_id].value == "AVAILABLE"
    with pytest.raises(Forbidden):
        wallboard.snapshot(session=session, tenant_id=firm.tenant.id, actor=firm.agent)


def test_the_pbx_ledgers_missed_calls_join_the_queue_once_per_call(session: Session) -> None:
    from services.pbx.ledger import ingest
    from services.pbx.records import LegDisposition
    from tests import factories as f
    from tests.ledger_support import leg

    firm = make_firm(session)
    for ext in ("1001", "1002"):
        f.make_extension(session, f.make_user(session, firm.tenant), extension=ext)
    records = [leg("L1", position=1, extension="1001", end=20, disposition=LegDisposition.CANCELED),
               leg("L1", position=2, extension="1002", end=20, disposition=LegDisposition.CANCELED)]
    ingest(session=session, tenant_id=firm.tenant.id, records=records)
    ingest(session=session, tenant_id=firm.tenant.id, records=list(reversed(records)))  # read again
    [item] = callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    assert (item.miss_count, item.channel) == (1, CallbackChannel.CALL)
    # An answered call from the PBX adds nothing.
    ingest(session=session, tenant_id=firm.tenant.id, records=[leg("L2", position=3, extension="1001", answer=5, end=30)])
    assert len(callbacks.list_callbacks(session=session, tenant_id=firm.tenant.id, actor=firm.agent)) == 1
