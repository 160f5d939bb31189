"""What the sidecar records about messages: inbound ones, the outbox, send results, receipts.

Sends are fenced by attempt: a message is marked SENDING by one attempt (committed before the
gateway has it), and a SENDING row of an attempt that is gone is an orphan to settle, never a
message to send again blindly. Receipts only move a message forward.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, func, select

from services import blobs, clients, db
from services.errors import Invalid
from services.models import (
    Blob,
    BlobKind,
    MessageDirection,
    MessageStatus,
    WhatsappInbound,
    WhatsappMessage,
    WhatsappOutbound,
    utcnow,
)
from services.models.base import max_length
from services.names import clean_name
from services.tenancy import get_owned, owned_by, tenant_select
from services.timestamps import reported_time
from services.whatsapp import lids, media
from services.whatsapp.failures import Failure, classify

# Receipts only move a message forward: a late DELIVERED never undoes READ. A receipt for a
# message still SENDING or UNCERTAIN proves it reached WhatsApp.
# What a gateway reports must fit the message's columns (WhatsappMessageBase declares them).
_ID_MAX = max_length(WhatsappMessage, "wa_message_id")
_JID_MAX = max_length(WhatsappMessage, "chat_jid")
_ATTEMPT_MAX = max_length(WhatsappMessage, "send_attempt_id")

_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENDING: 0,
    MessageStatus.UNCERTAIN: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
}


def store_inbound(*, session: Session, tenant_id: int, messages: Sequence[WhatsappInbound]) -> int:
    """Store received messages once each (a WhatsApp id seen before is ignored), matched to clients.

    Returns how many were new. Messages the firm sent from the phone itself come as ``from_me``
    and are stored as OUTBOUND / SENT. A sender known by LID is put in its phone's conversation
    when the number is known, and mappings the messages carry are learned (``lids``).
    """
    if not messages:
        return 0
    for m in messages:
        if not m.wa_message_id or len(m.wa_message_id) > _ID_MAX:
            raise Invalid("wa_message_id", f"a WhatsApp message id is 1 to {_ID_MAX} characters")
        if not m.chat_jid or len(m.chat_jid) > _JID_MAX:
            raise Invalid("chat_jid", f"a chat JID is 1 to {_JID_MAX} characters")
        if m.timestamp is not None and m.timestamp.tzinfo is None:
            raise Invalid("timestamp", "a timestamp must carry its time zone")
    messages = lids.resolve(session=session, tenant_id=tenant_id, messages=messages)
    matched = clients.match_numbers(session=session, tenant_id=tenant_id, numbers={m.remote_e164 for m in messages if m.remote_e164})
    now = utcnow()
    rows = []
    seen: set[str] = set()
    for m in messages:
        if m.wa_message_id in seen:
            continue
        seen.add(m.wa_message_id)
        # The sender's clock stamps the message; a stamp outside the plausible range would
        # break every view of the firm's messages, so the time of receipt stands in for it.
        at = reported_time(m.timestamp, now=now)
        rows.append(
            {
                "tenant_id": tenant_id,
                "wa_message_id": m.wa_message_id,
                "direction": MessageDirection.OUTBOUND if m.from_me else MessageDirection.INBOUND,
                "status": MessageStatus.SENT if m.from_me else MessageStatus.RECEIVED,
                "chat_jid": m.chat_jid,
                "remote_e164": m.remote_e164,
                "client_id": matched.get(m.remote_e164) if m.remote_e164 else None,
                "push_name": clean_name(m.push_name)[:128] or None,
                "message_type": (m.message_type or "text")[:32],
                "body": m.body or "",
                "attempts": 0,
                "created_at": at,
                "sent_at": at if m.from_me else None,
                "updated_at": now,
                **media.inbound_columns(m),
            }
        )
    table = WhatsappMessage.__table__  # type: ignore[attr-defined]
    stmt = db.dialect_insert(session, table).on_conflict_do_nothing(index_elements=["tenant_id", "wa_message_id"])
    # Count new rows by what exists afterwards: rowcount of executemany is not reliable on every driver.
    ids = [r["wa_message_id"] for r in rows]
    before = _count_existing(session, tenant_id, ids)
    session.execute(stmt, rows)
    echoes = [m.wa_message_id for m in messages if m.from_me]
    if echoes:
        # Our own message seen from WhatsApp's side (an echo, a history sync): it was sent.
        session.execute(
            sa.update(WhatsappMessage)
            .where(
                owned_by(WhatsappMessage, tenant_id),
                WhatsappMessage.wa_message_id.in_(echoes),  # type: ignore[union-attr]
                WhatsappMessage.status.in_((MessageStatus.SENDING, MessageStatus.UNCERTAIN)),  # type: ignore[attr-defined]
            )
            .values(status=MessageStatus.SENT, sent_at=sa.func.coalesce(WhatsappMessage.sending_started_at, now), error=None, error_code=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return _count_existing(session, tenant_id, ids) - before


def _count_existing(session: Session, tenant_id: int, wa_ids: list[str]) -> int:
    total = 0
    for start in range(0, len(wa_ids), 500):
        chunk = wa_ids[start : start + 500]
        total += session.exec(
            select(func.count())
            .select_from(WhatsappMessage)
            .where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.wa_message_id.in_(chunk))  # type: ignore[union-attr]
        ).one()
    return total


def tenants_with_pending(*, session: Session, tenant_ids: Iterable[int]) -> set[int]:
    """Which of these tenants (the ones a sidecar holds) have outbound messages waiting: PENDING,
    or SENDING (a send in flight, or one orphaned by a crash that needs checking)."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return set()
    rows = session.exec(
        select(WhatsappMessage.tenant_id)
        .where(
            WhatsappMessage.tenant_id.in_(ids),  # type: ignore[attr-defined]
            WhatsappMessage.status.in_((MessageStatus.PENDING, MessageStatus.SENDING)),  # type: ignore[attr-defined]
            WhatsappMessage.direction == MessageDirection.OUTBOUND,
        )
        .distinct()
    ).all()
    return set(rows)


def _outbound(row: WhatsappMessage, media_key: str | None, media_purpose: str | None = None) -> WhatsappOutbound:
    return WhatsappOutbound(
        id=row.id,  # type: ignore[arg-type]
        chat_jid=row.chat_jid,
        body=row.body,
        attempts=row.attempts,
        status=row.status,
        wa_message_id=row.wa_message_id,
        send_attempt_id=row.send_attempt_id,
        media_key=media_key if row.media_state == "stored" else None,
        media_purpose=media_purpose,
        media_name=row.media_name,
        media_mime=row.media_mime,
    )


def next_outbound(*, session: Session, tenant_id: int, limit: int = 100) -> list[WhatsappOutbound]:
    """The firm's PENDING outbound messages, oldest first (the order they must be sent in per chat)."""
    rows = session.exec(
        tenant_select(WhatsappMessage, tenant_id)
        .where(WhatsappMessage.status == MessageStatus.PENDING, WhatsappMessage.direction == MessageDirection.OUTBOUND)
        .order_by(WhatsappMessage.id)
        .limit(limit)
    ).all()
    return _outbounds(session, tenant_id, rows)


def _outbounds(session: Session, tenant_id: int, rows: Sequence[WhatsappMessage]) -> list[WhatsappOutbound]:
    """The rows as the sender needs them, each file with its storage key and the purpose it is
    sealed with (from its blob: a case document sent is not necessarily a WhatsApp file)."""
    ids = [r.blob_id for r in rows if r.blob_id is not None]
    files = (
        {i: (key, kind) for i, key, kind in session.execute(sa.select(Blob.id, Blob.storage_key, Blob.kind).where(owned_by(Blob, tenant_id), Blob.id.in_(ids))).all()}  # type: ignore[union-attr]
        if ids
        else {}
    )
    out = []
    for r in rows:
        key, kind = files.get(r.blob_id, (None, None))  # type: ignore[arg-type]
        out.append(_outbound(r, key, blobs.PURPOSES.get(BlobKind(kind)) if kind else None))
    return out


def orphaned_sends(*, session: Session, tenant_id: int, live_attempts: Iterable[str] = (), limit: int = 100) -> list[WhatsappOutbound]:
    """The firm's messages left SENDING by an attempt that is not among ``live_attempts``.

    Only the sidecar holding the firm's lease sends for it, so a SENDING row of any other
    attempt belongs to a sender that is gone (a crashed process, or one that lost the lease):
    nobody will ever record how that send ended. Oldest first.
    """
    live = sorted(set(live_attempts))
    query = tenant_select(WhatsappMessage, tenant_id).where(
        WhatsappMessage.status == MessageStatus.SENDING, WhatsappMessage.direction == MessageDirection.OUTBOUND
    )
    if live:
        query = query.where(
            sa.or_(WhatsappMessage.send_attempt_id.is_(None), WhatsappMessage.send_attempt_id.not_in(live))  # type: ignore[union-attr]
        )
    rows = session.exec(query.order_by(WhatsappMessage.id).limit(limit)).all()
    return _outbounds(session, tenant_id, rows)


def begin_send(
    *,
    session: Session,
    tenant_id: int,
    message_id: int,
    attempt_id: str,
    wa_message_id: str | None = None,
    replaces_attempt: str | None = None,
) -> int | None:
    """Mark a message SENDING by ``attempt_id``, with the time and (when the gateway takes one)
    the WhatsApp id chosen for it; the caller commits this before handing the message over.

    Takes a PENDING message, or with ``replaces_attempt`` a SENDING one orphaned by that
    attempt. Returns the number of attempts, or None when the message is no longer in that
    state (another sender took it, or a person decided about it meanwhile).
    """
    if not attempt_id or len(attempt_id) > _ATTEMPT_MAX:
        raise Invalid("attempt_id", f"an attempt id is 1 to {_ATTEMPT_MAX} characters")
    if wa_message_id is not None and not 0 < len(wa_message_id) <= _ID_MAX:
        raise Invalid("wa_message_id", f"a WhatsApp message id is 1 to {_ID_MAX} characters")
    now = utcnow()
    condition = (
        sa.and_(WhatsappMessage.status == MessageStatus.SENDING, WhatsappMessage.send_attempt_id == replaces_attempt)
        if replaces_attempt is not None
        else WhatsappMessage.status == MessageStatus.PENDING
    )
    values: dict[str, object] = {
        "status": MessageStatus.SENDING,
        "send_attempt_id": attempt_id,
        "sending_started_at": now,
        "attempts": WhatsappMessage.attempts + 1,
        "updated_at": now,
    }
    if wa_message_id is not None:
        values["wa_message_id"] = wa_message_id
    result = session.execute(
        sa.update(WhatsappMessage)
        .where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.id == message_id, condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    return session.execute(
        sa.select(WhatsappMessage.attempts).where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.id == message_id)
    ).scalar_one()


def mark_sent(*, session: Session, tenant_id: int, message_id: int, wa_message_id: str, sent_at: datetime | None = None) -> None:
    """WhatsApp accepted the message: SENT with its WhatsApp id.

    A receipt that overtook this call has already moved it further; that is kept.
    """
    if not wa_message_id or len(wa_message_id) > _ID_MAX:
        raise Invalid("wa_message_id", f"a WhatsApp message id is 1 to {_ID_MAX} characters")
    row = get_owned(session, WhatsappMessage, tenant_id, message_id, what="message")
    if row.status in (MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.UNCERTAIN, MessageStatus.FAILED):
        row.status = MessageStatus.SENT
    row.wa_message_id = wa_message_id
    row.sent_at = row.sent_at or reported_time(sent_at)
    row.error = None
    row.error_code = None
    row.updated_at = utcnow()
    session.add(row)
    session.flush()


def mark_failed(
    *, session: Session, tenant_id: int, message_id: int, error: str, final: bool, code: Failure | str | None = None
) -> None:
    """A send attempt failed (WhatsApp said so): back to PENDING for another try, or FAILED when
    ``final``; the raw ``error`` is kept and classified."""
    row = get_owned(session, WhatsappMessage, tenant_id, message_id, what="message")
    if row.status not in (MessageStatus.PENDING, MessageStatus.SENDING):
        return
    row.error = (error or "send failed")[:512]
    row.error_code = classify(error, code, default=Failure.SEND_FAILED).value
    row.status = MessageStatus.FAILED if final else MessageStatus.PENDING
    row.updated_at = utcnow()
    session.add(row)
    session.flush()


def mark_uncertain(*, session: Session, tenant_id: int, message_id: int, detail: str) -> bool:
    """Nobody can tell whether this SENDING message reached WhatsApp: UNCERTAIN, for a person to
    decide (send again, or mark as sent). Never re-sent on its own. False if it moved meanwhile."""
    row = get_owned(session, WhatsappMessage, tenant_id, message_id, what="message")
    if row.status != MessageStatus.SENDING:
        return False
    row.status = MessageStatus.UNCERTAIN
    row.error = (detail or "")[:512]
    row.error_code = Failure.SEND_UNCERTAIN.value
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return True



def apply_receipt(
    *, session: Session, tenant_id: int, wa_message_ids: Sequence[str], status: MessageStatus, at: datetime | None = None
) -> int:
    """Delivery/read receipts for the firm's outbound messages; returns how many moved forward."""
    if status not in (MessageStatus.DELIVERED, MessageStatus.READ):
        raise Invalid("status", "a receipt is DELIVERED or READ")
    ids = [i for i in wa_message_ids if i]
    if not ids:
        return 0
    at = reported_time(at)
    rows = session.exec(
        tenant_select(WhatsappMessage, tenant_id).where(
            WhatsappMessage.wa_message_id.in_(ids),  # type: ignore[union-attr]
            WhatsappMessage.direction == MessageDirection.OUTBOUND,
        )
    ).all()
    moved = 0
    for row in rows:
        if row.status not in _RANK or _RANK[row.status] >= _RANK[status]:
            continue
        if row.status in (MessageStatus.SENDING, MessageStatus.UNCERTAIN):
            # WhatsApp's receipt settles what the crashed sender could not tell.
            row.sent_at = row.sent_at or row.sending_started_at or at
            row.error = None
            row.error_code = None
        row.status = status
        if row.delivered_at is None:
            row.delivered_at = at
        if status == MessageStatus.READ:
            row.read_at = at
        row.updated_at = utcnow()
        session.add(row)
        moved += 1
    session.flush()
    return moved
