"""The WhatsApp session store and message functions.

Two audiences share these functions:

- the edges (UI, REST API) write intent: ``init_session`` / ``disconnect`` set the desired
  state, ``send_message`` queues a PENDING row, and they read status and messages;
- the sidecar claims sessions with a lease and writes back what actually happened: QR
  payloads, status, pairing, inbound messages, send results and receipts.

Every sidecar write on the session row is fenced by the worker's lease (``worker_id``): a
sidecar that lost a tenant to another one cannot overwrite its status.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from services import audit, clients, config, phones
from services.names import clean_name
from services.errors import Conflict, Forbidden, Invalid
from services.models import (
    Client,
    MessageDirection,
    MessageStatus,
    Principal,
    Tenant,
    WhatsappDesiredState,
    WhatsappInbound,
    WhatsappLease,
    WhatsappMessage,
    WhatsappMessagePublic,
    WhatsappMessagesPage,
    WhatsappOutbound,
    WhatsappSend,
    WhatsappSession,
    WhatsappStatus,
    WhatsappStatusPublic,
    utcnow,
)
from services.tenancy import get_owned, tenant_select
from services.timestamps import reported_time, search_bound
from services.whatsapp.failures import Failure, classify, sentence

MAX_BODY = 4096
QR_EXPIRED = "QR expired — link again"
NOT_CONNECTED = "the WhatsApp line is not connected"
# Receipts only move a message forward: a late DELIVERED never undoes READ. A receipt for a
# message still SENDING or UNCERTAIN proves it reached WhatsApp.
_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENDING: 0,
    MessageStatus.UNCERTAIN: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
}


# --------------------------------------------------------------------------- helpers


def _status_public(row: WhatsappSession | None) -> WhatsappStatusPublic:
    gateway = config.whatsapp_gateway()
    if row is None:
        return WhatsappStatusPublic(
            status=WhatsappStatus.DISCONNECTED,
            desired_state=WhatsappDesiredState.DISCONNECTED,
            qr_payload=None,
            qr_issued_at=None,
            phone_number=None,
            push_name=None,
            connected_since=None,
            error_code=None,
            error_message=None,
            next_retry_at=None,
            gateway=gateway,
        )
    pending = row.status == WhatsappStatus.QR_PENDING
    return WhatsappStatusPublic(
        status=row.status,
        desired_state=row.desired_state,
        qr_payload=row.qr_payload if pending else None,
        qr_issued_at=row.qr_issued_at if pending else None,
        phone_number=row.phone_number,
        push_name=row.push_name,
        connected_since=row.connected_since if row.status == WhatsappStatus.CONNECTED else None,
        error_code=row.error_code,
        error_message=sentence(row.error_code),
        next_retry_at=row.next_retry_at if row.status == WhatsappStatus.ERROR else None,
        gateway=gateway,
    )


def _message_error_code(row: WhatsappMessage) -> str | None:
    if row.error_code:
        return row.error_code
    # Rows written before failures were classified carry only the raw text.
    return classify(row.error, default=Failure.SEND_FAILED).value if row.error else None


def _message_public(row: WhatsappMessage, client_name: str | None) -> WhatsappMessagePublic:
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
    )


def _require_tenant(actor: Principal, tenant_id: int) -> None:
    if actor.tenant_id != tenant_id:
        raise Forbidden("this user does not belong to the firm")


def _require_admin(actor: Principal, tenant_id: int) -> None:
    _require_tenant(actor, tenant_id)
    if not actor.is_admin:
        raise Forbidden("only an owner or an admin may link or unlink the WhatsApp line")


def _session_row(session: Session, tenant_id: int) -> WhatsappSession | None:
    return session.exec(tenant_select(WhatsappSession, tenant_id)).first()


def _get_or_create_row(session: Session, tenant_id: int) -> WhatsappSession:
    row = _session_row(session, tenant_id)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = WhatsappSession(tenant_id=tenant_id)
            session.add(row)
    except IntegrityError:
        # Two admins clicked at once: the other transaction created it.
        row = _session_row(session, tenant_id)
        assert row is not None
    return row


def chat_jid_for(e164: str) -> str:
    """The WhatsApp chat of a phone number: its digits without the plus."""
    return f"{phones.digits_of(e164)}@s.whatsapp.net"


def _tenant_region(session: Session, tenant_id: int) -> str:
    region = session.exec(select(Tenant.region).where(Tenant.id == tenant_id)).first()
    return region or "SA"


def _encode_cursor(created_at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        stamp, _, row_id = text.partition("|")
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Invalid("cursor", "the cursor is not valid") from exc


def _insert(session: Session, table: sa.Table) -> sa.Insert:
    if session.get_bind().dialect.name == "postgresql":
        return pg_dialect.insert(table)
    return sqlite_dialect.insert(table)


# --------------------------------------------------------------------------- intent (UI, API)


def init_session(*, session: Session, tenant_id: int, actor: Principal) -> WhatsappStatusPublic:
    """Ask for the firm's line to be linked; the sidecar then shows a QR or restores the device.

    OWNER/ADMIN only. Idempotent: asking again while connecting or connected changes nothing.
    """
    _require_admin(actor, tenant_id)
    row = _get_or_create_row(session, tenant_id)
    if row.desired_state != WhatsappDesiredState.CONNECTED:
        row.desired_state = WhatsappDesiredState.CONNECTED
        row.retry_count = 0
        row.next_retry_at = None
        if row.status in (WhatsappStatus.DISCONNECTED, WhatsappStatus.ERROR):
            row.status = WhatsappStatus.CONNECTING
            row.last_error = None
            row.error_code = None
        row.updated_at = utcnow()
        session.add(row)
        session.flush()
    return _status_public(row)


def disconnect(*, session: Session, tenant_id: int, actor: Principal) -> WhatsappStatusPublic:
    """Ask for the firm's line to be unlinked: the sidecar logs the device out and deletes its keys.

    OWNER/ADMIN only. A session that no sidecar holds and that never paired is closed at once.
    """
    _require_admin(actor, tenant_id)
    row = _session_row(session, tenant_id)
    if row is None:
        return _status_public(None)
    now = utcnow()
    row.desired_state = WhatsappDesiredState.DISCONNECTED
    row.next_retry_at = None
    unheld = row.lease_expires_at is None or row.lease_expires_at < now
    if row.device_jid is None and unheld:
        row.status = WhatsappStatus.DISCONNECTED
        row.qr_payload = None
        row.qr_issued_at = None
        row.last_error = None
        row.error_code = None
    row.updated_at = now
    session.add(row)
    session.flush()
    return _status_public(row)


def get_session_status(*, session: Session, tenant_id: int, actor: Principal) -> WhatsappStatusPublic:
    """The line's status as the sidecar last wrote it, as ``actor`` may see it.

    Whoever scans the QR code becomes the firm's WhatsApp line, so the live payload (and
    when it was issued) is given only to those who may link the line: OWNER and ADMIN.
    Both edges call this, so the rule holds for the REST route and the page alike.
    """
    _require_tenant(actor, tenant_id)
    status = _status_public(_session_row(session, tenant_id))
    if not actor.is_admin:
        status = status.model_copy(update={"qr_payload": None, "qr_issued_at": None})
    return status


def get_error_detail(*, session: Session, tenant_id: int, actor: Principal) -> str | None:
    """The raw text of the line's last failure (Go errors, addresses), for OWNER/ADMIN only.

    The status carries the failure's code and sentence; this is the technical detail behind it.
    """
    _require_admin(actor, tenant_id)
    row = _session_row(session, tenant_id)
    return row.last_error if row is not None and row.error_code else None


def send_message(*, session: Session, tenant_id: int, actor: Principal, data: WhatsappSend) -> WhatsappMessagePublic:
    """Queue a text message to a number or to a client; the sidecar sends it (PENDING until then).

    Exactly one of ``to`` (any phone format, read in the firm's region) and ``client_id``.
    Conflict when the line is not connected.
    """
    _require_tenant(actor, tenant_id)
    body = data.body if isinstance(data.body, str) else ""
    if not body.strip():
        raise Invalid("body", "a message is required")
    if len(body) > MAX_BODY:
        raise Invalid("body", f"a message is at most {MAX_BODY} characters")
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
    row = _session_row(session, tenant_id)
    if row is None or row.status != WhatsappStatus.CONNECTED:
        raise Conflict(NOT_CONNECTED, field="status")
    message = WhatsappMessage(
        tenant_id=tenant_id,
        direction=MessageDirection.OUTBOUND,
        status=MessageStatus.PENDING,
        chat_jid=chat_jid_for(e164),
        remote_e164=e164,
        client_id=client_id,
        sender_user_id=actor.user_id,
        message_type="text",
        body=body,
    )
    session.add(message)
    session.flush()
    return _message_public(message, client_name)


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
    """The firm's messages, newest first, filtered (AND) and paged by keyset cursor."""
    _require_tenant(actor, tenant_id)
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
    conditions: list[sa.ColumnElement[bool]] = [WhatsappMessage.tenant_id == tenant_id]
    if client_id is not None:
        conditions.append(WhatsappMessage.client_id == client_id)
    if direction is not None:
        conditions.append(WhatsappMessage.direction == MessageDirection(direction))
    if chat_jid:
        conditions.append(WhatsappMessage.chat_jid == chat_jid)
    if date_from is not None:
        conditions.append(WhatsappMessage.created_at >= date_from)
    if date_to is not None:
        conditions.append(WhatsappMessage.created_at <= date_to)
    count = session.exec(select(func.count()).select_from(WhatsappMessage).where(*conditions)).one()
    page_conditions = list(conditions)
    if cursor:
        at, row_id = _decode_cursor(cursor)
        page_conditions.append(
            sa.or_(
                WhatsappMessage.created_at < at,
                sa.and_(WhatsappMessage.created_at == at, WhatsappMessage.id < row_id),
            )
        )
    query = (
        select(WhatsappMessage, Client.name)
        .join(Client, sa.and_(Client.id == WhatsappMessage.client_id, Client.tenant_id == tenant_id), isouter=True)
        .where(*page_conditions)
        .order_by(WhatsappMessage.created_at.desc(), WhatsappMessage.id.desc())  # type: ignore[attr-defined]
        .limit(limit + 1)
    )
    rows = session.exec(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    data = [_message_public(m, name) for m, name in rows]
    next_cursor = _encode_cursor(rows[-1][0].created_at, rows[-1][0].id) if more and rows else None  # type: ignore[arg-type]
    return WhatsappMessagesPage(data=data, count=count, next_cursor=next_cursor)


def messages_fingerprint(*, session: Session, tenant_id: int, window: int = 200) -> str:
    """A short digest of the firm's newest messages and their statuses (for live views).

    It changes when a message arrives or is queued and when one of the ``window`` newest moves
    (sent, delivered, read, failed), so a watcher reloads its list only then. One index scan.
    """
    rows = session.execute(
        sa.select(WhatsappMessage.id, WhatsappMessage.status)
        .where(WhatsappMessage.tenant_id == tenant_id)
        .order_by(WhatsappMessage.created_at.desc(), WhatsappMessage.id.desc())  # type: ignore[attr-defined]
        .limit(window)
    ).all()
    digest = hashlib.blake2b(digest_size=12)
    for message_id, status in rows:
        digest.update(f"{message_id}:{MessageStatus(status).value};".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- leases (sidecar)


_LEASE_COLUMNS = (
    WhatsappSession.tenant_id,
    WhatsappSession.desired_state,
    WhatsappSession.status,
    WhatsappSession.device_jid,
    WhatsappSession.retry_count,
    WhatsappSession.next_retry_at,
    WhatsappSession.lease_expires_at,
)


def _lease_of_row(row: sa.Row) -> WhatsappLease:
    return WhatsappLease(
        tenant_id=row.tenant_id,
        desired_state=row.desired_state,
        status=row.status,
        device_jid=row.device_jid,
        retry_count=row.retry_count,
        next_retry_at=row.next_retry_at,
        lease_expires_at=row.lease_expires_at,
    )


def _needs_a_worker() -> sa.ColumnElement[bool]:
    # Wanted connected, or wanted disconnected but not yet torn down (a device to log out).
    return sa.or_(
        WhatsappSession.desired_state == WhatsappDesiredState.CONNECTED,
        WhatsappSession.status != WhatsappStatus.DISCONNECTED,
        WhatsappSession.device_jid.is_not(None),  # type: ignore[union-attr]
    )


def _free_for(worker_id: str, held: Sequence[int], now: datetime) -> sa.ColumnElement[bool]:
    """Sessions ``worker_id`` may claim: unheld, lapsed, or its own that it does not hold yet."""
    mine = WhatsappSession.worker_id == worker_id
    if held:
        # Already held sessions must not be candidates: they would use up the claim limit
        # and keep a worker from ever claiming anything else.
        mine = sa.and_(mine, WhatsappSession.tenant_id.not_in(held))  # type: ignore[attr-defined]
    return sa.or_(
        WhatsappSession.worker_id.is_(None),  # type: ignore[union-attr]
        mine,
        WhatsappSession.lease_expires_at.is_(None),  # type: ignore[union-attr]
        WhatsappSession.lease_expires_at < now,  # type: ignore[operator]
    )


def restore_active_sessions(
    *,
    session: Session,
    worker_id: str,
    lease_seconds: float,
    limit: int = 50,
    held: Iterable[int] = (),
    now: datetime | None = None,
) -> list[WhatsappLease]:
    """Claim up to ``limit`` sessions that need a sidecar and that no live worker holds.

    A session is free when it has no worker, its lease has lapsed (its worker died), or it is
    ``worker_id``'s own but not among ``held`` (a restarted worker takes its tenants back at
    once). Candidates are locked with SKIP LOCKED on PostgreSQL and claimed by one conditional
    UPDATE, so two sidecars racing for a session never both win and never wait on each other.
    """
    if limit <= 0:
        return []
    now = now or utcnow()
    held_ids = sorted(set(held))
    free = _free_for(worker_id, held_ids, now)
    candidates = list(
        session.exec(
            select(WhatsappSession.id)
            .where(_needs_a_worker(), free)
            .order_by(WhatsappSession.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )
    if not candidates:
        return []
    session.execute(
        sa.update(WhatsappSession)
        .where(WhatsappSession.id.in_(candidates), free)  # type: ignore[union-attr]
        .values(worker_id=worker_id, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        sa.select(*_LEASE_COLUMNS)
        .where(WhatsappSession.id.in_(candidates), WhatsappSession.worker_id == worker_id)  # type: ignore[union-attr]
        .order_by(WhatsappSession.id)
    ).all()
    return [_lease_of_row(r) for r in rows]


@dataclass(frozen=True)
class WorkerSync:
    """What one reconcile tick learns from the database, in one transaction."""

    leases: list[WhatsappLease]  # every session the worker holds now, freshly read
    claimed: set[int]  # tenants among them claimed by this call
    pending: set[int]  # tenants among ``pending_for`` with PENDING outbound messages


def sync_worker(
    *,
    session: Session,
    worker_id: str,
    held: Iterable[int],
    lease_seconds: float,
    renew: bool,
    claim_limit: int,
    seen: Iterable[int] = (),
    pending_for: Iterable[int] = (),
    now: datetime | None = None,
) -> WorkerSync:
    """The sidecar's whole database round of a tick, batched for every tenant it holds.

    Renews the worker's leases (when ``renew``; the sidecar does it a few times per lease, so
    most ticks only read), records the sessions in ``seen`` as alive, claims up to
    ``claim_limit`` free sessions, reads back every session the worker holds and tells which
    tenants of ``pending_for`` have messages to send.
    """
    now = now or utcnow()
    held_ids = sorted(set(held))
    if renew:
        session.execute(
            sa.update(WhatsappSession)
            .where(WhatsappSession.worker_id == worker_id)
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
    seen_ids = sorted(set(seen))
    if seen_ids:
        session.execute(
            sa.update(WhatsappSession)
            .where(WhatsappSession.worker_id == worker_id, WhatsappSession.tenant_id.in_(seen_ids))  # type: ignore[attr-defined]
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )
    claimed = restore_active_sessions(
        session=session, worker_id=worker_id, lease_seconds=lease_seconds, limit=claim_limit, held=held_ids, now=now
    )
    rows = session.execute(sa.select(*_LEASE_COLUMNS).where(WhatsappSession.worker_id == worker_id)).all()
    pending = tenants_with_pending(session=session, tenant_ids=pending_for)
    return WorkerSync(leases=[_lease_of_row(r) for r in rows], claimed={c.tenant_id for c in claimed}, pending=pending)


def release_leases(*, session: Session, worker_id: str, tenant_ids: Iterable[int] | None = None) -> int:
    """Give up this worker's leases (all, or ``tenant_ids``) so another sidecar can take them at once."""
    query = sa.update(WhatsappSession).where(WhatsappSession.worker_id == worker_id)
    if tenant_ids is not None:
        ids = list(tenant_ids)
        if not ids:
            return 0
        query = query.where(WhatsappSession.tenant_id.in_(ids))  # type: ignore[attr-defined]
    return session.execute(query.values(worker_id=None, lease_expires_at=None)).rowcount


def _fenced_update(session: Session, *, tenant_id: int, worker_id: str, **values: object) -> bool:
    values["updated_at"] = utcnow()
    result = session.execute(
        sa.update(WhatsappSession)
        .where(WhatsappSession.tenant_id == tenant_id, WhatsappSession.worker_id == worker_id)
        .values(**values)
    )
    return result.rowcount == 1


def record_connecting(*, session: Session, tenant_id: int, worker_id: str) -> bool:
    """The worker is starting the client; False when it no longer holds the lease."""
    return _fenced_update(
        session, tenant_id=tenant_id, worker_id=worker_id, status=WhatsappStatus.CONNECTING, qr_payload=None, qr_issued_at=None
    )


def record_qr(*, session: Session, tenant_id: int, worker_id: str, payload: str, issued_at: datetime | None = None) -> bool:
    """A new QR payload to show: status QR_PENDING with the payload, at once."""
    if not payload or len(payload) > 2048:
        raise Invalid("payload", "a QR payload is 1 to 2048 characters")
    return _fenced_update(
        session,
        tenant_id=tenant_id,
        worker_id=worker_id,
        status=WhatsappStatus.QR_PENDING,
        qr_payload=payload,
        qr_issued_at=issued_at or utcnow(),
        last_error=None,
        error_code=None,
        next_retry_at=None,
    )


def record_pairing(
    *, session: Session, tenant_id: int, worker_id: str, device_jid: str, phone_number: str | None, push_name: str | None
) -> bool:
    """The phone scanned the QR: remember the device (to restore it) and the linked number and name."""
    if not device_jid:
        raise Invalid("device_jid", "a paired device has a JID")
    return _fenced_update(
        session,
        tenant_id=tenant_id,
        worker_id=worker_id,
        device_jid=device_jid[:128],
        phone_number=phone_number,
        push_name=clean_name(push_name)[:128] or None,
        qr_payload=None,
        qr_issued_at=None,
        status=WhatsappStatus.CONNECTING,
    )


def record_connected(*, session: Session, tenant_id: int, worker_id: str, push_name: str | None = None) -> bool:
    """The client is logged in and online."""
    now = utcnow()
    values: dict[str, object] = {
        "status": WhatsappStatus.CONNECTED,
        "connected_since": now,
        "last_seen_at": now,
        "retry_count": 0,
        "next_retry_at": None,
        "last_error": None,
        "error_code": None,
        "qr_payload": None,
        "qr_issued_at": None,
    }
    name = clean_name(push_name)[:128]
    if name:
        values["push_name"] = name
    return _fenced_update(session, tenant_id=tenant_id, worker_id=worker_id, **values)


def record_error(
    *,
    session: Session,
    tenant_id: int,
    worker_id: str,
    reason: str,
    retry_count: int,
    next_retry_at: datetime | None,
    code: Failure | str | None = None,
) -> bool:
    """The client failed (dial error, stream replaced, ban...): ERROR with the failure's class
    (``code`` when the gateway knew it, else read from ``reason``), the raw reason and the next try."""
    return _fenced_update(
        session,
        tenant_id=tenant_id,
        worker_id=worker_id,
        status=WhatsappStatus.ERROR,
        last_error=(reason or "unknown error")[:512],
        error_code=classify(reason, code).value,
        retry_count=retry_count,
        next_retry_at=next_retry_at,
        qr_payload=None,
        qr_issued_at=None,
    )


def record_disconnected(
    *,
    session: Session,
    tenant_id: int,
    worker_id: str,
    reason: str | None = None,
    give_up: bool = False,
    code: Failure | str | None = None,
) -> bool:
    """The line is down and its device forgotten (unlinked, logged out, or QR expired).

    ``give_up`` also flips the desired state to DISCONNECTED, so nothing reconnects until an
    admin links again; ``reason`` (raw) is classified, and its class is what the UI shows.
    """
    values: dict[str, object] = {
        "status": WhatsappStatus.DISCONNECTED,
        "qr_payload": None,
        "qr_issued_at": None,
        "device_jid": None,
        "phone_number": None,
        "push_name": None,
        "connected_since": None,
        "next_retry_at": None,
        "retry_count": 0,
        "last_error": reason[:512] if reason else None,
        "error_code": classify(reason, code).value if (reason or code) else None,
    }
    if give_up:
        values["desired_state"] = WhatsappDesiredState.DISCONNECTED
    return _fenced_update(session, tenant_id=tenant_id, worker_id=worker_id, **values)


# --------------------------------------------------------------------------- messages (sidecar)


def store_inbound(*, session: Session, tenant_id: int, messages: Sequence[WhatsappInbound]) -> int:
    """Store received messages once each (a WhatsApp id seen before is ignored), matched to clients.

    Returns how many were new. Messages the firm sent from the phone itself come as ``from_me``
    and are stored as OUTBOUND / SENT.
    """
    if not messages:
        return 0
    for m in messages:
        if not m.wa_message_id or len(m.wa_message_id) > 128:
            raise Invalid("wa_message_id", "a WhatsApp message id is 1 to 128 characters")
        if not m.chat_jid or len(m.chat_jid) > 128:
            raise Invalid("chat_jid", "a chat JID is 1 to 128 characters")
        if m.timestamp is not None and m.timestamp.tzinfo is None:
            raise Invalid("timestamp", "a timestamp must carry its time zone")
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
            }
        )
    table = WhatsappMessage.__table__  # type: ignore[attr-defined]
    stmt = _insert(session, table).on_conflict_do_nothing(index_elements=["tenant_id", "wa_message_id"])
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
                WhatsappMessage.tenant_id == tenant_id,
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
            .where(WhatsappMessage.tenant_id == tenant_id, WhatsappMessage.wa_message_id.in_(chunk))  # type: ignore[union-attr]
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


def _outbound(row: WhatsappMessage) -> WhatsappOutbound:
    return WhatsappOutbound(
        id=row.id,  # type: ignore[arg-type]
        chat_jid=row.chat_jid,
        body=row.body,
        attempts=row.attempts,
        status=row.status,
        wa_message_id=row.wa_message_id,
        send_attempt_id=row.send_attempt_id,
    )


def next_outbound(*, session: Session, tenant_id: int, limit: int = 100) -> list[WhatsappOutbound]:
    """The firm's PENDING outbound messages, oldest first (the order they must be sent in per chat)."""
    rows = session.exec(
        tenant_select(WhatsappMessage, tenant_id)
        .where(WhatsappMessage.status == MessageStatus.PENDING, WhatsappMessage.direction == MessageDirection.OUTBOUND)
        .order_by(WhatsappMessage.id)
        .limit(limit)
    ).all()
    return [_outbound(r) for r in rows]


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
    return [_outbound(r) for r in rows]


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
    if not attempt_id or len(attempt_id) > 64:
        raise Invalid("attempt_id", "an attempt id is 1 to 64 characters")
    if wa_message_id is not None and not 0 < len(wa_message_id) <= 128:
        raise Invalid("wa_message_id", "a WhatsApp message id is 1 to 128 characters")
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
        .where(WhatsappMessage.tenant_id == tenant_id, WhatsappMessage.id == message_id, condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    return session.execute(
        sa.select(WhatsappMessage.attempts).where(WhatsappMessage.tenant_id == tenant_id, WhatsappMessage.id == message_id)
    ).scalar_one()


def mark_sent(*, session: Session, tenant_id: int, message_id: int, wa_message_id: str, sent_at: datetime | None = None) -> None:
    """WhatsApp accepted the message: SENT with its WhatsApp id.

    A receipt that overtook this call has already moved it further; that is kept.
    """
    if not wa_message_id or len(wa_message_id) > 128:
        raise Invalid("wa_message_id", "a WhatsApp message id is 1 to 128 characters")
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


def _client_name(session: Session, tenant_id: int, client_id: int | None) -> str | None:
    if client_id is None:
        return None
    return session.exec(select(Client.name).where(Client.tenant_id == tenant_id, Client.id == client_id)).first()


def _uncertain_message(session: Session, tenant_id: int, actor: Principal, message_id: int) -> WhatsappMessage:
    _require_tenant(actor, tenant_id)
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
