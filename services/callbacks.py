"""The callback queue: every missed inbound call and WhatsApp call becomes an item until
someone calls back and closes it with an outcome.

Several misses from one number while an item is open are that item, with a count: the open
item is unique per (firm, number) in the database, so concurrent misses merge, and each miss
is counted once by its key (``CallbackMiss``: the ring-group legs of one call, or the same
call reported by the softphone and by the PBX ledger, share a key). A claim is one guarded
UPDATE, so of two agents claiming at once exactly one wins. An outbound call to the number by
the agent who claimed the item (or by anyone, when nobody did) is the callback: it is linked
to the item and starts its "callback time". Every committed change is announced on the
``callbacks`` live topic.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from services import phones
from services.authz import Permission, allowed, require_member
from services.business_hours import business_seconds, firm_zone, get_hours, is_open
from services.clients import match_number
from services.db import Prepared, dialect_insert
from services.errors import Conflict, Invalid, NotFound
from services.models import (
    Call,
    Callback,
    CallbackChannel,
    CallbackMiss,
    CallbackMissIn,
    CallbackOutcome,
    CallbackPublic,
    CallDirection,
    CallStatus,
    Client,
    Principal,
    Tenant,
    User,
    utcnow,
)
from services.presence import announce
from services.tenancy import owned_by, owned_join, tenant_select
from services.timestamps import event_time

_cb = Callback.__table__
_miss = CallbackMiss.__table__


def _number_key(session: Session, tenant_id: int, number: str) -> tuple[str, str | None]:
    """(the item's key, E.164 or None): E.164 when the number is one, else its digits."""
    tenant = session.get(Tenant, tenant_id)
    e164 = phones.try_normalise(number, tenant.region if tenant else "SA")
    if e164 is not None:
        return e164, e164
    digits = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    return (digits or number.strip())[:64], None


def _add_miss(
    session: Session,
    tenant_id: int,
    *,
    number: str,
    channel: CallbackChannel,
    at: datetime,
    miss_key: str,
    call_id: int | None = None,
    client_id: int | None = None,
) -> int:
    """Counts one miss on the number's open item (created if none); returns the item id.

    A miss already counted (its key seen before) is not counted again and opens nothing, even
    when its item has been closed since: its item's id is returned."""
    seen = session.execute(
        sa.select(_miss.c.callback_id).where(owned_by(_miss, tenant_id), _miss.c.miss_key == miss_key[:255])
    ).scalar_one_or_none()
    if seen is not None:
        return seen
    key, e164 = _number_key(session, tenant_id, number)
    if client_id is None and e164 is not None:
        client = match_number(session=session, tenant_id=tenant_id, e164=e164)
        client_id = client.id if client else None
    hours = get_hours(session=session, tenant_id=tenant_id)
    outside = not is_open(hours, firm_zone(session, tenant_id), at)
    session.execute(
        dialect_insert(session, _cb)
        .values(
            tenant_id=tenant_id, open_key=key, number=number.strip()[:64], number_e164=e164, client_id=client_id,
            channel=channel, miss_count=0, first_missed_at=at, last_missed_at=at, outside_hours=outside, attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "open_key"])
    )
    item_id = session.execute(
        sa.select(_cb.c.id).where(owned_by(_cb, tenant_id), _cb.c.open_key == key)
    ).scalar_one()
    counted = session.execute(
        dialect_insert(session, _miss)
        .values(tenant_id=tenant_id, callback_id=item_id, miss_key=miss_key[:255], call_id=call_id, missed_at=at)
        .on_conflict_do_nothing(index_elements=["tenant_id", "miss_key"])
        .returning(_miss.c.id)
    ).scalar_one_or_none()
    if counted is not None:
        session.execute(
            sa.update(_cb)
            .where(owned_by(_cb, tenant_id), _cb.c.id == item_id)
            .values(
                miss_count=_cb.c.miss_count + 1,
                last_missed_at=sa.case((_cb.c.last_missed_at < at, at), else_=_cb.c.last_missed_at),
                first_missed_at=sa.case((_cb.c.first_missed_at > at, at), else_=_cb.c.first_missed_at),
            )
        )
        announce(session, tenant_id, "callbacks", item_id)
    return item_id


def miss_key_of_call(call: Call) -> str:
    """One key for every leg and every report of one caller's call."""
    if call.pbx_linked_id:
        return f"pbx:{call.pbx_linked_id}"
    if call.sip_call_id:
        return f"sip:{call.sip_call_id.split(';')[0]}"
    return f"call:{call.id}"


def on_call_missed(session: Session, tenant_id: int, call_id: int) -> int | None:
    """Hook: the call ``call_id`` became MISSED. An inbound one joins the callback queue."""
    call = session.exec(tenant_select(Call, tenant_id).where(Call.id == call_id)).first()
    if call is None or call.direction != CallDirection.INBOUND or call.status != CallStatus.MISSED:
        return None
    if not (call.remote_number or "").strip() or call.remote_number == "unknown":
        return None
    # The same call seen again (the PBX's record of a miss the softphone reported) counts once.
    counted = session.execute(
        sa.select(_miss.c.callback_id).where(owned_by(_miss, tenant_id), _miss.c.call_id == call.id)
    ).scalar_one_or_none()
    if counted is not None:
        return counted
    return _add_miss(
        session, tenant_id, number=call.remote_e164 or call.remote_number, channel=CallbackChannel.CALL,
        at=call.started_at, miss_key=miss_key_of_call(call), call_id=call.id, client_id=call.client_id,
    )


def withdraw_call(session: Session, tenant_id: int, call_id: int) -> int | None:
    """Hook: the call ``call_id`` turned out answered after it was counted as a miss (one
    phone of the agent logged it missed while another phone took it). Its miss no longer
    counts; an open item left with no miss and no callback is removed."""
    item_id = session.execute(
        sa.delete(_miss).where(owned_by(_miss, tenant_id), _miss.c.call_id == call_id).returning(_miss.c.callback_id)
    ).scalar_one_or_none()
    if item_id is None:
        return None
    session.execute(
        sa.update(_cb).where(owned_by(_cb, tenant_id), _cb.c.id == item_id, _cb.c.miss_count > 0).values(miss_count=_cb.c.miss_count - 1)
    )
    session.execute(
        sa.delete(_cb).where(
            owned_by(_cb, tenant_id), _cb.c.id == item_id, _cb.c.miss_count == 0, _cb.c.closed_at.is_(None),
            _cb.c.attempts == 0, _cb.c.claimed_by_user_id.is_(None),
        )
    )
    announce(session, tenant_id, "callbacks", item_id)
    return item_id


def on_outbound_call(session: Session, tenant_id: int, call_id: int) -> int | None:
    """Hook: an outbound call was logged. To a number with an open item it is that item's
    callback (claimed by its caller, or claimed now when nobody had)."""
    call = session.exec(tenant_select(Call, tenant_id).where(Call.id == call_id)).first()
    if call is None or call.direction != CallDirection.OUTBOUND or call.agent_user_id is None:
        return None
    key, _ = _number_key(session, tenant_id, call.remote_e164 or call.remote_number)
    return outbound_call_logged(session, tenant_id, call_id=call.id, agent_user_id=call.agent_user_id, key=key, at=call.started_at)


def number_key_of_call(remote_e164: str | None, remote_number: str) -> str:
    """The item key of a call's number as :func:`_number_key` gives it, for a caller that has
    normalised the number with the firm's region already (log_call): its E.164 form, else its
    digits."""
    if remote_e164:
        return remote_e164
    digits = "".join(ch for ch in remote_number if ch.isdigit() or ch == "+")
    return (digits or remote_number.strip())[:64]


# The usual outbound call is to a number nobody waits on: one indexed read says so, before
# the locking read of the item.
_OPEN_ITEM = Prepared(
    sa.select(_cb.c.id).where(owned_by(_cb, sa.bindparam("tenant_id", type_=sa.Integer)), _cb.c.open_key == sa.bindparam("key"))
)


def outbound_call_logged(
    session: Session, tenant_id: int, *, call_id: int, agent_user_id: int | None, key: str, at: datetime
) -> int | None:
    """:func:`on_outbound_call` for a caller that knows the new call: its agent, the item key of
    its number (:func:`number_key_of_call`) and its start."""
    if agent_user_id is None or not _OPEN_ITEM.all(session.connection(), {"tenant_id": tenant_id, "key": key}):
        return None
    item = session.exec(tenant_select(Callback, tenant_id).where(Callback.open_key == key).with_for_update()).first()
    if item is None or item.claimed_by_user_id not in (None, agent_user_id):
        return None
    if item.claimed_by_user_id is None:
        item.claimed_by_user_id, item.claimed_at = agent_user_id, at
    item.callback_call_id = call_id
    item.attempts += 1
    item.first_callback_at = item.first_callback_at or at
    session.flush()
    announce(session, tenant_id, "callbacks", item.id)
    return item.id


def record_miss(*, session: Session, tenant_id: int, actor: Principal, data: CallbackMissIn) -> CallbackPublic:
    """A missed contact reported by hand or by an integration (a WhatsApp call)."""
    require_member(actor, tenant_id)
    number = (data.number or "").strip()
    if not number or len(number) > 64:
        raise Invalid("number", "the number is required, at most 64 characters")
    if not any(ch.isdigit() for ch in number):
        raise Invalid("number", "the number has no digits")
    now = utcnow()
    at = event_time(data.missed_at, "missed_at", now=now) or now
    key, _ = _number_key(session, tenant_id, number)
    item_id = _add_miss(session, tenant_id, number=number, channel=data.channel, at=at, miss_key=f"{data.channel.value}:{key}:{at.isoformat()}")
    return get_callback(session=session, tenant_id=tenant_id, actor=actor, callback_id=item_id)


def record_whatsapp_call(session: Session, tenant_id: int, *, number: str, call_id: str, at: datetime) -> int | None:
    """Hook of services.whatsapp.calls: an inbound WhatsApp call (offer) nobody took, counted
    once per WhatsApp call id on the number's open item (channel WHATSAPP)."""
    if not number.strip():
        return None
    return _add_miss(session, tenant_id, number=number, channel=CallbackChannel.WHATSAPP, at=at, miss_key=f"wa:{call_id}")


def claim(*, session: Session, tenant_id: int, actor: Principal, callback_id: int) -> CallbackPublic:
    """The actor takes the item; :class:`Conflict` when someone else holds it or it is closed."""
    require_member(actor, tenant_id)
    now = utcnow()
    won = session.execute(
        sa.update(_cb)
        .where(owned_by(_cb, tenant_id), _cb.c.id == callback_id, _cb.c.closed_at.is_(None), _cb.c.claimed_by_user_id.is_(None))
        .values(claimed_by_user_id=actor.user_id, claimed_at=now)
    ).rowcount
    item = get_callback(session=session, tenant_id=tenant_id, actor=actor, callback_id=callback_id)
    if not won:
        if item.closed_at is not None:
            raise Conflict("this callback is closed", field="callback")
        if item.claimed_by_user_id != actor.user_id:
            raise Conflict(f"{item.claimed_by_name or 'another agent'} has claimed this callback", field="callback")
        return item
    announce(session, tenant_id, "callbacks", callback_id)
    return item


def release(*, session: Session, tenant_id: int, actor: Principal, callback_id: int) -> CallbackPublic:
    """Gives a claimed item back to the queue (its holder or a supervisor)."""
    item = _editable(session, tenant_id, actor, callback_id)
    item.claimed_by_user_id, item.claimed_at = None, None
    session.flush()
    announce(session, tenant_id, "callbacks", callback_id)
    return get_callback(session=session, tenant_id=tenant_id, actor=actor, callback_id=callback_id)


def _editable(session: Session, tenant_id: int, actor: Principal, callback_id: int) -> Callback:
    require_member(actor, tenant_id)
    item = session.exec(tenant_select(Callback, tenant_id).where(Callback.id == callback_id).with_for_update()).first()
    if item is None:
        raise NotFound("callback not found")
    if item.closed_at is not None:
        raise Conflict("this callback is closed", field="callback")
    holder = item.claimed_by_user_id
    if holder not in (None, actor.user_id) and not allowed(actor, Permission.VIEW_ALL_CALLS):
        raise Conflict("another agent has claimed this callback", field="callback")
    return item


def close(*, session: Session, tenant_id: int, actor: Principal, callback_id: int, outcome: CallbackOutcome) -> CallbackPublic:
    """Closes the item with an outcome; its number may open a new item with its next miss."""
    item = _editable(session, tenant_id, actor, callback_id)
    now = utcnow()
    if item.claimed_by_user_id is None:
        item.claimed_by_user_id, item.claimed_at = actor.user_id, now
    item.outcome = outcome
    item.closed_at = now
    item.closed_by_user_id = actor.user_id
    item.open_key = None
    session.flush()
    announce(session, tenant_id, "callbacks", callback_id)
    return get_callback(session=session, tenant_id=tenant_id, actor=actor, callback_id=callback_id)


def _public(session: Session, tenant_id: int, *, where: list[sa.ColumnElement[bool]], now: datetime, limit: int = 500) -> list[CallbackPublic]:
    claimer = sa.orm.aliased(User)
    rows = session.execute(
        sa.select(Callback, Client.name, claimer.full_name)
        .outerjoin(Client, owned_join(Client, Client.id == Callback.client_id, tenant_id))
        .outerjoin(claimer, owned_join(claimer, claimer.id == Callback.claimed_by_user_id, tenant_id))
        .where(owned_by(Callback, tenant_id), *where)
        .order_by(Callback.first_missed_at, Callback.id)
        .limit(limit)
    ).all()
    hours = get_hours(session=session, tenant_id=tenant_id)
    zone = firm_zone(session, tenant_id)
    target = timedelta(minutes=hours.callback_target_minutes).total_seconds()
    out = []
    for item, client_name, claimer_name in rows:
        waited_until = item.first_callback_at or item.closed_at or now
        over = item.closed_at is None and item.first_callback_at is None and business_seconds(hours, zone, item.first_missed_at, waited_until) > target
        out.append(CallbackPublic.model_validate({**item.model_dump(), "client_name": client_name, "claimed_by_name": claimer_name, "over_target": over}))
    return out


def get_callback(*, session: Session, tenant_id: int, actor: Principal, callback_id: int) -> CallbackPublic:
    require_member(actor, tenant_id)
    found = _public(session, tenant_id, where=[Callback.id == callback_id], now=utcnow())
    if not found:
        raise NotFound("callback not found")
    return found[0]


def list_callbacks(
    *, session: Session, tenant_id: int, actor: Principal, include_closed: bool = False, now: datetime | None = None
) -> list[CallbackPublic]:
    """The queue, oldest miss first (open items only unless ``include_closed``)."""
    require_member(actor, tenant_id)
    where = [] if include_closed else [Callback.closed_at.is_(None)]  # type: ignore[union-attr]
    return _public(session, tenant_id, where=where, now=now or utcnow())

