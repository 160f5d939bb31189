"""The call ledger: PBX leg records merged into the call log, one row per call."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import select

from services.call_center import get_call_history, get_stats
from services.call_center.softphone import SoftphoneCallEvent, SoftphoneEventKind, apply_softphone_event
from services.models import (
    Call,
    CallDirection,
    CallFilters,
    CallLeg,
    CallNote,
    CallRecording,
    CallStatus,
    Role,
)
from services.pbx.ledger import ingest
from services.pbx.records import LegDirection, LegDisposition
from tests import factories as f
from tests.ledger_support import T0, leg


def _firm(session):
    firm = f.make_firm(session)
    agents = {}
    for ext in ("1001", "1002", "1003", "1004"):
        user = f.make_user(session, firm.tenant, Role.AGENT, full_name=f"Agent {ext}")
        f.make_extension(session, user, extension=ext)
        agents[ext] = user
    return firm, agents


def _calls(session, tenant):
    return session.exec(select(Call).where(Call.tenant_id == tenant.id).order_by(Call.id)).all()


def _softphone(session, firm, user, ext, kind, *, call_id="abc@host", at=0.0, started=0.0, answered=None):
    return apply_softphone_event(
        session=session,
        tenant_id=firm.tenant.id,
        actor=f.principal_of(user),
        extension=ext,
        event=SoftphoneCallEvent(
            kind=kind, sip_call_id=call_id, direction=CallDirection.INBOUND, remote_number="0501234567",
            at=T0 + timedelta(seconds=at), started_at=T0 + timedelta(seconds=started),
            answered_at=T0 + timedelta(seconds=answered) if answered is not None else None,
            cause="Canceled" if kind is SoftphoneEventKind.FAILED else None,
        ),
    )


def test_a_call_nobody_saw_becomes_a_missed_inbound_call_with_the_client(session):
    firm, _ = _firm(session)
    client = f.make_client(session, firm.tenant, name="Nora Client", phone="0501234567")
    result = ingest(session=session, tenant_id=firm.tenant.id, records=[
        leg("L1", position=1, extension="1001", end=20, disposition=LegDisposition.CANCELED),
        leg("L1", position=2, extension="1002", end=20, disposition=LegDisposition.CANCELED),
    ])
    assert (result.calls_created, result.legs_inserted) == (1, 2)
    [call] = _calls(session, firm.tenant)
    assert (call.status, call.direction, call.client_id, call.agent_user_id) == (CallStatus.MISSED, CallDirection.INBOUND, client.id, None)
    assert (call.ring_seconds, call.talk_seconds, call.pbx_linked_id) == (20, None, "L1")
    page = get_call_history(session=session, tenant_id=firm.tenant.id, actor=firm.manager,
                            filters=CallFilters(statuses=[CallStatus.MISSED]))
    assert [(c.id, c.client_name) for c in page.data] == [(call.id, "Nora Client")]


def test_reading_the_same_records_again_changes_nothing(session):
    firm, _ = _firm(session)
    records = [leg("L1", position=1, answer=5, end=65), leg("L1", position=2, extension="1002", end=5)]
    ingest(session=session, tenant_id=firm.tenant.id, records=records)
    before = [c.model_dump(exclude={"pbx_confirmed_at", "updated_at"}) for c in _calls(session, firm.tenant)]
    again = ingest(session=session, tenant_id=firm.tenant.id, records=list(reversed(records)))
    ingest(session=session, tenant_id=firm.tenant.id, records=records[1:])
    assert (again.legs_inserted, again.legs_updated, again.calls_created) == (0, 2, 0)
    assert [c.model_dump(exclude={"pbx_confirmed_at", "updated_at"}) for c in _calls(session, firm.tenant)] == before
    assert session.execute(sa.select(sa.func.count()).select_from(CallLeg)).scalar_one() == 2


def test_softphone_row_and_pbx_record_are_one_row_and_the_pbx_times_win(session):
    firm, agents = _firm(session)
    amal = agents["1001"]
    # The browser's clock is 3 s late: it saw the call start at 3, answered at 12, end at 70.
    _softphone(session, firm, amal, "1001", SoftphoneEventKind.NEW, at=3, started=3)
    _softphone(session, firm, amal, "1001", SoftphoneEventKind.ACCEPTED, at=12, started=3, answered=12)
    row = _softphone(session, firm, amal, "1001", SoftphoneEventKind.ENDED, at=70, started=3, answered=12)
    f_note = CallNote(tenant_id=firm.tenant.id, call_id=row.id, author_user_id=amal.id, body="asked about the hearing")
    session.add(f_note)
    session.flush()
    session.execute(sa.update(Call).where(Call.id == row.id).values(notes="call back Sunday"))

    result = ingest(session=session, tenant_id=firm.tenant.id, records=[
        leg("L9", position=1, extension="1001", start=0, answer=8, end=66, sip_call_id="abc@host"),
    ])
    assert (result.calls_created, result.calls_merged) == (0, 1)
    [call] = _calls(session, firm.tenant)
    assert call.id == row.id
    assert (call.started_at, call.answered_at, call.ended_at) == (T0, T0 + timedelta(seconds=8), T0 + timedelta(seconds=66))
    assert (call.ring_seconds, call.talk_seconds, call.status) == (8, 58, CallStatus.COMPLETED)
    assert (call.notes, call.agent_user_id, call.pbx_linked_id) == ("call back Sunday", amal.id, "L9")
    assert session.get(CallNote, f_note.id).call_id == row.id


def test_without_a_call_id_the_agent_number_and_time_window_match(session):
    firm, agents = _firm(session)
    amal = agents["1001"]
    row = f.make_call(session, firm.tenant, agent=amal, status=CallStatus.COMPLETED, remote_number="0501234567",
                      remote_e164="+966501234567", extension="1001", started_at=T0 + timedelta(seconds=4))
    far = f.make_call(session, firm.tenant, agent=amal, status=CallStatus.COMPLETED, remote_number="0501234567",
                      remote_e164="+966501234567", extension="1001", started_at=T0 + timedelta(seconds=40))
    other_number = f.make_call(session, firm.tenant, agent=amal, remote_number="0507654321",
                               remote_e164="+966507654321", extension="1001", started_at=T0)
    ingest(session=session, tenant_id=firm.tenant.id, records=[leg("L2", position=1, answer=3, end=30)])
    linked = {c.id: c.pbx_linked_id for c in _calls(session, firm.tenant)}
    assert linked == {row.id: "L2", far.id: None, other_number.id: None}


def test_ring_group_of_three_answered_then_transferred_is_one_row_with_its_legs(session):
    firm, agents = _firm(session)
    a1, a2, a3, a4 = (agents[e] for e in ("1001", "1002", "1003", "1004"))
    # Each ringing agent's softphone logged the call (Kamailio keeps one Call-ID across the fork).
    for user, ext in ((a1, "1001"), (a2, "1002"), (a3, "1003")):
        _softphone(session, firm, user, ext, SoftphoneEventKind.NEW, at=0.2, started=0.2)
    _softphone(session, firm, a1, "1001", SoftphoneEventKind.ACCEPTED, at=6, started=0.2, answered=6)
    for user, ext in ((a2, "1002"), (a3, "1003")):
        _softphone(session, firm, user, ext, SoftphoneEventKind.FAILED, at=6, started=0.2)
    assert len(_calls(session, firm.tenant)) == 3
    records = [
        leg("RG", position=1, extension="1001", answer=5, end=45, sip_call_id="abc@host", recordings=("rg-1001.wav",)),
        leg("RG", position=2, extension="1002", end=5, disposition=LegDisposition.CANCELED, sip_call_id="abc@host"),
        leg("RG", position=3, extension="1003", end=5, disposition=LegDisposition.CANCELED, sip_call_id="abc@host"),
    ]
    first = ingest(session=session, tenant_id=firm.tenant.id, records=records)
    assert first.rows_folded == 2
    # The transfer's leg (1001 → 1004) is written later, in another batch.
    ingest(session=session, tenant_id=firm.tenant.id, records=[
        leg("RG", position=4, extension="1004", start=45, answer=47, end=107, transferred_by="1001",
            disposition=LegDisposition.ANSWERED, recordings=("rg-1004.wav",)),
    ])
    [call] = _calls(session, firm.tenant)
    assert (call.status, call.agent_user_id, call.ring_seconds, call.talk_seconds) == (CallStatus.COMPLETED, a1.id, 5, 40 + 60)
    assert call.ended_at == T0 + timedelta(seconds=107)
    legs = session.exec(select(CallLeg).where(CallLeg.call_id == call.id).order_by(CallLeg.position)).all()
    assert [(lg.extension, lg.agent_user_id, lg.talk_seconds, lg.transferred_by, lg.kind) for lg in legs] == [
        ("1001", a1.id, 40, None, "answer"), ("1002", a2.id, 0, None, "ring"), ("1003", a3.id, 0, None, "ring"),
        ("1004", a4.id, 60, "1001", "transfer"),
    ]
    files = session.exec(select(CallRecording.source_file, CallRecording.blob_id).where(CallRecording.call_id == call.id)).all()
    assert sorted(files) == [("rg-1001.wav", None), ("rg-1004.wav", None)]
    # A late softphone event of a folded row finds the call instead of logging it again.
    _softphone(session, firm, a2, "1002", SoftphoneEventKind.FAILED, at=6, started=0.2)
    assert len(_calls(session, firm.tenant)) == 1

    stats = get_stats(session=session, tenant_id=firm.tenant.id, actor=firm.manager,
                      date_from=T0 - timedelta(hours=1), date_to=T0 + timedelta(hours=1))
    assert (stats.total, stats.answered, stats.missed) == (1, 1, 0)
    talk = {a.agent_user_id: a.talk_seconds for a in stats.per_agent}
    assert talk == {a1.id: 40, a4.id: 60}
    assert stats.average_speed_of_answer == 5


def test_an_outbound_call_nobody_answered_is_busy_or_no_answer(session):
    firm, agents = _firm(session)
    ingest(session=session, tenant_id=firm.tenant.id, records=[
        leg("O1", position=1, direction=LegDirection.OUTBOUND, end=4, disposition=LegDisposition.BUSY),
        leg("O2", position=2, direction=LegDirection.OUTBOUND, start=60, end=90, disposition=LegDisposition.NO_ANSWER),
    ])
    assert [(c.status, c.direction) for c in _calls(session, firm.tenant)] == [
        (CallStatus.BUSY, CallDirection.OUTBOUND), (CallStatus.NO_ANSWER, CallDirection.OUTBOUND),
    ]


def test_records_of_another_firm_never_touch_this_firms_rows(session):
    firm, agents = _firm(session)
    other, _ = _firm(session)
    mine = f.make_call(session, firm.tenant, agent=agents["1001"], remote_e164="+966501234567",
                       extension="1001", started_at=T0, sip_call_id="abc@host;in=1001")
    ingest(session=session, tenant_id=other.tenant.id, records=[leg("X1", position=1, answer=2, end=9, sip_call_id="abc@host")])
    assert session.get(Call, mine.id).pbx_linked_id is None
    assert [c.pbx_linked_id for c in _calls(session, other.tenant)] == ["X1"]


def test_legs_split_across_batches_still_merge_and_reading_them_again_changes_nothing(session):
    firm, agents = _firm(session)
    # Agent 1001's softphone row; the UCM's records carry no Call-ID.
    f.make_call(session, firm.tenant, agent=agents["1001"], remote_number="0501234567", remote_e164="+966501234567",
                extension="1001", started_at=T0 + timedelta(seconds=2), notes="wants a callback")
    # The leg that rang 1002 ended first and came in an earlier batch than 1001's answered leg.
    rang = leg("S1", position=1, extension="1002", end=3, disposition=LegDisposition.CANCELED)
    answered = leg("S1", position=2, extension="1001", answer=3, end=40)
    ingest(session=session, tenant_id=firm.tenant.id, records=[rang])
    ingest(session=session, tenant_id=firm.tenant.id, records=[answered])
    after = [(c.id, c.pbx_linked_id, c.status, c.notes, c.agent_user_id) for c in _calls(session, firm.tenant)]
    # One row: the softphone's (found by 1001's leg, once it came) folded into the call's.
    assert [c[1:] for c in after] == [("S1", CallStatus.COMPLETED, "wants a callback", agents["1001"].id)]
    ingest(session=session, tenant_id=firm.tenant.id, records=[rang, answered])
    ingest(session=session, tenant_id=firm.tenant.id, records=[answered])
    assert [(c.id, c.pbx_linked_id, c.status, c.notes, c.agent_user_id) for c in _calls(session, firm.tenant)] == after


def test_a_second_row_of_the_same_agent_is_not_folded_when_the_records_are_read_again(session):
    firm, agents = _firm(session)
    # Two rows of agent 1001 with the same number 4 s apart: the closer one is the call's.
    near = f.make_call(session, firm.tenant, agent=agents["1001"], remote_number="0501234567",
                       remote_e164="+966501234567", extension="1001", started_at=T0 + timedelta(seconds=1))
    other = f.make_call(session, firm.tenant, agent=agents["1001"], remote_number="0501234567",
                        remote_e164="+966501234567", extension="1001", started_at=T0 + timedelta(seconds=5))
    records = [leg("D1", position=1, extension="1001", answer=2, end=30)]
    ingest(session=session, tenant_id=firm.tenant.id, records=records)
    ingest(session=session, tenant_id=firm.tenant.id, records=records)
    assert sorted((c.id, c.pbx_linked_id) for c in _calls(session, firm.tenant)) == [(near.id, "D1"), (other.id, None)]


def test_a_folded_softphone_row_hands_its_call_id_so_its_late_events_find_the_call(session):
    firm, agents = _firm(session)
    amal = agents["1001"]
    # A UCM (no Call-ID in its records): the 1002 leg came first and made the call's row; then
    # 1001's leg arrives and its softphone row (Call-ID "late@host") is folded into it.
    _softphone(session, firm, amal, "1001", SoftphoneEventKind.NEW, call_id="late@host", at=1, started=1)
    ingest(session=session, tenant_id=firm.tenant.id, records=[
        leg("U1", position=1, extension="1002", end=3, disposition=LegDisposition.CANCELED)])
    ingest(session=session, tenant_id=firm.tenant.id, records=[leg("U1", position=2, extension="1001", answer=3, end=40)])
    [call] = _calls(session, firm.tenant)
    assert (call.sip_call_id, call.pbx_linked_id, call.agent_user_id) == ("late@host;in=1001", "U1", amal.id)
    late = _softphone(session, firm, amal, "1001", SoftphoneEventKind.ENDED, call_id="late@host", at=41, started=1, answered=4)
    assert late.id == call.id and len(_calls(session, firm.tenant)) == 1
    assert session.get(Call, call.id).talk_seconds == 37  # the PBX's figure stands


def test_a_row_with_another_call_id_is_not_taken_by_the_time_window_however_close(session):
    """Seen in the lab: the agent called the client back (the softphone's row, Call-ID A, whose
    PBX record was lost in a PBX restart) and 6 s later the client called the agent (Call-ID B).
    The record of B must not fold into A's row by agent, number and time."""
    firm, agents = _firm(session)
    amal = agents["1001"]
    earlier = _softphone(session, firm, amal, "1001", SoftphoneEventKind.NEW, call_id="callback@lab", at=0, started=0)
    result = ingest(session=session, tenant_id=firm.tenant.id, records=[
        leg("L7", position=1, extension="1001", start=6, answer=7, end=12, sip_call_id="incoming@lab"),
    ])
    assert (result.calls_created, result.calls_merged) == (1, 0)
    rows = {c.id: (c.sip_call_id, c.pbx_linked_id) for c in _calls(session, firm.tenant)}
    assert rows[earlier.id] == ("callback@lab;in=1001", None)
    # The softphone's own events of B still find B's call (the one the PBX record made).
    late = _softphone(session, firm, amal, "1001", SoftphoneEventKind.ENDED, call_id="incoming@lab", at=12, started=6, answered=7)
    assert late.id != earlier.id and late.status == CallStatus.COMPLETED
