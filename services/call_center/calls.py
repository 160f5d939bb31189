# Over 400 lines on purpose: log_call's statements, built once for every call event, sit beside the rules they serve.
"""Call records: logging, status changes, notes, deletion.

Softphones report call events duplicated and out of order, and a tab may be closed
mid-call. So: logging is idempotent on the SIP Call-ID and a status only moves forward
(repeating it is a no-op). Reading is in :mod:`~services.call_center.call_history`,
closing what nobody reports as ended in :mod:`~services.call_center.stale_calls`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from services import audit, callbacks, live, phones
from services.authz import Permission, allowed, require, require_member
from services.call_center.call_history import _detail, _load_public, _owned_call
from services.clients import oldest_client
from services.db import Prepared, dialect_insert_for
from services.pbx import recordings
from services.errors import Conflict, Forbidden, Invalid, NotFound
from services.models import (
    Call,
    CallCreate,
    CallDetail,
    CallDirection,
    CallNote,
    CallPublic,
    CallStatus,
    CallUpdate,
    Case,
    Client,
    Principal,
    SipExtension,
    Tenant,
    User,
    utcnow,
)
from services.models.base import check_length
from services.tenancy import owned_by, owned_join, tenant_select
from services.timestamps import event_time

_S = CallStatus


# The only moves a status may make; anything else is a late or duplicated event.
TRANSITIONS: dict[CallStatus, frozenset[CallStatus]] = {
    _S.RINGING: frozenset({_S.ANSWERED, _S.MISSED, _S.REJECTED, _S.BUSY, _S.FAILED, _S.NO_ANSWER}),
    _S.ANSWERED: frozenset({_S.COMPLETED, _S.FAILED}),
}


_call = Call.__table__


# log_call runs for every call event: its statements are built once (values bound at
# execution) so SQLAlchemy compiles them once instead of coercing every literal each time.
#
# A call is logged in one statement: an INSERT that reads its context where it writes it (the
# agent, only if of the firm; the agent's extension; the client of the number,
# clients.oldest_client) and returns what the answer shows (the id, the extension and client
# written, the agent's and client's names). The number's E.164 form depends on the firm's
# region: it is normalised beforehand with the region this process last saw for the firm
# (_REGIONS, a guess only), and the INSERT writes only when the firm's region still is that
# one. When it writes nothing (the firm's first call here, its region changed, no such agent,
# or the Call-ID is logged already) the context is read (_CONTEXT) to tell which, and the
# number normalised again with the region read.
_CALL_NAMES = (
    "tenant_id", "agent_user_id", "extension", "direction", "status", "remote_number", "remote_e164", "client_id",
    "case_id", "notes", "started_at", "answered_at", "ended_at", "ring_seconds", "talk_seconds", "hangup_cause",
    "sip_call_id", "updated_at",
)


def _value(name: str) -> Any:
    # Typed as the column, so the value is bound as the column binds it (enums, UTC times).
    return sa.bindparam(name, type_=_call.c[name].type)


_FIRM, _AGENT = sa.bindparam("firm"), sa.bindparam("agent")
_FIRM_HAS_AGENT = owned_join(User, User.id == _AGENT, _FIRM)
_CLIENT_ID = oldest_client(_FIRM, _value("remote_e164")).with_only_columns(Client.id).scalar_subquery()
_AGENT_EXTENSION = sa.select(SipExtension.extension).where(SipExtension.user_id == _AGENT, owned_by(SipExtension, _FIRM))
_IN_REGION = sa.and_(Tenant.id == _FIRM, Tenant.region == sa.bindparam("region"))
# The names, read by the new row's ids (written as SQL: RETURNING on SQLite names the new
# row's columns unqualified, which a Core subquery would take as its own table's).
_RETURNED = (
    _call.c.id,
    _call.c.extension,
    _call.c.client_id,
    sa.literal_column('(SELECT "user".full_name FROM "user" WHERE "user".id = call.agent_user_id)'),
    sa.literal_column("(SELECT client.name FROM client WHERE client.id = call.client_id)"),
)


def _new_call(dialect: str) -> Any:
    """The INSERT of a call (see above), ON CONFLICT of its Call-ID DO NOTHING.

    PostgreSQL: INSERT … SELECT from the firm (in the region) and its agent: no row, nothing
    written. SQLite copies the rows of an INSERT … SELECT into a temporary table first when the
    table has triggers (``call`` has), which costs more (~0.05 ms) than reading the context with
    another statement; so there it is a single-row INSERT … VALUES whose ``tenant_id`` is the
    firm only when in the region and with the agent, else NULL: the NOT NULL column refuses the
    row (an IntegrityError, the statement undone, the transaction kept), which _insert_call
    reads as "nothing written". On SQLite the RETURNING clause costs ~0.02 ms more than the
    cursor's lastrowid (measured under load), less than a statement reading the names.
    """
    insert = dialect_insert_for(dialect, _call)
    if dialect == "sqlite":
        firm = sa.select(Tenant.id).join(User, _FIRM_HAS_AGENT).where(_IN_REGION).scalar_subquery()
        context = {
            "tenant_id": firm,
            "agent_user_id": _AGENT,
            "extension": sa.func.coalesce(_value("extension"), _AGENT_EXTENSION.scalar_subquery()),
            "client_id": _CLIENT_ID,
        }
        insert = insert.values({name: context.get(name, _value(name)) for name in _CALL_NAMES})
    else:
        context = {
            "tenant_id": Tenant.id,
            "agent_user_id": User.id,
            "extension": sa.func.coalesce(_value("extension"), _AGENT_EXTENSION.scalar_subquery()),
            "client_id": _CLIENT_ID,
        }
        rows = sa.select(*(context.get(name, _value(name)) for name in _CALL_NAMES)).select_from(Tenant).join(
            User, _FIRM_HAS_AGENT
        ).where(_IN_REGION)
        insert = insert.from_select(list(_CALL_NAMES), rows)
    return insert.on_conflict_do_nothing(index_elements=["tenant_id", "sip_call_id"]).returning(*_RETURNED)


_LOG_INSERTS: dict[str, Prepared] = {}


def _log_insert(dialect: str) -> Prepared:
    statement = _LOG_INSERTS.get(dialect)
    if statement is None:
        statement = _LOG_INSERTS[dialect] = Prepared(_new_call(dialect))
    return statement


# What the INSERT needs to be told when it wrote nothing: the firm's region, and whether the
# agent is of the firm (the Call-ID is logged already when both are as the INSERT was given).
_CONTEXT = Prepared(
    sa.select(Tenant.region, User.id).select_from(Tenant).outerjoin(User, _FIRM_HAS_AGENT).where(Tenant.id == _FIRM)
)
_REGIONS: dict[int, str] = {}


def _insert_call(session: Session, connection: sa.Connection, values: dict[str, Any], region: str) -> Any:
    """Inserts the call of ``values`` when the firm's region is ``region`` and the agent is of
    the firm: its (id, extension, client_id, agent_name, client_name), or None when nothing was
    written (another region, no such agent, or the firm has logged its SIP Call-ID already)."""
    params = {**values, "firm": values["tenant_id"], "agent": values["agent_user_id"], "region": region}
    try:
        row = _log_insert(connection.dialect.name).first(connection, params)
    except sa.exc.IntegrityError as error:
        # SQLite's statement: the firm not in the region or without the agent (see _new_call).
        if "NOT NULL constraint failed: call.tenant_id" not in str(error.orig):
            raise
        return None
    if row is not None:
        # Written past the session's unit of work: the live change is announced here, as
        # services.live_sources announces a Core insert of calls (the firm's calls, no ref),
        # once the transaction commits.
        live.publish_on_commit(session, values["tenant_id"], "calls")
    return row


def _seconds(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds()))


def _advance(
    state: dict[str, Any],
    target: CallStatus,
    *,
    now: datetime,
    answered_at: datetime | None = None,
    ended_at: datetime | None = None,
    ring_seconds: int | None = None,
    talk_seconds: int | None = None,
    hangup_cause: str | None = None,
) -> dict[str, Any]:
    """The column changes that move a call in ``state`` to ``target``; {} when already there."""
    current = CallStatus(state["status"])
    if target == current:
        return {}
    if target not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(f"a {current.value} call cannot become {target.value}", field="status")
    started = state["started_at"]
    changes: dict[str, Any] = {"status": target}
    if target == CallStatus.ANSWERED:
        if answered_at is not None and answered_at < started:
            raise Invalid("answered_at", "a call cannot be answered before it started")
        # A browser clock behind the server's must not give a negative ring time.
        answered = answered_at or max(now, started)
        changes["answered_at"] = answered
        changes["ring_seconds"] = ring_seconds if ring_seconds is not None else _seconds(answered - started)
    else:
        answered = state.get("answered_at")
        floor = answered or started
        if ended_at is not None and ended_at < floor:
            raise Invalid("ended_at", "a call cannot end before it started or was answered")
        ended = ended_at or max(now, floor)
        changes["ended_at"] = ended
        if answered is None:
            changes["ring_seconds"] = ring_seconds if ring_seconds is not None else _seconds(ended - started)
        else:
            changes["talk_seconds"] = talk_seconds if talk_seconds is not None else _seconds(ended - answered)
    if hangup_cause:
        changes["hangup_cause"] = hangup_cause
    return changes


def _check_seconds(value: int | None, field: str) -> int | None:
    if value is not None and not 0 <= value <= 7 * 24 * 3600:
        raise Invalid(field, "seconds are between 0 and one week")
    return value


def log_call(*, session: Session, tenant_id: int, actor: Principal, data: CallCreate) -> CallPublic:
    """Record a call, matching the client by the remote number; idempotent on the SIP Call-ID.

    The agent is the actor unless a supervisor names another user of the firm. Logging a
    Call-ID again returns the existing record, moved to ``data.status`` when that is a
    valid next status, and never creates a second row (concurrent loggers included).
    Internal extension numbers are not phone numbers and stay unmatched.
    """
    require_member(actor, tenant_id)
    remote = (data.remote_number or "").strip()
    if not remote:
        raise Invalid("remote_number", "the remote number is required")
    # Lengths were checked when ``data`` was built (CallBase declares them).
    sip_call_id = (data.sip_call_id or "").strip() or None
    extension = (data.extension or "").strip() or None
    now = utcnow()
    started_at = event_time(data.started_at, "started_at", now=now) or now
    agent_id = data.agent_user_id or actor.user_id
    if agent_id != actor.user_id and not allowed(actor, Permission.LOG_CALLS_FOR_OTHERS):
        raise Forbidden("only a supervisor may log a call for another agent")

    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "agent_user_id": agent_id,
        "extension": extension,
        "direction": data.direction,
        "status": CallStatus.RINGING,
        "remote_number": remote,
        "remote_e164": None,
        "client_id": None,
        "case_id": None,
        "notes": "",
        "started_at": started_at,
        "answered_at": None,
        "ended_at": None,
        "ring_seconds": None,
        "talk_seconds": None,
        "hangup_cause": None,
        "sip_call_id": sip_call_id,
        "updated_at": now,
    }
    # A call first seen already answered or ended (e.g. logged at hang-up) walks the same
    # transitions as a live one, so its timestamps and durations are filled the same way.
    path = [CallStatus.ANSWERED, CallStatus.COMPLETED] if data.status == CallStatus.COMPLETED else [data.status]
    for status in path:
        values.update(_advance(values, status, now=now))

    # One statement when the firm's region is the one this process saw last (see _new_call).
    connection = session.connection()
    region = _REGIONS.get(tenant_id)
    row = None
    if region is not None:
        values["remote_e164"] = phones.try_normalise(remote, region)
        row = _insert_call(session, connection, values, region)
    if row is None:
        ctx = _CONTEXT.first(connection, {"agent": agent_id, "firm": tenant_id})
        if ctx is None or ctx[1] is None:
            raise NotFound("agent not found")
        if ctx[0] != region:
            region = _REGIONS[tenant_id] = ctx[0]
            values["remote_e164"] = phones.try_normalise(remote, region)
            row = _insert_call(session, connection, values, region)
    if row is not None:
        new_id, values["extension"], values["client_id"], agent_name, client_name = row
        _after_log(session, tenant_id, new_id, values, now)
        values.update(id=new_id, agent_name=agent_name, client_name=client_name, case_title=None)
        return CallPublic.model_validate(values)

    # The Call-ID is known already (a repeated event or a concurrent logger won the race).
    existing = session.exec(tenant_select(Call, tenant_id).where(Call.sip_call_id == sip_call_id)).first()
    if existing is None:
        # Nothing written and no such call: the firm's region or its agent changed between
        # the context read and the INSERT (another transaction, on PostgreSQL).
        raise Conflict("the agent or the firm changed while the call was logged; log it again", field="agent_user_id")
    if existing.agent_user_id != actor.user_id and not allowed(actor, Permission.VIEW_ALL_CALLS):
        raise Conflict("this SIP Call-ID is already logged for another agent", field="sip_call_id")
    if data.status != existing.status and data.status in TRANSITIONS.get(existing.status, frozenset()):
        _apply(session, tenant_id, existing, _advance(existing.model_dump(), data.status, now=now), now)
        session.flush()
    return _load_public(session, tenant_id, existing.id)


def _after_log(session: Session, tenant_id: int, call_id: int, values: dict[str, Any], now: datetime) -> None:
    """What follows a new call in its transaction: the callback queue (the statistics' rollups
    and number search's dictionary follow by the database's triggers). The queue follows the
    log: a missed inbound call joins it, an outbound call to a waiting number is its callback
    (services.callbacks), told what the call is rather than reading it again."""
    if values["direction"] == CallDirection.OUTBOUND:
        callbacks.outbound_call_logged(
            session, tenant_id, call_id=call_id, agent_user_id=values["agent_user_id"],
            key=callbacks.number_key_of_call(values["remote_e164"], values["remote_number"]), at=values["started_at"],
        )
    elif values["status"] == CallStatus.MISSED:
        callbacks.on_call_missed(session, tenant_id, call_id)


def _apply(session: Session, tenant_id: int, call: Call, changes: dict[str, Any], now: datetime) -> None:
    for key, value in changes.items():
        setattr(call, key, value)
    if changes:
        call.updated_at = now
        if changes.get("status") == CallStatus.MISSED:
            session.flush()
            callbacks.on_call_missed(session, tenant_id, call.id)


def update_call_status(
    *, session: Session, tenant_id: int, actor: Principal, call_id: int, data: CallUpdate
) -> CallPublic:
    """Move a call along its lifecycle and fill answered/ended times and durations.

    RINGING → ANSWERED | MISSED | REJECTED | BUSY | FAILED | NO_ANSWER; ANSWERED →
    COMPLETED | FAILED; final statuses stay. The same status again changes nothing
    (events arrive twice); any other move is :class:`Conflict` on ``status``. Times
    default to now; ring = answered (or ended, if never answered) − started; talk =
    ended − answered, unless given. Figures that contradict the call are :class:`Invalid`
    on their field (see :func:`_check_figures`). ``note``/``case_id`` are handled as in
    :func:`add_notes`.
    """
    now = utcnow()
    answered_at = event_time(data.answered_at, "answered_at", now=now)
    ended_at = event_time(data.ended_at, "ended_at", now=now)
    # Lengths were checked when ``data`` was built (CallUpdate reads them from the Call family).
    cause = (data.hangup_cause or "").strip() or None
    ring = _check_seconds(data.ring_seconds, "ring_seconds")
    talk = _check_seconds(data.talk_seconds, "talk_seconds")
    call = _owned_call(session, tenant_id, actor, call_id)
    if data.status is not None:
        changes = _advance(
            call.model_dump(),
            data.status,
            now=now,
            answered_at=answered_at,
            ended_at=ended_at,
            ring_seconds=ring,
            talk_seconds=talk,
            hangup_cause=cause,
        )
    else:
        changes = {k: v for k, v in (("hangup_cause", cause), ("ring_seconds", ring), ("talk_seconds", talk)) if v is not None}
    _check_figures(call, changes, data, answered_at=answered_at, ended_at=ended_at)
    if data.note is not None or data.case_id is not None:
        _annotate(session, tenant_id, actor, call, data.note, data.case_id, now)
    _apply(session, tenant_id, call, changes, now)
    session.flush()
    return _load_public(session, tenant_id, call.id)


def answered_on_another_phone(
    *, session: Session, tenant_id: int, actor: Principal, call_id: int, answered_at: datetime
) -> CallPublic:
    """The one move back out of a final status: a call one phone of the agent logged MISSED
    (it rang there and stopped without saying why) that another phone of the same extension
    answered. The call is ANSWERED at ``answered_at`` as if the miss had never been logged,
    and it leaves the callback queue. Only a MISSED call moves; anything else is returned
    as it is."""
    now = utcnow()
    answered = event_time(answered_at, "answered_at", now=now)
    call = _owned_call(session, tenant_id, actor, call_id)
    if CallStatus(call.status) is not CallStatus.MISSED or answered is None:
        return _load_public(session, tenant_id, call.id)
    if answered < call.started_at:
        raise Invalid("answered_at", "a call cannot be answered before it started")
    changes = {
        "status": CallStatus.ANSWERED, "answered_at": answered, "ring_seconds": _seconds(answered - call.started_at),
        "ended_at": None, "talk_seconds": None, "hangup_cause": None,
    }
    _apply(session, tenant_id, call, changes, now)
    callbacks.withdraw_call(session, tenant_id, call.id)
    session.flush()
    return _load_public(session, tenant_id, call.id)


# A second of slack: clients round their own durations from the same two times.
_ROUNDING_S = 1


def _check_figures(
    call: Call, changes: dict[str, Any], data: CallUpdate, *, answered_at: datetime | None, ended_at: datetime | None
) -> None:
    """:class:`Invalid` when the figures given would contradict the call as it will be.

    An unanswered call has no answer time and no talk time; times are set by the status
    change they record (a repeated status, a duplicated event, changes nothing and is not
    judged); talk fits between answer and end, ring between start and answer (or end).
    Figures already stored are not judged again: only what this request sets.
    """
    after = {**call.model_dump(), **changes}
    answered, ended, started = after["answered_at"], after["ended_at"], after["started_at"]
    # (An end before the start or the answer is refused by _advance, which sets the end.)
    repeated = data.status is not None and data.status == CallStatus(call.status)
    if answered_at is not None and not repeated and "answered_at" not in changes:
        if answered is None:
            raise Invalid("answered_at", "an unanswered call has no answer time")
        raise Invalid("answered_at", "the answer time is set with the status ANSWERED")
    if ended_at is not None and not repeated and "ended_at" not in changes:
        raise Invalid("ended_at", "the end time is set with the call's final status")
    if "talk_seconds" in changes and data.talk_seconds is not None:
        if answered is None:
            raise Invalid("talk_seconds", "an unanswered call has no talk time")
        if ended is None:
            raise Invalid("talk_seconds", "talk time is known once the call has ended")
        most = _seconds(ended - answered) + _ROUNDING_S
        if data.talk_seconds > most:
            raise Invalid("talk_seconds", f"talk time is at most the time from answer to end ({most - _ROUNDING_S} s)")
    if "ring_seconds" in changes and data.ring_seconds is not None:
        stop = answered or ended
        if stop is not None and data.ring_seconds > _seconds(stop - started) + _ROUNDING_S:
            raise Invalid("ring_seconds", f"ring time is at most the time from start to answer or end ({_seconds(stop - started)} s)")


def delete_call(*, session: Session, tenant_id: int, actor: Principal, call_id: int) -> None:
    """Delete a call with its notes and recordings' records (OWNER/ADMIN), audited.

    For a call logged in error (a wrong number, a test, an impossible time): the
    audit event keeps who deleted which call and its main facts, so the deletion itself
    is never silent. Another firm's call is :class:`NotFound`.
    """
    require(actor, Permission.DELETE_CALLS, tenant_id=tenant_id)
    call = session.exec(tenant_select(Call, tenant_id).where(Call.id == call_id)).first()
    if call is None:
        raise NotFound("call not found")
    detail = {
        "direction": call.direction.value,
        "status": call.status.value,
        "remote_number": call.remote_number,
        "agent_user_id": call.agent_user_id,
        "started_at": call.started_at.isoformat(),
        "sip_call_id": call.sip_call_id,
    }
    # Notes and recordings' rows go with it (ON DELETE CASCADE); the recordings' files here.
    detail["recording_files_deleted"] = recordings.delete_files_of_call(session=session, tenant_id=tenant_id, call_id=call.id)
    session.delete(call)
    session.flush()
    audit.record(
        session=session, tenant_id=tenant_id, actor=actor, action="call.delete", object_type="call", object_id=call_id, detail=detail
    )


def _annotate(
    session: Session, tenant_id: int, actor: Principal, call: Call, note: str | None, case_id: int | None, now: datetime
) -> None:
    body = note.strip() if note is not None else None
    if note is not None and not body:
        raise Invalid("note", "the note is empty")
    if body is None and case_id is None:
        raise Invalid("note", "give a note or a case to link")
    check_length(CallUpdate, "note", body)
    if case_id is not None:
        case = session.exec(tenant_select(Case, tenant_id).where(Case.id == case_id)).first()
        if case is None:
            raise Invalid("case_id", "no such case in this firm")
        if call.client_id is not None and case.client_id != call.client_id:
            raise Invalid("case_id", "the case belongs to another client than the call")
        call.case_id = case.id
        if call.client_id is None:
            call.client_id = case.client_id
    if body is not None:
        session.add(CallNote(tenant_id=tenant_id, call_id=call.id, author_user_id=actor.user_id, body=body, created_at=now))
        call.notes = f"{call.notes}\n{body}" if call.notes else body
    call.updated_at = now


def add_notes(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    call_id: int,
    note: str | None = None,
    case_id: int | None = None,
) -> CallDetail:
    """Append a note (author and time kept) and/or link a case of the call's client.

    ``Call.notes`` keeps all notes as one text for search and export. A case must be of
    this firm and, when the call has a client, of that client (:class:`Invalid` on
    ``case_id``); linking a case to a call without a client adopts the case's client.
    """
    call = _owned_call(session, tenant_id, actor, call_id)
    _annotate(session, tenant_id, actor, call, note, case_id, utcnow())
    session.flush()
    return _detail(session, tenant_id, call.id)
