"""From JsSIP call events to the call log.

The browser softphone reports each RTCSession event (``new``, ``progress``,
``accepted``, ``ended``, ``failed``) as it happens. Events can arrive twice (a retry
after a reconnect) or out of order (the websocket to the app is not the SIP one), so
every event carries enough to create the call on its own, and an event that would move
a finished call backwards is ignored. The log therefore ends the same whatever order
the events came in, and nothing stays RINGING once an end event arrived.

Status rules (what the agent sees in the history):

* ``ended`` always means the call was established: COMPLETED.
* ``failed`` on an incoming call: MISSED (the caller gave up, nobody answered in
  time, or the agent rejected it), FAILED when the agent tried to answer and the
  browser could not (microphone, WebRTC, network).
* One extension on several phones (desk and laptop) shares one log row per call: an
  answer from any phone wins over a ring that stopped on another, in either order (a
  CANCEL from the PBX does not always say the call was answered elsewhere).
* ``failed`` on an outgoing call: BUSY / REJECTED as the far end said; NO_ANSWER when
  it rang out or the agent gave up first; FAILED for everything else (unknown number,
  network, media), with the cause kept in ``hangup_cause``.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlmodel import Session, SQLModel

from services.call_center import call_history, calls
from services.errors import Invalid
from services.models import (
    OPEN_CALL_STATUSES,
    CallCreate,
    CallDirection,
    CallPublic,
    CallStatus,
    CallUpdate,
    Principal,
)


class SoftphoneEventKind(str, enum.Enum):
    NEW = "new"
    PROGRESS = "progress"
    ACCEPTED = "accepted"
    ENDED = "ended"
    FAILED = "failed"


class SoftphoneCallEvent(SQLModel):
    """One JsSIP RTCSession event as the softphone reports it.

    Times are the browser's (one clock for all events of a call, so durations hold).
    ``started_at`` is when the session began and ``answered_at`` its ``start_time``, so
    that any event arriving first, or alone, still records ring and talk time.
    """

    kind: SoftphoneEventKind
    sip_call_id: str
    direction: CallDirection
    remote_number: str
    at: datetime
    originator: str | None = None
    cause: str | None = None
    status_code: int | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None


# JsSIP.C.causes values (jssip 3.13.8, lib/Constants.js).
BUSY = "Busy"
REJECTED = "Rejected"
UNAVAILABLE = "Unavailable"
CANCELED = "Canceled"
NO_ANSWER = "No Answer"
EXPIRES = "Expires"

# Incoming calls the agent never got to answer: the caller's side ended it, time ran
# out, or the agent (or call waiting) turned it away.
_INCOMING_MISSED = frozenset({CANCELED, NO_ANSWER, EXPIRES, REJECTED, BUSY, UNAVAILABLE})

# Outgoing calls that reached the far end and rang without being picked up.
_OUTGOING_NO_ANSWER = frozenset({NO_ANSWER, UNAVAILABLE, EXPIRES})

_CAUSE_MAX = 64


def leg_key(*, sip_call_id: str, direction: CallDirection, extension: str) -> str:
    """The per-agent key of one call leg, stored as the call's ``sip_call_id``.

    A SIP proxy (the dev Kamailio, or a UCM ring group forking to several agents)
    keeps one Call-ID end to end, so caller and callee of an internal call share it;
    the direction and the agent's extension tell their two log rows apart.
    """
    if not sip_call_id or not sip_call_id.strip():
        raise Invalid("sip_call_id", "the SIP Call-ID is required")
    tag = "out" if direction is CallDirection.OUTBOUND else "in"
    return f"{sip_call_id.strip()};{tag}={extension}"


def final_status(event: SoftphoneCallEvent) -> CallStatus | None:
    """The status a call ends with for this event, or None when the event does not end it."""
    if event.kind is SoftphoneEventKind.ENDED:
        return CallStatus.COMPLETED
    if event.kind is not SoftphoneEventKind.FAILED:
        return None
    cause = event.cause or ""
    if event.direction is CallDirection.INBOUND:
        return CallStatus.MISSED if cause in _INCOMING_MISSED else CallStatus.FAILED
    if cause == BUSY:
        return CallStatus.BUSY
    if cause == REJECTED:
        return CallStatus.REJECTED
    if cause in _OUTGOING_NO_ANSWER:
        return CallStatus.NO_ANSWER
    if cause == CANCELED and event.originator == "local":
        # The agent hung up while it was still ringing.
        return CallStatus.NO_ANSWER
    return CallStatus.FAILED


def hangup_cause(event: SoftphoneCallEvent) -> str | None:
    """``"Busy (486), remote"``: JsSIP's cause, the SIP code if any, and who ended the call."""
    if not event.cause:
        return None
    text = event.cause
    if event.status_code:
        text += f" ({event.status_code})"
    if event.originator:
        text += f", {event.originator}"
    return text[:_CAUSE_MAX]


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds()))


def _answer(session: Session, tenant_id: int, actor: Principal, call: CallPublic, answered_at: datetime) -> CallPublic:
    """Move the ringing ``call`` to ANSWERED at ``answered_at``, rung since its start."""
    return calls.update_call_status(
        session=session,
        tenant_id=tenant_id,
        actor=actor,
        call_id=call.id,
        data=CallUpdate(status=CallStatus.ANSWERED, answered_at=answered_at, ring_seconds=_seconds(call.started_at, answered_at)),
    )


def apply_softphone_event(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    extension: str,
    event: SoftphoneCallEvent,
) -> CallPublic:
    """Record one softphone event of ``actor``'s own call and return the call as logged.

    Creates the call on the first event seen for it, whatever its kind; answers it on
    ``accepted``; closes it on ``ended`` / ``failed`` with status, cause, ring and talk
    seconds. Repeated events change nothing; an event older than the call's state
    (an ``accepted`` after the end) is ignored.
    """
    key = leg_key(sip_call_id=event.sip_call_id, direction=event.direction, extension=extension)
    call = call_history.find_call_by_sip_id(session=session, tenant_id=tenant_id, sip_call_id=key)
    if call is None:
        # The PBX's record of this leg came first and its call is merged already: the PBX's
        # figures stand (services.pbx.ledger), the late event changes nothing.
        from services.pbx.ledger import call_of_sip_leg

        merged = call_of_sip_leg(session=session, tenant_id=tenant_id, sip_call_id=event.sip_call_id.strip(), extension=extension)
        if merged is not None:
            return call_history._load_public(session, tenant_id, merged)
    if call is None:
        # A late first event still gets the earliest time the browser knew of.
        started = min(t for t in (event.started_at, event.at, event.answered_at) if t is not None)
        call = calls.log_call(
            session=session,
            tenant_id=tenant_id,
            actor=actor,
            data=CallCreate(
                direction=event.direction,
                remote_number=event.remote_number,
                status=CallStatus.RINGING,
                sip_call_id=key,
                started_at=started,
                agent_user_id=actor.user_id,
                extension=extension,
            ),
        )
    answered_here = event.answered_at if event.kind is not SoftphoneEventKind.ACCEPTED else (event.answered_at or event.at)
    if call.status is CallStatus.MISSED and event.direction is CallDirection.INBOUND and answered_here is not None:
        # Another phone of this extension logged the ring as missed (its CANCEL gave no
        # reason) before this one's answer arrived: the answer wins, whatever the order.
        call = calls.answered_on_another_phone(session=session, tenant_id=tenant_id, actor=actor, call_id=call.id, answered_at=answered_here)
    if call.status not in OPEN_CALL_STATUSES:
        return call
    if (call.status is CallStatus.ANSWERED and event.kind is SoftphoneEventKind.FAILED and event.answered_at is None
            and event.direction is CallDirection.INBOUND and (event.cause or "") in _INCOMING_MISSED):
        # A phone that never answered stops ringing after another phone of the extension
        # took the call: that call goes on, this phone's end is not its end.
        return call

    if event.kind is SoftphoneEventKind.ACCEPTED:
        if call.status is CallStatus.ANSWERED:
            return call
        return _answer(session, tenant_id, actor, call, event.answered_at or event.at)

    status = final_status(event)
    if status is None:
        return call
    answered_at = call.answered_at or event.answered_at
    if status is not CallStatus.COMPLETED and answered_at is not None:
        # A failure after the answer (no ACK, media lost) still ends a conversation.
        status = CallStatus.COMPLETED
    cause = hangup_cause(event)
    if status is CallStatus.COMPLETED and call.status is CallStatus.RINGING:
        # The end of an established call arrived before (or without) its answer.
        call = _answer(session, tenant_id, actor, call, answered_at or event.at)
    update = CallUpdate(status=status, ended_at=event.at, hangup_cause=cause)
    if status is CallStatus.COMPLETED:
        update.talk_seconds = _seconds(call.answered_at, event.at)
    else:
        update.ring_seconds = _seconds(call.started_at, event.at)
    return calls.update_call_status(
        session=session, tenant_id=tenant_id, actor=actor, call_id=call.id, data=update
    )
