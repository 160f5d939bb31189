"""The firm's WhatsApp messages as people use them: send, list, and decide about UNCERTAIN ones.

``send_message`` only queues a PENDING row; the sidecar sends it (``delivery`` records how it
went). A message nobody can tell was sent becomes UNCERTAIN, and a person decides here: send it
again, or mark it as sent.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, func, select

from services import audit, authz, clients, paging, phones
from services.errors import Conflict, Invalid
from services.models import (
    Blob,
    Case,
    CaseFile,
    Client,
    MessageDirection,
    MessageStatus,
    Principal,
    Tenant,
    WhatsappMessage,
    WhatsappMessagePublic,
    WhatsappMessagesPage,
    WhatsappSend,
    utcnow,
)
from services.models.base import max_length
from services.tenancy import get_owned, owned_by, owned_join, tenant_select
from services.timestamps import search_bound
from services.whatsapp.failures import Failure, classify, sentence
from services.whatsapp.sessions import require_connected

MAX_BODY = max_length(WhatsappSend, "body")
# What the message list's cursors are tagged with: a cursor of another list is refused.
CURSOR_TAG = "wamsg"


def _message_error_code(row: WhatsappMessage) -> str | None:
    if row.error_code:
        return row.error_code
    # Rows written before failures were classified carry only the raw text.
    return classify(row.error, default=Failure.SEND_FAILED).value if row.error else None


def _file_sha256(session: Session, tenant_id: int, row: WhatsappMessage) -> str | None:
    if row.blob_id is None:
        return None
    blob = session.exec(tenant_select(Blob, tenant_id).where(Blob.id == row.blob_id)).first()
    return blob.sha256 if blob else None


def _message_public(row: WhatsappMessage, client_name: str | None, media_sha256: str | None = None) -> WhatsappMessagePublic:
    """The message as shown; ``media_sha256`` is its stored file's digest (the blob's)."""
    code = _message_error_code(row)
    return WhatsappMessagePublic(
        id=row.id,  # type: ignore[arg-type]
        wa_message_id=row.wa_message_id,
        direction=row.direction,
        status=row.status,
        chat_jid=row.chat_jid,
        remote_e164=row.remote_e164,
        client_id=row.client_id,
        client_name=client_name,
        push_name=row.push_name,
        message_type=row.message_type,
        body=row.body,
        error_code=code,
        error=sentence(code),
        created_at=row.created_at,
        sent_at=row.sent_at,
        delivered_at=row.delivered_at,
        read_at=row.read_at,
        media_state=row.media_state,
        media_name=row.media_name,
        media_mime=row.media_mime,
        media_size=row.media_size,
        media_sha256=media_sha256 or None,
    )


def chat_jid_for(e164: str) -> str:
    """The WhatsApp chat of a phone number: its digits without the plus."""
    return f"{phones.digits_of(e164)}@s.whatsapp.net"


def _tenant_region(session: Session, tenant_id: int) -> str:
    region = session.exec(select(Tenant.region).where(Tenant.id == tenant_id)).first()
    return region or "SA"



def _recipient(session: Session, tenant_id: int, data: WhatsappSend) -> tuple[str, int | None, str | None]:
    """(number, client id, client name) of a message's recipient: exactly one of ``to`` (any
    phone format, read in the firm's region) and ``client_id``."""
    has_to = bool((data.to or "").strip())
    if has_to == (data.client_id is not None):
        raise Invalid("to", "give either a phone number or a client, not both")
    client_name: str | None = None
    if data.client_id is not None:
        client = get_owned(session, Client, tenant_id, data.client_id, what="client")
        if not client.phone_e164:
            raise Invalid("client_id", "this client has no valid phone number")
        e164 = client.phone_e164
        client_id: int | None = client.id
        client_name = client.name
    else:
        e164 = phones.normalise(data.to, _tenant_region(session, tenant_id), field="to")
        match = clients.match_number(session=session, tenant_id=tenant_id, e164=e164)
        client_id = match.id if match else None
        client_name = match.name if match else None
    return e164, client_id, client_name


def send_message(*, session: Session, tenant_id: int, actor: Principal, data: WhatsappSend) -> WhatsappMessagePublic:
    """Queue a text message to a number or to a client; the sidecar sends it (PENDING until then).

    Exactly one of ``to`` (any phone format, read in the firm's region) and ``client_id``.
    Conflict when the line is not connected.
    """
    authz.require_member(actor, tenant_id)
    # The length was checked when ``data`` was built (WhatsappSend declares it).
    body = data.body if isinstance(data.body, str) else ""
    if not body.strip():
        raise Invalid("body", "a message is required")
    message, client_name = queue_outbound(session, tenant_id, actor, data, message_type="text", body=body)
    return _message_public(message, client_name)


def queue_outbound(
    session: Session, tenant_id: int, actor: Principal, data: WhatsappSend, *, message_type: str, body: str, **media_fields: str
) -> tuple[WhatsappMessage, str | None]:
    """The PENDING outbound message to ``data``'s number or client (flushed: it has its id)
    and the client's name; Conflict when the line is not connected. The sidecar sends it.
    Text (send_message) and files (services.whatsapp.outbox_files) are queued here."""
    e164, client_id, client_name = _recipient(session, tenant_id, data)
    require_connected(session=session, tenant_id=tenant_id)
    message = WhatsappMessage(
        tenant_id=tenant_id,
        direction=MessageDirection.OUTBOUND,
        status=MessageStatus.PENDING,
        chat_jid=chat_jid_for(e164),
        remote_e164=e164,
        client_id=client_id,
        sender_user_id=actor.user_id,
        message_type=message_type,
        body=body,
        **media_fields,
    )
    session.add(message)
    session.flush()
    return message, client_name


def get_messages(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    client_id: int | None = None,
    direction: MessageDirection | None = None,
    chat_jid: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> WhatsappMessagesPage:
    """The firm's messages, newest first, filtered (AND) and paged by keyset cursor.

    ``date_from`` / ``date_to`` are a half-open range: from ``date_from`` up to, not including,
    ``date_to`` (a page's "through this day" is the next day's midnight).
    """
    authz.require_member(actor, tenant_id)
    if not 1 <= limit <= 500:
        raise Invalid("limit", "limit must be between 1 and 500")
    for name, value in (("date_from", date_from), ("date_to", date_to)):
        if value is not None and value.tzinfo is None:
            raise Invalid(name, "a date must carry its time zone")
    if date_from and date_to and date_from > date_to:
        raise Invalid("date_from", "the start is after the end")
    date_from = search_bound(date_from, "date_from")
    date_to = search_bound(date_to, "date_to")
    if client_id is not None:
        get_owned(session, Client, tenant_id, client_id, what="client")
    conditions: list[sa.ColumnElement[bool]] = [owned_by(WhatsappMessage, tenant_id)]
    if client_id is not None:
        conditions.append(WhatsappMessage.client_id == client_id)
    if direction is not None:
        conditions.append(WhatsappMessage.direction == MessageDirection(direction))
    if chat_jid:
        conditions.append(WhatsappMessage.chat_jid == chat_jid)
    if date_from is not None:
        conditions.append(WhatsappMessage.created_at >= date_from)
    if date_to is not None:
        conditions.append(WhatsappMessage.created_at < date_to)
    count = session.exec(select(func.count()).select_from(WhatsappMessage).where(*conditions)).one()
    page_conditions = list(conditions)
    if cursor:
        at, row_id = paging.decode_cursor(cursor, CURSOR_TAG)
        page_conditions.append(
            sa.or_(
                WhatsappMessage.created_at < at,
                sa.and_(WhatsappMessage.created_at == at, WhatsappMessage.id < row_id),
            )
        )
    query = (
        select(WhatsappMessage, Client.name, Blob.sha256)
        .join(Client, owned_join(Client, Client.id == WhatsappMessage.client_id, tenant_id), isouter=True)
        .join(Blob, owned_join(Blob, Blob.id == WhatsappMessage.blob_id, tenant_id), isouter=True)
        .where(*page_conditions)
        .order_by(WhatsappMessage.created_at.desc(), WhatsappMessage.id.desc())  # type: ignore[attr-defined]
        .limit(limit + 1)
    )
    rows = session.exec(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    data = [_message_public(m, name, sha) for m, name, sha in rows]
    saved = _saved_to_cases(session, tenant_id, [m.id for m, _, _ in rows if m.blob_id is not None])  # type: ignore[misc]
    for message in data:
        message.saved_to_cases = saved.get(message.id, [])
    next_cursor = paging.encode_cursor(CURSOR_TAG, rows[-1][0].created_at, rows[-1][0].id) if more and rows else None  # type: ignore[arg-type]
    return WhatsappMessagesPage(data=data, count=count, next_cursor=next_cursor)


def _saved_to_cases(session: Session, tenant_id: int, message_ids: list[int]) -> dict[int, list[str]]:
    """Message id -> the titles of the cases its file was saved to (one query for a page)."""
    if not message_ids:
        return {}
    found: dict[int, list[str]] = {}
    for message_id, title in session.execute(
        sa.select(CaseFile.source_message_id, Case.title)
        .join(Case, owned_join(Case, Case.id == CaseFile.case_id, tenant_id))
        .where(owned_by(CaseFile, tenant_id), CaseFile.source_message_id.in_(message_ids))  # type: ignore[union-attr]
        .order_by(CaseFile.id)
    ).all():
        found.setdefault(message_id, []).append(title)
    return found


def messages_fingerprint(*, session: Session, tenant_id: int, window: int = 200) -> str:
    """A short digest of the firm's newest messages and their statuses (for live views).

    It changes when a message arrives or is queued and when one of the ``window`` newest moves
    (sent, delivered, read, failed; its file stored; its conversation merged), so a watcher
    reloads its list only then. One index scan.
    """
    rows = session.execute(
        sa.select(WhatsappMessage.id, WhatsappMessage.status, WhatsappMessage.media_state, WhatsappMessage.chat_jid)
        .where(owned_by(WhatsappMessage, tenant_id))
        .order_by(WhatsappMessage.created_at.desc(), WhatsappMessage.id.desc())  # type: ignore[attr-defined]
        .limit(window)
    ).all()
    digest = hashlib.blake2b(digest_size=12)
    for message_id, status, media_state, chat_jid in rows:
        # A file downloaded and a LID conversation merged change what the page shows too.
        digest.update(f"{message_id}:{MessageStatus(status).value}:{media_state or ''}:{chat_jid};".encode())
    return digest.hexdigest()


def _client_name(session: Session, tenant_id: int, client_id: int | None) -> str | None:
    if client_id is None:
        return None
    return session.exec(select(Client.name).where(owned_by(Client, tenant_id), Client.id == client_id)).first()


def get_message(*, session: Session, tenant_id: int, actor: Principal, message_id: int) -> WhatsappMessagePublic:
    """One of the firm's messages (any member); another firm's is not found."""
    authz.require_member(actor, tenant_id)
    row = get_owned(session, WhatsappMessage, tenant_id, message_id, what="message")
    return _message_public(row, _client_name(session, tenant_id, row.client_id))


def _uncertain_message(session: Session, tenant_id: int, actor: Principal, message_id: int) -> WhatsappMessage:
    authz.require_member(actor, tenant_id)
    row = get_owned(session, WhatsappMessage, tenant_id, message_id, what="message")
    if row.direction != MessageDirection.OUTBOUND or row.status != MessageStatus.UNCERTAIN:
        raise Conflict("only a message that may not have been sent can be sent again or marked as sent", field="status")
    return row


def resend_message(*, session: Session, tenant_id: int, actor: Principal, message_id: int) -> WhatsappMessagePublic:
    """A person decided an UNCERTAIN message did not arrive: queue it again (PENDING).

    It keeps the WhatsApp id chosen for it, if any, so that on a gateway that takes one, a copy
    that did arrive after all is not delivered twice. Audited.
    """
    row = _uncertain_message(session, tenant_id, actor, message_id)
    row.status = MessageStatus.PENDING
    row.error = None
    row.error_code = None
    row.send_attempt_id = None
    row.updated_at = utcnow()
    session.add(row)
    audit.record(session=session, tenant_id=tenant_id, actor=actor, action="whatsapp.message.resend", object_type="whatsapp_message", object_id=row.id)
    session.flush()
    return _message_public(row, _client_name(session, tenant_id, row.client_id))


def confirm_message_sent(*, session: Session, tenant_id: int, actor: Principal, message_id: int) -> WhatsappMessagePublic:
    """A person saw that an UNCERTAIN message did arrive (on the phone): mark it SENT. Audited."""
    row = _uncertain_message(session, tenant_id, actor, message_id)
    row.status = MessageStatus.SENT
    row.sent_at = row.sending_started_at or utcnow()
    row.error = None
    row.error_code = None
    row.updated_at = utcnow()
    session.add(row)
    audit.record(
        session=session, tenant_id=tenant_id, actor=actor, action="whatsapp.message.mark_sent", object_type="whatsapp_message", object_id=row.id
    )
    session.flush()
    return _message_public(row, _client_name(session, tenant_id, row.client_id))
