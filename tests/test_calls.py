"""Call records: logging with client match, status transitions, notes, history, closing."""

from __future__ import annotations

import base64
import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from services.call_center import (
    add_notes,
    assign_extension,
    close_open_calls_for_agent,
    close_stale_calls,
    find_call_by_sip_id,
    get_call,
    get_call_history,
    log_call,
    update_call_status,
)
from services.errors import Conflict, Forbidden, Invalid, NotFound
from services.models import (
    Call,
    CallCreate,
    CallDirection,
    CallFilters,
    CallNote,
    CallOrder,
    CallRecording,
    CallStatus,
    CallUpdate,
    ExtensionAssign,
    Role,
)
from services.call_center import call_history
from tests import factories as f

IN, OUT = CallDirection.INBOUND, CallDirection.OUTBOUND
T0 = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)


def _firm(session: Session) -> SimpleNamespace:
    tenant = f.make_tenant(session)
    agent = f.make_user(session, tenant, Role.AGENT, full_name="Agent Amal")
    agent2 = f.make_user(session, tenant, Role.AGENT, full_name="Agent Badr")
    manager = f.make_user(session, tenant, Role.MANAGER, full_name="Manager Mona")
    client = f.make_client(session, tenant, name="Client Khalid", phone="0501234567")
    return SimpleNamespace(
        tenant=tenant,
        tid=tenant.id,
        agent=f.principal_of(agent),
        agent2=f.principal_of(agent2),
        manager=f.principal_of(manager),
        client=client,
    )


@pytest.fixture
def firm(session: Session) -> SimpleNamespace:
    return _firm(session)


@pytest.fixture
def other(session: Session) -> SimpleNamespace:
    return _firm(session)


def _log(session, firm, actor=None, **kw):
    data = {"direction": IN, "remote_number": "+966 50 123 4567", **kw}
    return log_call(session=session, tenant_id=firm.tid, actor=actor or firm.agent, data=CallCreate(**data))


def _update(session, firm, call_id, actor=None, **kw):
    return update_call_status(session=session, tenant_id=firm.tid, actor=actor or firm.agent, call_id=call_id, data=CallUpdate(**kw))


def _row(session, call_id) -> Call:
    session.expire_all()
    return session.execute(sa.select(Call).where(Call.id == call_id)).scalar_one()


def _count_calls(session, tenant_id) -> int:
    return session.execute(sa.select(sa.func.count()).select_from(Call).where(Call.tenant_id == tenant_id)).scalar_one()


# --------------------------------------------------------------------------- log_call


@pytest.mark.parametrize("dialled", ["0501234567", "+966 50 123 4567", "00966501234567", "966501234567"])
def test_logging_matches_the_client_by_number_in_any_format(session, firm, dialled):
    call = _log(session, firm, remote_number=dialled)
    assert (call.client_id, call.client_name, call.remote_e164) == (firm.client.id, "Client Khalid", "+966501234567")
    assert call.remote_number == dialled
    assert call.status == CallStatus.RINGING and call.agent_user_id == firm.agent.user_id
    assert call.agent_name == "Agent Amal"


def test_every_call_matches_the_oldest_client_of_the_number(session, firm):
    # The firm's first call in this process and the next ones take different paths
    # (log_call normalises the next ones with the region it saw, inside one query).
    f.make_client(session, firm.tenant, name="Younger Khalid", phone="00966501234567")
    calls = [_log(session, firm, remote_number=n) for n in ("0501234567", "+966501234567", "966 50 123 4567")]
    assert {(c.client_id, c.client_name) for c in calls} == {(firm.client.id, "Client Khalid")}
    assert _log(session, firm, remote_number="0559999999").client_id is None


def test_a_changed_region_normalises_the_next_call_with_the_new_one(session, firm):
    assert _log(session, firm, remote_number="0501234567").remote_e164 == "+966501234567"
    firm.tenant.region = "AE"
    session.flush()
    emirati = f.make_client(session, firm.tenant, name="Client Emirati", phone="+971501234567")
    call = _log(session, firm, remote_number="0501234567")
    assert (call.remote_e164, call.client_id, call.client_name) == ("+971501234567", emirati.id, "Client Emirati")
    again = _log(session, firm, remote_number="050 123 4567")
    assert (again.remote_e164, again.client_id) == ("+971501234567", emirati.id)


def test_an_internal_extension_stays_unmatched(session, firm):
    call = _log(session, firm, remote_number="1002")
    assert (call.remote_e164, call.client_id) == (None, None)


def test_a_client_of_another_firm_with_the_same_number_is_not_matched(session, firm, other):
    call = _log(session, other, actor=other.agent, remote_number="0501234567")
    assert call.client_id == other.client.id
    session.delete(session.get(type(firm.client), firm.client.id))
    session.flush()
    assert _log(session, firm, remote_number="0501234567").client_id is None


def test_logging_records_the_agents_extension_when_none_is_given(session, firm):
    assign_extension(
        session=session, tenant_id=firm.tid, actor=f.principal_of(f.make_user(session, firm.tenant, Role.ADMIN)),
        data=ExtensionAssign(user_id=firm.agent.user_id, extension="1007", password="sip-pass-123"),
    )
    assert _log(session, firm).extension == "1007"
    assert _log(session, firm, extension="2000").extension == "2000"


def test_a_supervisor_may_log_a_call_for_another_agent(session, firm):
    call = _log(session, firm, actor=firm.manager, agent_user_id=firm.agent2.user_id)
    assert (call.agent_user_id, call.agent_name) == (firm.agent2.user_id, "Agent Badr")


def test_an_agent_may_not_log_a_call_for_another_agent(session, firm):
    with pytest.raises(Forbidden):
        _log(session, firm, agent_user_id=firm.agent2.user_id)
    assert _count_calls(session, firm.tid) == 0


def test_logging_for_a_user_of_another_firm_is_not_found(session, firm, other):
    with pytest.raises(NotFound):
        _log(session, firm, actor=firm.manager, agent_user_id=other.agent.user_id)
    assert _count_calls(session, firm.tid) == 0 and _count_calls(session, other.tid) == 0


def test_logging_for_a_user_of_another_firm_is_not_found_once_the_firms_region_is_known(session, firm, other):
    # The firm's first call and the next ones take different paths (one INSERT once its region is known).
    _log(session, firm)
    with pytest.raises(NotFound):
        _log(session, firm, actor=firm.manager, agent_user_id=other.agent.user_id)
    with pytest.raises(NotFound):
        _log(session, firm, actor=firm.manager, agent_user_id=10**9)
    # The refused INSERTs wrote nothing and left the transaction usable.
    assert _count_calls(session, firm.tid) == 1 and _count_calls(session, other.tid) == 0
    assert _log(session, firm, sip_call_id="after-refusals").id


def test_logging_the_same_call_id_twice_returns_the_same_call(session, firm):
    first = _log(session, firm, sip_call_id="abc@pbx")
    again = _log(session, firm, sip_call_id="abc@pbx")
    assert again.id == first.id and again.status == CallStatus.RINGING
    assert _count_calls(session, firm.tid) == 1


def test_logging_a_known_call_id_with_a_later_status_moves_the_call_forward(session, firm):
    first = _log(session, firm, sip_call_id="abc@pbx", started_at=T0)
    answered = _log(session, firm, sip_call_id="abc@pbx", status=CallStatus.ANSWERED)
    assert answered.id == first.id and answered.status == CallStatus.ANSWERED
    # A late duplicate of the first event does not move it back.
    assert _log(session, firm, sip_call_id="abc@pbx", status=CallStatus.RINGING).status == CallStatus.ANSWERED
    assert _count_calls(session, firm.tid) == 1


def test_a_committed_call_id_logged_from_another_session_is_not_duplicated(engine, session, firm):
    session.commit()
    with Session(engine) as first, Session(engine) as second:
        a = log_call(session=first, tenant_id=firm.tid, actor=firm.agent, data=CallCreate(direction=IN, remote_number="1002", sip_call_id="race@pbx"))
        first.commit()
        b = log_call(session=second, tenant_id=firm.tid, actor=firm.agent, data=CallCreate(direction=IN, remote_number="1002", sip_call_id="race@pbx"))
        second.commit()
    assert a.id == b.id
    assert _count_calls(session, firm.tid) == 1


def _log_in_own_session(engine, firm, sip_call_id, results, errors, start=None):
    try:
        with Session(engine) as own:
            if start is not None:
                start.wait(5)
            call = log_call(session=own, tenant_id=firm.tid, actor=firm.agent, data=CallCreate(direction=IN, remote_number="1002", sip_call_id=sip_call_id))
            own.commit()
            results.append(call.id)
    except Exception as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


def test_a_call_id_inserted_while_another_insert_is_uncommitted_gives_one_call(engine, session, firm):
    session.commit()
    results: list[int] = []
    errors: list[Exception] = []
    with Session(engine) as first:
        a = log_call(session=first, tenant_id=firm.tid, actor=firm.agent, data=CallCreate(direction=IN, remote_number="1002", sip_call_id="race@pbx"))
        late = threading.Thread(target=_log_in_own_session, args=(engine, firm, "race@pbx", results, errors))
        late.start()
        late.join(0.5)
        assert late.is_alive()  # its insert waits on the first, uncommitted one
        first.commit()
    late.join(15)
    assert errors == [] and results == [a.id]
    assert _count_calls(session, firm.tid) == 1


def test_concurrent_loggers_of_one_call_id_create_one_call(engine, session, firm):
    session.commit()
    results: list[int] = []
    errors: list[Exception] = []
    for round_ in range(5):
        start = threading.Barrier(4)
        threads = [
            threading.Thread(target=_log_in_own_session, args=(engine, firm, f"burst-{round_}@pbx", results, errors, start))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    assert len(results) == 20 and len(set(results)) == 5
    assert _count_calls(session, firm.tid) == 5


def test_the_same_call_id_in_two_firms_gives_two_calls(session, firm, other):
    a = _log(session, firm, sip_call_id="shared@pbx")
    b = _log(session, other, actor=other.agent, sip_call_id="shared@pbx")
    assert a.id != b.id


def test_an_agent_relogging_another_agents_call_id_conflicts(session, firm):
    _log(session, firm, sip_call_id="abc@pbx")
    with pytest.raises(Conflict) as err:
        _log(session, firm, actor=firm.agent2, sip_call_id="abc@pbx")
    assert err.value.field == "sip_call_id"


def test_a_call_logged_already_completed_gets_its_times_and_durations(session, firm):
    call = _log(session, firm, status=CallStatus.COMPLETED, started_at=datetime.now(timezone.utc) - timedelta(seconds=30))
    assert call.status == CallStatus.COMPLETED
    assert call.answered_at is not None and call.ended_at is not None
    assert 29 <= call.ring_seconds <= 31 and call.talk_seconds == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"remote_number": ""}, "remote_number"),
    ({"remote_number": "   "}, "remote_number"),
    ({"remote_number": "1" * 65}, "remote_number"),
    ({"sip_call_id": "x" * 256}, "sip_call_id"),
    ({"started_at": datetime(2026, 3, 10, 9, 0)}, "started_at"),
    ({"extension": "1" * 17}, "extension"),
])
def test_bad_call_input_is_refused_and_logs_nothing(session, firm, change, field):
    with pytest.raises(Invalid) as err:
        _log(session, firm, **change)
    assert err.value.field == field
    assert _count_calls(session, firm.tid) == 0


# --------------------------------------------------------------------------- update_call_status


def test_answering_sets_the_answer_time_and_ring_seconds(session, firm):
    call = _log(session, firm, started_at=T0)
    answered = _update(session, firm, call.id, status=CallStatus.ANSWERED, answered_at=T0 + timedelta(seconds=12))
    assert answered.status == CallStatus.ANSWERED
    assert answered.answered_at == T0 + timedelta(seconds=12) and answered.ring_seconds == 12


def test_completing_sets_the_end_time_and_talk_seconds(session, firm):
    call = _log(session, firm, started_at=T0)
    _update(session, firm, call.id, status=CallStatus.ANSWERED, answered_at=T0 + timedelta(seconds=5))
    done = _update(session, firm, call.id, status=CallStatus.COMPLETED, ended_at=T0 + timedelta(seconds=125), hangup_cause="BYE")
    assert (done.status, done.ring_seconds, done.talk_seconds, done.hangup_cause) == (CallStatus.COMPLETED, 5, 120, "BYE")
    assert done.ended_at == T0 + timedelta(seconds=125)


def test_a_missed_call_counts_ring_time_until_it_ended(session, firm):
    call = _log(session, firm, started_at=T0)
    missed = _update(session, firm, call.id, status=CallStatus.MISSED, ended_at=T0 + timedelta(seconds=31), hangup_cause="CANCELED")
    assert (missed.ring_seconds, missed.talk_seconds, missed.answered_at) == (31, None, None)


def test_times_default_to_now(session, firm):
    call = _log(session, firm, started_at=datetime.now(timezone.utc) - timedelta(seconds=10))
    answered = _update(session, firm, call.id, status=CallStatus.ANSWERED)
    assert 9 <= answered.ring_seconds <= 11
    assert abs((answered.answered_at - datetime.now(timezone.utc)).total_seconds()) < 5


def test_given_durations_win_over_computed_ones(session, firm):
    call = _log(session, firm, started_at=T0)
    _update(session, firm, call.id, status=CallStatus.ANSWERED, answered_at=T0 + timedelta(seconds=5), ring_seconds=4)
    done = _update(session, firm, call.id, status=CallStatus.COMPLETED, ended_at=T0 + timedelta(seconds=65), talk_seconds=58)
    assert (done.ring_seconds, done.talk_seconds) == (4, 58)


def test_a_repeated_status_changes_nothing(session, firm):
    call = _log(session, firm, started_at=T0)
    first = _update(session, firm, call.id, status=CallStatus.ANSWERED, answered_at=T0 + timedelta(seconds=3))
    again = _update(session, firm, call.id, status=CallStatus.ANSWERED, answered_at=T0 + timedelta(seconds=9))
    assert again.answered_at == first.answered_at and again.ring_seconds == 3


@pytest.mark.parametrize(("path", "late"), [
    ([CallStatus.ANSWERED, CallStatus.COMPLETED], CallStatus.ANSWERED),
    ([CallStatus.ANSWERED, CallStatus.COMPLETED], CallStatus.RINGING),
    ([CallStatus.MISSED], CallStatus.ANSWERED),
    ([CallStatus.ANSWERED], CallStatus.MISSED),
    ([], CallStatus.COMPLETED),
    ([CallStatus.REJECTED], CallStatus.BUSY),
])
def test_an_out_of_order_status_conflicts_and_changes_nothing(session, firm, path, late):
    call = _log(session, firm, started_at=T0)
    for status in path:
        _update(session, firm, call.id, status=status)
    before = _row(session, call.id).model_dump()
    with pytest.raises(Conflict) as err:
        _update(session, firm, call.id, status=late)
    assert err.value.field == "status"
    assert _row(session, call.id).model_dump() == before


@pytest.mark.parametrize(("kw", "field"), [
    ({"status": CallStatus.ANSWERED, "answered_at": T0 - timedelta(seconds=1)}, "answered_at"),
    ({"status": CallStatus.MISSED, "ended_at": T0 - timedelta(seconds=1)}, "ended_at"),
    ({"status": CallStatus.ANSWERED, "answered_at": datetime(2026, 3, 10, 9, 0, 5)}, "answered_at"),
    ({"status": CallStatus.MISSED, "hangup_cause": "x" * 65}, "hangup_cause"),
    ({"status": CallStatus.ANSWERED, "ring_seconds": -1}, "ring_seconds"),
])
def test_bad_status_input_is_refused_and_changes_nothing(session, firm, kw, field):
    call = _log(session, firm, started_at=T0)
    with pytest.raises(Invalid) as err:
        _update(session, firm, call.id, **kw)
    assert err.value.field == field
    assert _row(session, call.id).status == CallStatus.RINGING


def test_an_agent_cannot_update_another_agents_call(session, firm):
    call = _log(session, firm)
    with pytest.raises(NotFound):
        _update(session, firm, call.id, actor=firm.agent2, status=CallStatus.ANSWERED)
    assert _row(session, call.id).status == CallStatus.RINGING
    assert _update(session, firm, call.id, actor=firm.manager, status=CallStatus.ANSWERED).status == CallStatus.ANSWERED


def test_another_firms_call_is_not_found_and_unchanged(session, firm, other):
    theirs = _log(session, other, actor=other.agent)
    with pytest.raises(NotFound):
        _update(session, firm, theirs.id, actor=firm.manager, status=CallStatus.ANSWERED)
    assert _row(session, theirs.id).status == CallStatus.RINGING


def test_find_call_by_sip_id_stays_in_the_firm(session, firm, other):
    call = _log(session, firm, sip_call_id="abc@pbx")
    assert find_call_by_sip_id(session=session, tenant_id=firm.tid, sip_call_id="abc@pbx").id == call.id
    assert find_call_by_sip_id(session=session, tenant_id=other.tid, sip_call_id="abc@pbx") is None


# --------------------------------------------------------------------------- notes, detail


def test_notes_are_appended_with_author_and_kept_as_one_text(session, firm):
    call = _log(session, firm)
    add_notes(session=session, tenant_id=firm.tid, actor=firm.agent, call_id=call.id, note="Asked about the hearing date.")
    detail = add_notes(session=session, tenant_id=firm.tid, actor=firm.manager, call_id=call.id, note="  Call back Sunday.  ")
    assert detail.notes == "Asked about the hearing date.\nCall back Sunday."
    assert [(n.body, n.author_user_id, n.author_name) for n in detail.note_entries] == [
        ("Asked about the hearing date.", firm.agent.user_id, "Agent Amal"),
        ("Call back Sunday.", firm.manager.user_id, "Manager Mona"),
    ]


def test_linking_a_case_of_the_calls_client(session, firm):
    case = f.make_case(session, firm.tenant, firm.client, title="Lease dispute")
    call = _log(session, firm)
    detail = add_notes(session=session, tenant_id=firm.tid, actor=firm.agent, call_id=call.id, case_id=case.id)
    assert (detail.case_id, detail.case_title) == (case.id, "Lease dispute")
    assert detail.note_entries == []


def test_linking_a_case_to_a_call_without_client_adopts_the_cases_client(session, firm):
    case = f.make_case(session, firm.tenant, firm.client)
    call = _log(session, firm, remote_number="1002")
    detail = add_notes(session=session, tenant_id=firm.tid, actor=firm.agent, call_id=call.id, case_id=case.id, note="Transferred")
    assert (detail.client_id, detail.client_name, detail.case_id) == (firm.client.id, "Client Khalid", case.id)


def test_a_case_of_another_client_or_firm_is_refused(session, firm, other):
    stranger = f.make_client(session, firm.tenant, phone="0559876543")
    foreign_case = f.make_case(session, other.tenant, other.client)
    wrong_client_case = f.make_case(session, firm.tenant, stranger)
    call = _log(session, firm)
    for case in (wrong_client_case, foreign_case):
        with pytest.raises(Invalid) as err:
            add_notes(session=session, tenant_id=firm.tid, actor=firm.agent, call_id=call.id, case_id=case.id, note="x")
        assert err.value.field == "case_id"
    row = _row(session, call.id)
    assert (row.case_id, row.notes) == (None, "")
    assert session.execute(sa.select(sa.func.count()).select_from(CallNote)).scalar_one() == 0


@pytest.mark.parametrize(("note", "field"), [(None, "note"), ("   ", "note"), ("x" * 10_001, "note")])
def test_bad_notes_are_refused(session, firm, note, field):
    call = _log(session, firm)
    with pytest.raises(Invalid) as err:
        add_notes(session=session, tenant_id=firm.tid, actor=firm.agent, call_id=call.id, note=note)
    assert err.value.field == field


def test_notes_on_others_calls_are_not_found(session, firm, other):
    mine = _log(session, firm)
    theirs = _log(session, other, actor=other.agent)
    with pytest.raises(NotFound):
        add_notes(session=session, tenant_id=firm.tid, actor=firm.agent2, call_id=mine.id, note="x")
    with pytest.raises(NotFound):
        add_notes(session=session, tenant_id=firm.tid, actor=firm.manager, call_id=theirs.id, note="x")
    assert _row(session, mine.id).notes == "" and _row(session, theirs.id).notes == ""


def test_update_call_status_can_carry_a_note(session, firm):
    call = _log(session, firm)
    _update(session, firm, call.id, status=CallStatus.MISSED, note="No answer, SMS sent")
    assert _row(session, call.id).notes == "No answer, SMS sent"


def test_get_call_shows_names_notes_and_recordings(session, firm):
    call = _log(session, firm)
    session.add(CallRecording(tenant_id=firm.tid, call_id=call.id, url="/rec/1.wav", duration_seconds=42))
    add_notes(session=session, tenant_id=firm.tid, actor=firm.agent, call_id=call.id, note="hello")
    detail = get_call(session=session, tenant_id=firm.tid, actor=firm.agent, call_id=call.id)
    assert (detail.agent_name, detail.client_name) == ("Agent Amal", "Client Khalid")
    assert [(r.url, r.duration_seconds) for r in detail.recordings] == [("/rec/1.wav", 42)]
    assert [n.body for n in detail.note_entries] == ["hello"]


def test_get_call_of_another_agent_or_firm_is_not_found(session, firm, other):
    mine = _log(session, firm)
    theirs = _log(session, other, actor=other.agent)
    with pytest.raises(NotFound):
        get_call(session=session, tenant_id=firm.tid, actor=firm.agent2, call_id=mine.id)
    with pytest.raises(NotFound):
        get_call(session=session, tenant_id=firm.tid, actor=firm.manager, call_id=theirs.id)
    assert get_call(session=session, tenant_id=firm.tid, actor=firm.manager, call_id=mine.id).id == mine.id


# --------------------------------------------------------------------------- history


def _history(session, firm, actor=None, **kw):
    return get_call_history(session=session, tenant_id=firm.tid, actor=actor or firm.manager, **kw)


def _seed_history(session, firm) -> list[int]:
    """17 calls, several sharing a start time; returns ids newest first."""
    ids = []
    for i in range(17):
        started = T0 + timedelta(minutes=i // 3)  # ties of three on started_at
        actor = firm.agent if i % 2 == 0 else firm.agent2
        call = _log(session, firm, actor=actor, started_at=started, direction=IN if i % 3 else OUT,
                    remote_number="0501234567" if i % 4 == 0 else f"05598765{i:02d}")
        ids.append((started, call.id))
    return [call_id for _, call_id in sorted(ids, reverse=True)]


def test_history_is_newest_first_with_ties_broken_by_id(session, firm):
    expected = _seed_history(session, firm)
    page = _history(session, firm, page_size=100)
    assert [c.id for c in page.data] == expected and page.count == 17


def test_history_oldest_first_is_the_exact_reverse_with_ties_broken_by_id(session, firm):
    expected = _seed_history(session, firm)
    page = _history(session, firm, page_size=100, order=CallOrder.OLDEST_FIRST)
    assert [c.id for c in page.data] == expected[::-1] and page.count == 17
    assert [c.id for c in _history(session, firm, page_size=100, order="OLDEST_FIRST").data] == expected[::-1]


@pytest.mark.parametrize("order", list(CallOrder))
def test_cursor_pages_and_numbered_pages_agree(session, firm, order):
    newest = _seed_history(session, firm)
    expected = newest if order == CallOrder.NEWEST_FIRST else newest[::-1]
    by_cursor, cursor = [], None
    while True:
        page = _history(session, firm, cursor=cursor, page_size=5, order=order)
        by_cursor.append([c.id for c in page.data])
        cursor = page.next_cursor
        if cursor is None:
            break
    by_number = [[c.id for c in _history(session, firm, page=n, page_size=5, order=order).data] for n in range(1, 5)]
    assert by_cursor == by_number == [expected[i : i + 5] for i in range(0, 17, 5)]
    assert _history(session, firm, page=5, page_size=5, order=order).data == []


@pytest.mark.parametrize("order", list(CallOrder))
def test_every_page_counts_every_match(session, firm, order):
    # Full pages, the last page, a page past the end and cursor pages all tell the same total
    # (the last numbered page counts itself: the matches before it plus its own).
    _seed_history(session, firm)
    pages = [_history(session, firm, page=n, page_size=5, order=order) for n in range(1, 6)]
    assert [len(p.data) for p in pages] == [5, 5, 5, 2, 0] and {p.count for p in pages} == {17}
    cursor_pages, cursor = [], None
    while True:
        cursor_pages.append(_history(session, firm, cursor=cursor, page_size=5, order=order))
        cursor = cursor_pages[-1].next_cursor
        if cursor is None:
            break
    assert {p.count for p in cursor_pages} == {17}
    only = _history(session, firm, filters=CallFilters(direction=OUT), page_size=100, order=order)
    assert only.count == len(only.data) == 6
    assert _history(session, firm, filters=CallFilters(direction=OUT), page=2, page_size=100, order=order).count == 6


@pytest.mark.parametrize(("made_for", "used_with"), [
    (CallOrder.NEWEST_FIRST, CallOrder.OLDEST_FIRST),
    (CallOrder.OLDEST_FIRST, CallOrder.NEWEST_FIRST),
])
def test_a_cursor_of_one_order_is_refused_by_the_other(session, firm, made_for, used_with):
    _seed_history(session, firm)
    cursor = _history(session, firm, page_size=5, order=made_for).next_cursor
    with pytest.raises(Invalid) as err:
        _history(session, firm, page_size=5, order=used_with, cursor=cursor)
    assert err.value.field == "cursor"


def test_oldest_first_cursor_pages_stay_stable_when_older_calls_arrive_late(session, firm):
    expected = _seed_history(session, firm)[::-1]
    first = _history(session, firm, page_size=5, order=CallOrder.OLDEST_FIRST)
    # A call reported late, starting before the cursor, must not shift the next page.
    _log(session, firm, started_at=T0 - timedelta(hours=1))
    second = _history(session, firm, page_size=5, cursor=first.next_cursor, order=CallOrder.OLDEST_FIRST)
    assert [c.id for c in second.data] == expected[5:10]


def test_cursor_pages_stay_stable_when_new_calls_arrive(session, firm):
    expected = _seed_history(session, firm)
    first = _history(session, firm, page_size=5)
    _log(session, firm, started_at=T0 + timedelta(hours=1))
    second = _history(session, firm, page_size=5, cursor=first.next_cursor)
    assert [c.id for c in second.data] == expected[5:10]


@pytest.mark.parametrize("order", list(CallOrder))
def test_number_search_pages_agree_with_cursor(session, firm, order):
    newest = _seed_history(session, firm)
    search = CallFilters(number="55987")
    all_ids = [c.id for c in _history(session, firm, filters=search, page_size=100, order=order).data]
    in_order = newest if order == CallOrder.NEWEST_FIRST else newest[::-1]
    assert all_ids == [i for i in in_order if i in set(all_ids)]
    first = _history(session, firm, filters=search, page_size=4, order=order)
    second = _history(session, firm, filters=search, page_size=4, cursor=first.next_cursor, order=order)
    page2 = _history(session, firm, filters=search, page_size=4, page=2, order=order)
    assert [c.id for c in first.data + second.data] == all_ids[:8]
    assert [c.id for c in page2.data] == all_ids[4:8] and first.count == len(all_ids) == 12


def test_history_filters(session, firm):
    _seed_history(session, firm)
    def ids(**kw):
        return {c.id for c in _history(session, firm, filters=CallFilters(**kw), page_size=100).data}
    everything = _history(session, firm, page_size=100).data
    by = lambda pred: {c.id for c in everything if pred(c)}  # noqa: E731
    assert ids(direction=OUT) == by(lambda c: c.direction == OUT)
    assert ids(agent_user_id=firm.agent2.user_id) == by(lambda c: c.agent_user_id == firm.agent2.user_id)
    assert ids(client_id=firm.client.id) == by(lambda c: c.client_id == firm.client.id) != set()
    window = dict(date_from=T0 + timedelta(minutes=1), date_to=T0 + timedelta(minutes=3))
    assert ids(**window) == by(lambda c: window["date_from"] <= c.started_at < window["date_to"])
    assert len(ids(**window)) == 6


def test_history_filters_by_status(session, firm):
    a, b, c = (_log(session, firm) for _ in range(3))
    _update(session, firm, a.id, status=CallStatus.MISSED)
    _update(session, firm, b.id, status=CallStatus.ANSWERED)
    page = _history(session, firm, filters=CallFilters(statuses=[CallStatus.MISSED, CallStatus.RINGING]))
    assert {x.id for x in page.data} == {a.id, c.id} and page.count == 2


@pytest.mark.parametrize("search", ["0501234567", "501234", "050-123", "+966 50 123 4567", "(050) 1234567"])
def test_number_search_matches_digits_in_any_format(session, firm, search):
    match = _log(session, firm, remote_number="0501234567")
    _log(session, firm, remote_number="0559876543")
    page = _history(session, firm, filters=CallFilters(number=search))
    assert [c.id for c in page.data] == [match.id] and page.count == 1


def test_number_search_finds_internal_extensions_by_the_dialled_digits(session, firm):
    ext = _log(session, firm, remote_number="1002")
    _log(session, firm, remote_number="1003")
    assert [c.id for c in _history(session, firm, filters=CallFilters(number="1002")).data] == [ext.id]


def test_a_search_for_zeros_finds_only_numbers_with_those_zeros(session, firm):
    """Found by bench_number_search: "0000" with its trunk 0s dropped left nothing to look
    for, and every call matched."""
    zeros = _log(session, firm, remote_number="0550000123")
    _log(session, firm, remote_number="0501234567")
    page = _history(session, firm, filters=CallFilters(number="0000"))
    assert [c.id for c in page.data] == [zeros.id] and page.count == 1


def test_number_search_without_digits_is_invalid(session, firm):
    _log(session, firm, remote_number="0501234567")
    with pytest.raises(Invalid) as err:
        _history(session, firm, filters=CallFilters(number="%_"))
    assert err.value.field == "number"


def test_agents_see_only_their_own_calls(session, firm):
    mine = _log(session, firm)
    _log(session, firm, actor=firm.agent2)
    page = _history(session, firm, actor=firm.agent)
    assert [c.id for c in page.data] == [mine.id] and page.count == 1
    assert _history(session, firm, actor=firm.agent, filters=CallFilters(agent_user_id=firm.agent2.user_id)).data == []


def test_history_excludes_other_firms(session, firm, other):
    mine = _log(session, firm)
    _log(session, other, actor=other.agent)
    page = _history(session, firm)
    assert [c.id for c in page.data] == [mine.id] and page.count == 1


def _cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_at_the_largest_id_is_read_by_the_database(session, firm):
    call = _log(session, firm, started_at=T0)
    micros = (T0 + timedelta(seconds=1) - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    page = _history(session, firm, cursor=_cursor_of(f"n:{micros}:{2**63 - 1}"))
    assert [c.id for c in page.data] == [call.id]
    before = _history(session, firm, cursor=_cursor_of(f"o:{micros - 2_000_000}:{2**63 - 1}"), order=CallOrder.OLDEST_FIRST)
    assert [c.id for c in before.data] == [call.id]


@pytest.mark.parametrize(("kw", "field"), [
    ({"page_size": 0}, "page_size"),
    ({"page_size": 501}, "page_size"),
    ({"cursor": "not-a-cursor!"}, "cursor"),
    ({"cursor": "bm9wZQ"}, "cursor"),
    ({"cursor": "MTox", "page": 2}, "cursor"),
    ({"cursor": _cursor_of(f"n:0:{2**63}")}, "cursor"),
    ({"cursor": _cursor_of(f"n:0:{10**30}")}, "cursor"),
    ({"cursor": _cursor_of(f"n:{10**18}:1")}, "cursor"),
    ({"cursor": _cursor_of("n:1_0:5")}, "cursor"),
    ({"cursor": _cursor_of("1:2:3")}, "cursor"),
    ({"cursor": _cursor_of("n:1:-2")}, "cursor"),
    ({"cursor": _cursor_of("1:2")}, "cursor"),
    ({"cursor": _cursor_of("x:1:2")}, "cursor"),
    ({"cursor": _cursor_of("o:1:2"), "order": CallOrder.NEWEST_FIRST}, "cursor"),
    ({"order": "sideways"}, "order"),
    ({"order": "desc"}, "order"),
    ({"cursor": "é"}, "cursor"),
    ({"page": 0}, "page"),
    ({"filters": CallFilters(date_from=T0, date_to=T0)}, "date_from"),
    ({"filters": CallFilters(date_from=datetime(2026, 1, 1))}, "date_from"),
])
def test_bad_history_requests_are_invalid(session, firm, kw, field):
    with pytest.raises(Invalid) as err:
        _history(session, firm, **kw)
    assert err.value.field == field


# --------------------------------------------------------------------------- closing open calls


def _open_call(session, firm, *, direction=IN, status=CallStatus.RINGING, started=T0, answered=None, updated=None, agent=None):
    return f.make_call(
        session, firm.tenant, agent=agent or firm.agent, direction=direction, status=status, remote_number="1002",
        started_at=started, answered_at=answered, updated_at=updated or answered or started,
    ).id


def test_stale_calls_are_closed_and_fresh_ones_left_open(session, firm, other):
    now = T0 + timedelta(hours=5)
    ringing_in = _open_call(session, firm, started=T0)
    ringing_out = _open_call(session, firm, direction=OUT, started=T0, updated=T0 + timedelta(seconds=20))
    talking = _open_call(session, firm, status=CallStatus.ANSWERED, answered=T0 + timedelta(seconds=10), updated=T0 + timedelta(minutes=30))
    fresh_ring = _open_call(session, firm, started=now - timedelta(seconds=60))
    long_talk = _open_call(session, firm, status=CallStatus.ANSWERED, started=now - timedelta(hours=1), answered=now - timedelta(minutes=59))
    theirs = _open_call(session, other, started=T0, agent=other.agent)

    assert close_stale_calls(session=session, tenant_id=firm.tid, now=now) == 3
    r = _row(session, ringing_in)
    assert (r.status, r.hangup_cause, r.ended_at, r.ring_seconds) == (CallStatus.MISSED, "abandoned", T0, 0)
    r = _row(session, ringing_out)
    assert (r.status, r.hangup_cause, r.ring_seconds) == (CallStatus.FAILED, "abandoned", 20)
    r = _row(session, talking)
    assert (r.status, r.hangup_cause, r.talk_seconds) == (CallStatus.COMPLETED, "client_lost", 30 * 60 - 10)
    assert _row(session, fresh_ring).status == CallStatus.RINGING
    assert _row(session, long_talk).status == CallStatus.ANSWERED
    assert _row(session, theirs).status == CallStatus.RINGING

    assert close_stale_calls(session=session, now=now) == 1
    assert _row(session, theirs).status == CallStatus.MISSED


def test_the_stale_call_sweep_reads_only_open_calls_by_index(session, firm):
    """The sweep runs every minute in every worker over every firm: it must look up the few
    open calls by (tenant_id, status), not read all of a firm's calls to test their status
    (it did on SQLite: ~70 ms a firm of 100,000 calls, a second of CPU a minute on 1,000,000)."""
    _open_call(session, firm, started=T0)
    session.commit()
    engine = session.get_bind()
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT") and "updated_at" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as other_session:
            assert close_stale_calls(session=other_session, tenant_id=firm.tid, now=T0 + timedelta(hours=5)) == 1
            other_session.commit()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    # The sweep's read comes first (then what closing a missed call writes and reads).
    statement, parameters = seen[0]
    assert "call.status IN" in statement.replace('"', ""), statement
    if engine.dialect.name != "sqlite":
        # PostgreSQL plans by its statistics (a test's few rows say nothing); on the
        # 1,000,000-call bench set it reads the two statuses by a BitmapOr of the same index.
        return
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection.cursor()
        raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        plan = " ".join(str(row[-1]) for row in raw.fetchall())
        assert "ix_call_tenant_status_started" in plan and "SCAN" not in plan, plan


def test_closing_an_agents_open_calls_leaves_other_agents_and_later_calls(session, firm):
    before = T0 + timedelta(minutes=10)
    ringing = _open_call(session, firm, started=T0)
    talking = _open_call(session, firm, status=CallStatus.ANSWERED, answered=T0 + timedelta(seconds=5), updated=T0 + timedelta(minutes=2))
    later = _open_call(session, firm, started=before + timedelta(seconds=1))
    colleague = _open_call(session, firm, started=T0, agent=firm.agent2)
    done = _open_call(session, firm, status=CallStatus.COMPLETED, started=T0)

    assert close_open_calls_for_agent(session=session, tenant_id=firm.tid, user_id=firm.agent.user_id, before=before) == 2
    assert _row(session, ringing).status == CallStatus.MISSED
    r = _row(session, talking)
    assert (r.status, r.talk_seconds, r.hangup_cause) == (CallStatus.COMPLETED, 115, "client_lost")
    assert _row(session, later).status == CallStatus.RINGING
    assert _row(session, colleague).status == CallStatus.RINGING
    assert _row(session, done).status == CallStatus.COMPLETED


def test_a_status_event_after_closing_is_a_conflict_not_a_reopen(session, firm):
    call_id = _open_call(session, firm, started=T0)
    close_stale_calls(session=session, tenant_id=firm.tid, now=T0 + timedelta(hours=1))
    with pytest.raises(Conflict):
        _update(session, firm, call_id, status=CallStatus.ANSWERED)


def test_the_public_select_itself_keeps_to_the_firms_calls(session, firm, other):
    mine = f.make_call(session, firm.tenant, agent=firm.agent)
    f.make_call(session, other.tenant, agent=other.agent)
    # No condition of the caller's: the select alone must not reach another firm's rows.
    rows = session.execute(call_history._public_select(firm.tid)).all()
    assert [r.id for r in rows] == [mine.id]
