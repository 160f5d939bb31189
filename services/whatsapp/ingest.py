"""No gaps in what the line received: per-firm counters, the last offline sync, and dead letters.

The sidecar counts every inbound message it is handed (received), every row it newly stored
(stored; a message seen again, e.g. live and then in a history sync, is stored once) and every
message it could not store even after retries (failed). Such a message is kept raw in
``whatsapp_dead_letter``: an owner or admin sees it and can have it stored again; it is never
dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, func, select

from services import audit, authz, db
from services.authz import Permission
from services.errors import Conflict, Invalid
from services.models import (
    Principal,
    WhatsappDeadLetter,
    WhatsappDeadLetterPublic,
    WhatsappDeadLettersPage,
    WhatsappInbound,
    WhatsappIngestStats,
    WhatsappSession,
    utcnow,
)
from services.tenancy import get_owned, owned_by, tenant_select
from services.whatsapp import delivery

MAX_DEAD_LETTERS = 500


def count(*, session: Session, tenant_id: int, received: int = 0, stored: int = 0, failed: int = 0) -> None:
    """Add to the firm's inbound counters (in the caller's transaction)."""
    if not (received or stored or failed):
        return
    session.execute(
        sa.update(WhatsappSession)
        .where(owned_by(WhatsappSession, tenant_id))
        .values(
            messages_received=WhatsappSession.messages_received + received,
            messages_stored=WhatsappSession.messages_stored + stored,
            messages_failed=WhatsappSession.messages_failed + failed,
        )
        .execution_options(synchronize_session=False)
    )


def store_counted(*, session: Session, tenant_id: int, messages: Sequence[WhatsappInbound]) -> int:
    """Store inbound messages (deduplicated) and count them, in one transaction; returns new rows."""
    stored = delivery.store_inbound(session=session, tenant_id=tenant_id, messages=messages)
    count(session=session, tenant_id=tenant_id, received=len(messages), stored=stored)
    return stored


def dead_letter(*, session: Session, tenant_id: int, message: WhatsappInbound, error: str, attempts: int) -> None:
    """Keep a message that could not be stored, raw; counted as received and failed once.

    The same WhatsApp id failing again (redelivered) adds attempts to its one dead letter.
    """
    now = utcnow()
    wa_id = (message.wa_message_id or "?")[:256]
    table = WhatsappDeadLetter.__table__  # type: ignore[attr-defined]
    existing = session.exec(
        select(WhatsappDeadLetter).where(owned_by(WhatsappDeadLetter, tenant_id), WhatsappDeadLetter.wa_message_id == wa_id)
    ).first()
    if existing is not None:
        existing.attempts += attempts
        existing.error = error[:512]
        existing.last_attempt_at = now
        session.add(existing)
        count(session=session, tenant_id=tenant_id, received=1)
        return
    stmt = db.dialect_insert(session, table).on_conflict_do_nothing(index_elements=["tenant_id", "wa_message_id"])
    session.execute(
        stmt,
        [
            {
                "tenant_id": tenant_id,
                "wa_message_id": wa_id,
                "payload": message.model_dump_json(),
                "error": error[:512],
                "attempts": attempts,
                "created_at": now,
                "last_attempt_at": now,
            }
        ],
    )
    count(session=session, tenant_id=tenant_id, received=1, failed=1)


def record_offline_sync(*, session: Session, tenant_id: int, messages: int, at: datetime | None = None) -> None:
    """After a reconnect: how many messages the offline sync brought (what arrived while away)."""
    session.execute(
        sa.update(WhatsappSession)
        .where(owned_by(WhatsappSession, tenant_id))
        .values(offline_sync_messages=max(0, messages), offline_sync_at=at or utcnow())
        .execution_options(synchronize_session=False)
    )


def get_stats(*, session: Session, tenant_id: int, actor: Principal) -> WhatsappIngestStats:
    """The firm's inbound counters and last offline sync (any member)."""
    authz.require_member(actor, tenant_id)
    row = session.exec(tenant_select(WhatsappSession, tenant_id)).first()
    dead = session.exec(select(func.count()).select_from(WhatsappDeadLetter).where(owned_by(WhatsappDeadLetter, tenant_id))).one()
    if row is None:
        return WhatsappIngestStats(received=0, stored=0, failed=0, dead_letters=dead, offline_sync_messages=None, offline_sync_at=None)
    return WhatsappIngestStats(
        received=row.messages_received,
        stored=row.messages_stored,
        failed=row.messages_failed,
        dead_letters=dead,
        offline_sync_messages=row.offline_sync_messages,
        offline_sync_at=row.offline_sync_at,
    )


def _public(row: WhatsappDeadLetter) -> WhatsappDeadLetterPublic:
    return WhatsappDeadLetterPublic.model_validate(row, from_attributes=True)


def list_dead_letters(*, session: Session, tenant_id: int, actor: Principal, limit: int = 100) -> WhatsappDeadLettersPage:
    """Messages that could not be stored, newest first (OWNER/ADMIN: they hold raw content)."""
    authz.require(actor, Permission.LINK_WHATSAPP, tenant_id=tenant_id)
    if not 1 <= limit <= MAX_DEAD_LETTERS:
        raise Invalid("limit", f"limit must be between 1 and {MAX_DEAD_LETTERS}")
    total = session.exec(select(func.count()).select_from(WhatsappDeadLetter).where(owned_by(WhatsappDeadLetter, tenant_id))).one()
    rows = session.exec(
        tenant_select(WhatsappDeadLetter, tenant_id)
        .order_by(WhatsappDeadLetter.created_at.desc(), WhatsappDeadLetter.id.desc())  # type: ignore[attr-defined]
        .limit(limit)
    ).all()
    return WhatsappDeadLettersPage(data=[_public(r) for r in rows], count=total)


def retry_dead_letter(*, session: Session, tenant_id: int, actor: Principal, dead_letter_id: int) -> bool:
    """Store a dead letter's message now (OWNER/ADMIN); it leaves the dead letters once stored.

    Returns whether a new message row was made (False: WhatsApp's id was stored meanwhile).
    Conflict when it still cannot be stored; it then stays, with the attempt counted. Audited.
    """
    authz.require(actor, Permission.LINK_WHATSAPP, tenant_id=tenant_id)
    row = get_owned(session, WhatsappDeadLetter, tenant_id, dead_letter_id, what="dead letter")
    message = WhatsappInbound.model_validate_json(row.payload)
    try:
        with session.begin_nested():
            stored = delivery.store_inbound(session=session, tenant_id=tenant_id, messages=[message])
    except Exception as exc:
        row.attempts += 1
        row.last_attempt_at = utcnow()
        session.add(row)
        session.flush()
        raise Conflict("the message still cannot be stored; it stays among the dead letters", field="id") from exc
    count(session=session, tenant_id=tenant_id, stored=stored, failed=-1)
    session.delete(row)
    audit.record(
        session=session, tenant_id=tenant_id, actor=actor, action="whatsapp.dead_letter.retry", object_type="whatsapp_dead_letter", object_id=dead_letter_id
    )
    session.flush()
    return bool(stored)
