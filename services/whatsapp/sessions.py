"""The firm's WhatsApp line as the firm wants it and as people may see it.

The edges (UI, REST API) write intent here: ``init_session`` / ``disconnect`` set the desired
state, and the sidecar (``leases``) makes it so. ``get_session_status`` is the one place that
decides who sees the QR code: both edges call it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from services import authz, config
from services.authz import Permission
from services.errors import Conflict
from services.models import (
    Principal,
    WhatsappDesiredState,
    WhatsappSession,
    WhatsappStatus,
    WhatsappStatusPublic,
    utcnow,
)
from services.tenancy import tenant_select
from services.whatsapp import guardrails
from services.whatsapp.failures import Failure, sentence, service_down_sentence

NOT_CONNECTED = "the WhatsApp line is not connected"
# A line nobody holds (never claimed, or released by a sidecar that stopped) gets this long for
# a sidecar to take it before the status says the service is not running; a lease that lapsed
# (its sidecar died) says so at once.
UNHELD_GRACE_SECONDS = 10.0


def service_down_since(row: WhatsappSession, now: datetime | None = None) -> datetime | None:
    """When the sidecar serving this line stopped, if the line needs one and none holds it; None
    while a sidecar holds the lease or the line needs none (unlinked and torn down)."""
    if row.desired_state != WhatsappDesiredState.CONNECTED and row.status == WhatsappStatus.DISCONNECTED:
        return None
    now = now or utcnow()
    if row.worker_id is not None and row.lease_expires_at is not None:
        if row.lease_expires_at >= now:
            return None
        return row.lease_renewed_at or row.lease_expires_at
    since = row.lease_renewed_at or row.updated_at
    if since is not None and now - since < timedelta(seconds=UNHELD_GRACE_SECONDS):
        return None
    return since


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
    down_since = service_down_since(row)
    if down_since is not None:
        # Whatever the row last said (CONNECTED, a QR) is stale: nothing runs the line.
        return WhatsappStatusPublic(
            status=WhatsappStatus.ERROR,
            desired_state=row.desired_state,
            qr_payload=None,
            qr_issued_at=None,
            phone_number=row.phone_number,
            push_name=row.push_name,
            connected_since=None,
            error_code=Failure.SERVICE_DOWN.value,
            error_message=service_down_sentence(f"{down_since:%Y-%m-%d %H:%M} UTC"),
            next_retry_at=None,
            gateway=gateway,
            service_running=False,
            service_down_since=down_since,
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


def _session_row(session: Session, tenant_id: int) -> WhatsappSession | None:
    return session.exec(tenant_select(WhatsappSession, tenant_id)).first()


def require_connected(*, session: Session, tenant_id: int) -> None:
    """Conflict unless the firm's line is connected (nothing can be queued on a line that is down),
    or paused by a temporary ban: those messages wait in the outbox and go when the ban ends and
    the line reconnects (the page says so: ``guardrails.ban_sentence``)."""
    row = _session_row(session, tenant_id)
    if row is not None and row.banned_until is not None and row.banned_until > utcnow():
        return
    if row is None or row.status != WhatsappStatus.CONNECTED:
        raise Conflict(NOT_CONNECTED, field="status")


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


def init_session(*, session: Session, tenant_id: int, actor: Principal) -> WhatsappStatusPublic:
    """Ask for the firm's line to be linked; the sidecar then shows a QR or restores the device.

    OWNER/ADMIN only. Idempotent: asking again while connecting or connected changes nothing.
    """
    authz.require(actor, Permission.LINK_WHATSAPP, tenant_id=tenant_id)
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
    authz.require(actor, Permission.LINK_WHATSAPP, tenant_id=tenant_id)
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
    authz.require_member(actor, tenant_id)
    row = _session_row(session, tenant_id)
    status = _status_public(row)
    if row is not None:
        # Guardrails against bans: the first-contact cap and today's count; a temporary ban
        # while it lasts (the sentence replaces the generic one: it says why and until when).
        update: dict[str, object] = {
            "first_contact_daily_cap": row.first_contact_daily_cap,
            "first_contacts_today": guardrails.first_contacts_today(session, tenant_id),
            "reject_calls": row.reject_calls,
        }
        if row.banned_until is not None and row.banned_until > utcnow():
            update.update(
                banned_until=row.banned_until,
                ban_code=row.ban_code,
                error_message=guardrails.ban_sentence(row.ban_code, row.banned_until) if status.service_running else status.error_message,
            )
        status = status.model_copy(update=update)
    if not authz.allowed(actor, Permission.LINK_WHATSAPP):
        status = status.model_copy(update={"qr_payload": None, "qr_issued_at": None})
    return status


def get_error_detail(*, session: Session, tenant_id: int, actor: Principal) -> str | None:
    """The raw text of the line's last failure (Go errors, addresses), for OWNER/ADMIN only.

    The status carries the failure's code and sentence; this is the technical detail behind it.
    """
    authz.require(actor, Permission.LINK_WHATSAPP, tenant_id=tenant_id)
    row = _session_row(session, tenant_id)
    return row.last_error if row is not None and row.error_code else None
