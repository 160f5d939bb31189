"""The softphone's JsSIP events, applied to the call log, on the real database fixtures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from services.call_center.softphone import SoftphoneCallEvent, apply_softphone_event, leg_key
from services.errors import Invalid
from services.models import Call, CallDirection, CallStatus, Tenant
from tests import factories

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=timezone.utc)
OUT, IN = CallDirection.OUTBOUND, CallDirection.INBOUND


@pytest.fixture
def agent(session):
    tenant = factories.make_tenant(session)
    user = factories.make_user(session, tenant)
    return factories.principal_of(user)


def ev(kind, *, at_s=0.0, direction=OUT, call_id="abc123", remote="1002", **kw):
    return SoftphoneCallEvent(
        kind=kind, sip_call_id=call_id, direction=direction, remote_number=remote,
        at=T0 + timedelta(seconds=at_s), started_at=T0, **kw,
    )


def apply(session, agent, *events, extension="1001"):
    result = None
    for event in events:
        result = apply_softphone_event(session=session, tenant_id=agent.tenant_id, actor=agent, extension=extension, event=event)
    return result


def rows(session, agent):
    return session.exec(select(Call).where(Call.tenant_id == agent.tenant_id)).all()


def test_answered_then_ended_call_is_completed_with_ring_and_talk_time(session, agent):
    call = apply(
        session, agent,
        ev("new"),
        ev("progress", at_s=0.4, originator="remote", status_code=180),
        ev("accepted", at_s=3.2, originator="remote", answered_at=T0 + timedelta(seconds=3.2)),
        ev("ended", at_s=65.4, originator="remote", cause="Terminated", answered_at=T0 + timedelta(seconds=3.2)),
    )
    assert call.status == CallStatus.COMPLETED
    assert call.direction == OUT
    assert call.remote_number == "1002"
    assert call.started_at == T0
    assert call.answered_at == T0 + timedelta(seconds=3.2)
    assert call.ended_at == T0 + timedelta(seconds=65.4)
    assert (call.ring_seconds, call.talk_seconds) == (3, 62)
    assert call.hangup_cause == "Terminated, remote"
    assert call.agent_user_id == agent.user_id
    assert call.extension == "1001"


@pytest.mark.parametrize(
    ("cause", "originator", "code", "status"),
    [
        ("Busy", "remote", 486, CallStatus.BUSY),
        ("Busy", "remote", 600, CallStatus.BUSY),
        ("Rejected", "remote", 603, CallStatus.REJECTED),
        ("Rejected", "remote", 403, CallStatus.REJECTED),
        ("Unavailable", "remote", 480, CallStatus.NO_ANSWER),
        ("Unavailable", "remote", 408, CallStatus.NO_ANSWER),
        ("Canceled", "local", None, CallStatus.NO_ANSWER),
        ("Not Found", "remote", 404, CallStatus.FAILED),
        ("Connection Error", "system", None, CallStatus.FAILED),
        ("Request Timeout", "system", None, CallStatus.FAILED),
        ("SIP Failure Code", "remote", 503, CallStatus.FAILED),
        ("Redirected", "remote", 302, CallStatus.FAILED),
        ("Address Incomplete", "remote", 484, CallStatus.FAILED),
        ("Incompatible SDP", "remote", 488, CallStatus.FAILED),
        ("Authentication Error", "remote", 407, CallStatus.FAILED),
        ("User Denied Media Access", "local", None, CallStatus.FAILED),
        ("WebRTC Error", "system", None, CallStatus.FAILED),
        ("Bad Media Description", "remote", None, CallStatus.FAILED),
        ("Internal Error", "system", None, CallStatus.FAILED),
    ],
)
def test_unanswered_outgoing_call_ends_with_the_status_of_its_cause(session, agent, cause, originator, code, status):
    call = apply(session, agent, ev("new"), ev("failed", at_s=7, cause=cause, originator=originator, status_code=code))
    assert call.status == status
    assert call.ring_seconds == 7
    assert call.talk_seconds is None
    assert call.answered_at is None
    assert call.ended_at == T0 + timedelta(seconds=7)
    assert call.hangup_cause.startswith(cause)
    if code:
        assert f"({code})" in call.hangup_cause


@pytest.mark.parametrize(
    ("cause", "originator", "status"),
    [
        ("Canceled", "remote", CallStatus.MISSED),  # the caller hung up first
        ("No Answer", "local", CallStatus.MISSED),  # rang out in the browser
        ("Expires", "system", CallStatus.MISSED),
        ("Rejected", "local", CallStatus.MISSED),  # the agent pressed reject
        ("Busy", "local", CallStatus.MISSED),  # turned away by call waiting
        ("Unavailable", "remote", CallStatus.MISSED),
        ("User Denied Media Access", "local", CallStatus.FAILED),  # tried to answer, no microphone
        ("WebRTC Error", "system", CallStatus.FAILED),
        ("Connection Error", "system", CallStatus.FAILED),
    ],
)
def test_unanswered_incoming_call_is_missed_unless_the_browser_failed(session, agent, cause, originator, status):
    call = apply(session, agent, ev("new", direction=IN, remote="0501234567"), ev("failed", direction=IN, at_s=12, cause=cause, originator=originator))
    assert call.direction == IN
    assert call.status == status
    assert call.ring_seconds == 12


def test_repeated_events_change_nothing_and_create_one_call(session, agent):
    answered = T0 + timedelta(seconds=2)
    events = [
        ev("new"), ev("new"),
        ev("accepted", at_s=2, answered_at=answered), ev("accepted", at_s=2, answered_at=answered),
        ev("ended", at_s=10, cause="Terminated", originator="local", answered_at=answered),
    ]
    first = apply(session, agent, *events)
    again = apply(session, agent, ev("ended", at_s=11, cause="Terminated", originator="remote", answered_at=answered))
    assert len(rows(session, agent)) == 1
    assert again.model_dump() == first.model_dump()
    assert (again.status, again.talk_seconds, again.hangup_cause) == (CallStatus.COMPLETED, 8, "Terminated, local")


def test_end_arriving_before_its_answer_still_records_talk_time(session, agent):
    answered = T0 + timedelta(seconds=4)
    call = apply(session, agent, ev("ended", at_s=34, cause="Terminated", originator="remote", answered_at=answered))
    assert call.status == CallStatus.COMPLETED
    assert (call.started_at, call.answered_at) == (T0, answered)
    assert (call.ring_seconds, call.talk_seconds) == (4, 30)
    late = apply(session, agent, ev("accepted", at_s=4, answered_at=answered), ev("new"), ev("progress", at_s=1))
    assert late.model_dump() == call.model_dump()
    assert len(rows(session, agent)) == 1


def test_late_answer_after_a_failure_does_not_reopen_the_call(session, agent):
    apply(session, agent, ev("failed", at_s=5, cause="Busy", originator="remote", status_code=486))
    call = apply(session, agent, ev("accepted", at_s=3, answered_at=T0 + timedelta(seconds=3)))
    assert call.status == CallStatus.BUSY
    assert call.answered_at is None


def test_failure_after_the_answer_closes_the_conversation_as_completed(session, agent):
    answered = T0 + timedelta(seconds=1)
    call = apply(session, agent, ev("new", direction=IN), ev("accepted", direction=IN, at_s=1, answered_at=answered),
                 ev("failed", direction=IN, at_s=33, cause="No ACK", originator="system"))
    assert call.status == CallStatus.COMPLETED
    assert call.talk_seconds == 32
    assert call.hangup_cause == "No ACK, system"


def test_progress_alone_logs_a_ringing_call(session, agent):
    call = apply(session, agent, ev("progress", at_s=0.3, originator="remote", status_code=180))
    assert call.status == CallStatus.RINGING
    assert call.started_at == T0
    assert call.ended_at is None


def test_caller_and_callee_of_one_proxied_call_get_a_row_each(session, agent):
    tenant_id = agent.tenant_id
    callee_user = factories.make_user(session, session.get(Tenant, tenant_id))
    callee = factories.principal_of(callee_user)
    apply(session, agent, ev("new", call_id="same-id", remote="1002"), extension="1001")
    apply(session, callee, ev("new", call_id="same-id", direction=IN, remote="1001"), ev("failed", call_id="same-id", direction=IN, at_s=6, cause="Rejected", originator="local"), extension="1002")
    apply(session, agent, ev("failed", call_id="same-id", at_s=6, cause="Rejected", originator="remote", status_code=603), extension="1001")
    by_agent = {c.agent_user_id: c for c in rows(session, agent)}
    assert by_agent[agent.user_id].direction == OUT and by_agent[agent.user_id].status == CallStatus.REJECTED
    assert by_agent[callee.user_id].direction == IN and by_agent[callee.user_id].status == CallStatus.MISSED
    assert by_agent[agent.user_id].sip_call_id == leg_key(sip_call_id="same-id", direction=OUT, extension="1001")


def test_event_without_call_id_is_refused(session, agent):
    with pytest.raises(Invalid) as err:
        apply(session, agent, ev("new", call_id="  "))
    assert err.value.field == "sip_call_id"
    assert rows(session, agent) == []


def test_one_extension_on_two_phones_answer_on_one_wins_over_the_ring_stopping_on_the_other(session, agent):
    """Desk and laptop of one agent share the log row of a call. The laptop's ring stops
    with a CANCEL that does not say the desk answered: in either order of arrival the call
    is answered, ends COMPLETED with the desk's times, and is not in the callback queue."""
    from services.models import Callback

    answered = T0 + timedelta(seconds=2)
    laptop_stops = ev("failed", direction=IN, at_s=2.1, cause="Canceled", originator="remote", remote="0501234567")
    desk = [ev("new", direction=IN, remote="0501234567"), ev("accepted", direction=IN, at_s=2, answered_at=answered, remote="0501234567"),
            ev("ended", direction=IN, at_s=40, cause="Terminated", originator="remote", answered_at=answered, remote="0501234567")]
    for call_id, order in (("miss-first", [laptop_stops, *desk]), ("answer-first", [desk[0], desk[1], laptop_stops, desk[2]])):
        call = apply(session, agent, *[e.model_copy(update={"sip_call_id": call_id}) for e in order])
        assert (call.status, call.answered_at, call.ring_seconds, call.talk_seconds) == (CallStatus.COMPLETED, answered, 2, 38), call_id
        assert call.hangup_cause == "Terminated, remote"
    assert len(rows(session, agent)) == 2
    assert session.exec(select(Callback).where(Callback.tenant_id == agent.tenant_id)).all() == []


def test_a_ring_that_stopped_on_the_only_phone_is_still_missed(session, agent):
    call = apply(session, agent, ev("new", direction=IN), ev("failed", direction=IN, at_s=9, cause="Canceled", originator="remote"),
                 ev("new", direction=IN), ev("progress", direction=IN, at_s=1))
    assert (call.status, call.ring_seconds) == (CallStatus.MISSED, 9)
