"""Files that come with WhatsApp messages: kept encrypted (services.storage), with name, type,
size and SHA-256, readable by the firm's members only, by byte range.

A message with a file is stored at once with ``media_state`` "pending" (or "too_large" when
the sender declared more than the per-file limit); the sidecar downloads it (``media_fetch``),
checks the per-file and per-firm limits and stores it. A failed download is retried with
backoff a few times, then waits as "failed" for a person's retry. The gateway's reference to
download a file again is kept encrypted (it holds WhatsApp's media key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, func, select

from services import authz, blobs, config, security, storage
# The byte-range rules and their 416 are the store's (one place for recordings and media).
from services.errors import AuthenticationFailed, Conflict, NotFound
from services.key_rotation import WHATSAPP_MEDIA_PURPOSE, WHATSAPP_MEDIA_REF_PURPOSE
from services.models import Blob, BlobKind, Principal, WhatsappInbound, WhatsappMessage, utcnow
from services.tenancy import get_owned, owned_by
from services.whatsapp.runtime import backoff_delay

PURPOSE = WHATSAPP_MEDIA_PURPOSE
REF_PURPOSE = WHATSAPP_MEDIA_REF_PURPOSE
PENDING, STORED, FAILED, TOO_LARGE, OVER_QUOTA = "pending", "stored", "failed", "too_large", "over_quota"
AUTO_ATTEMPTS = 5
LINK_TTL = timedelta(minutes=15)
_LINK_PURPOSE = "whatsapp.media.link"


def max_file_bytes() -> int:
    """The per-file limit (``WATHEEQ_WHATSAPP_MEDIA_MAX_MB``, default 64 MB)."""
    return int(float(config.get("WATHEEQ_WHATSAPP_MEDIA_MAX_MB", "64") or 64) * 1024 * 1024)


def firm_quota_bytes() -> int:
    """The per-firm limit on stored files (``WATHEEQ_WHATSAPP_MEDIA_QUOTA_MB``, default 10 GB)."""
    return int(float(config.get("WATHEEQ_WHATSAPP_MEDIA_QUOTA_MB", "10240") or 10240) * 1024 * 1024)


def too_large_message(limit: int | None = None) -> str:
    return f"the file is larger than the {(limit or max_file_bytes()) / (1024 * 1024):g} MB limit"


QUOTA_MESSAGE = "the firm's storage for WhatsApp files is full"


NO_MEDIA: dict[str, object] = {
    "media_state": None,
    "media_name": None,
    "media_mime": None,
    "media_size": None,
    "media_ref_encrypted": None,
    "media_attempts": 0,
}


def inbound_columns(message: WhatsappInbound) -> dict[str, object]:
    """The media columns of a received message's row (all of them, empty without a file)."""
    if not message.media_ref:
        return dict(NO_MEDIA)
    declared = message.media_size if message.media_size and message.media_size > 0 else None
    return {
        "media_state": TOO_LARGE if declared and declared > max_file_bytes() else PENDING,
        "media_name": (message.media_name or "")[:255] or None,
        "media_mime": (message.media_mime or "application/octet-stream")[:128],
        "media_size": declared,
        "media_ref_encrypted": security.encrypt_secret(message.media_ref, purpose=REF_PURPOSE),
        "media_attempts": 0,
    }


@dataclass(frozen=True)
class DueMedia:
    message_id: int
    ref: str
    name: str | None
    mime: str
    # The size the sender declared, if any (the download measures the real one).
    size: int | None = None


def due(*, session: Session, tenant_id: int, limit: int = 10, now: datetime | None = None) -> list[DueMedia]:
    """Files of the firm waiting to be downloaded now."""
    now = now or utcnow()
    rows = session.exec(
        select(WhatsappMessage.id, WhatsappMessage.media_ref_encrypted, WhatsappMessage.media_name, WhatsappMessage.media_mime, WhatsappMessage.media_size)
        .where(
            owned_by(WhatsappMessage, tenant_id),
            WhatsappMessage.media_state == PENDING,
            sa.or_(WhatsappMessage.media_next_try_at.is_(None), WhatsappMessage.media_next_try_at <= now),  # type: ignore[union-attr,operator]
        )
        .order_by(WhatsappMessage.id)
        .limit(limit)
    ).all()
    return [
        DueMedia(i, security.decrypt_secret(ref, purpose=REF_PURPOSE), name, mime or "application/octet-stream", size)
        for i, ref, name, mime, size in rows
        if ref
    ]


def firm_usage(*, session: Session, tenant_id: int) -> int:
    """Bytes of the firm's stored WhatsApp files: each blob once, however many messages point
    at it (a case document sent again is not stored again)."""
    used = select(WhatsappMessage.blob_id).where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.media_state == STORED)
    total = session.exec(
        select(func.coalesce(func.sum(Blob.size_bytes), 0)).where(owned_by(Blob, tenant_id), Blob.id.in_(used))  # type: ignore[union-attr]
    ).one()
    return int(total or 0)


def new_key(tenant_id: int, message_id: int) -> str:
    """One key per message: a download repeated after a crash replaces the file, never adds one."""
    return storage.check_key(f"whatsapp/t{tenant_id}/m{message_id}")


def record_stored(*, session: Session, tenant_id: int, message_id: int, stored: storage.StoredFile, mime: str) -> None:
    blob = blobs.create(session=session, tenant_id=tenant_id, kind=BlobKind.WHATSAPP_MEDIA, stored=stored, content_type=mime)
    session.execute(
        sa.update(WhatsappMessage)
        .where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.id == message_id)
        .values(media_state=STORED, blob_id=blob.id, media_size=stored.size, media_next_try_at=None, updated_at=utcnow())
    )


def record_refused(*, session: Session, tenant_id: int, message_id: int, state: str, size: int | None = None) -> None:
    """Too large or over the firm's limit: kept as such (the message says why), not retried."""
    values: dict[str, object] = {"media_state": state, "media_next_try_at": None, "updated_at": utcnow()}
    if size is not None:
        values["media_size"] = size
    session.execute(sa.update(WhatsappMessage).where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.id == message_id).values(**values))


def record_failure(*, session: Session, tenant_id: int, message_id: int, now: datetime | None = None) -> str:
    """A download failed: retried with backoff up to :data:`AUTO_ATTEMPTS`, then "failed"
    (shown with a retry button). Returns the new state."""
    now = now or utcnow()
    attempts = session.exec(
        select(WhatsappMessage.media_attempts).where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.id == message_id)
    ).one() + 1
    state = PENDING if attempts < AUTO_ATTEMPTS else FAILED
    next_try = now + timedelta(seconds=backoff_delay(attempts, 2.0, 300.0)) if state == PENDING else None
    session.execute(
        sa.update(WhatsappMessage)
        .where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.id == message_id)
        .values(media_attempts=attempts, media_state=state, media_next_try_at=next_try, updated_at=now)
    )
    return state


def retry(*, session: Session, tenant_id: int, actor: Principal, message_id: int) -> None:
    """A person asks for a failed download again (any member)."""
    authz.require_member(actor, tenant_id)
    row = get_owned(session, WhatsappMessage, tenant_id, message_id, what="message")
    if row.media_state != FAILED:
        raise Conflict("only a file that could not be downloaded can be downloaded again", field="media_state")
    row.media_state = PENDING
    row.media_attempts = 0
    row.media_next_try_at = None
    row.updated_at = utcnow()
    session.add(row)
    session.flush()


def open_for(
    principal: Principal, *, session: Session, tenant_id: int, message_id: int, start: int | None = None, end: int | None = None, store: storage.Store | None = None
) -> blobs.BlobStream:
    """A message's file for a member of its firm (anyone else: not found), by byte range."""
    if principal.tenant_id != tenant_id:
        raise NotFound("message not found")
    authz.require_member(principal, tenant_id)
    row = get_owned(session, WhatsappMessage, tenant_id, message_id, what="message")
    if row.media_state != STORED or row.blob_id is None:
        raise NotFound("the file is not stored")
    blob = get_owned(session, Blob, tenant_id, row.blob_id, what="file")
    name = row.media_name or f"whatsapp-{row.id}"
    return blobs.open_stream(blob, start=start, end=end, filename=name, content_type=row.media_mime, store=store)


def _link_subject(session_id: int, message_id: int) -> str:
    return f"session {session_id} whatsapp media {message_id}"


def sign_link(*, session_id: int, message_id: int, now: datetime | None = None) -> str:
    """The ``sig`` of a link to a message's file for the dashboard session ``session_id`` (an
    <img>/<audio>/<video> element sends no bearer token)."""
    return security.sign_link(_link_subject(session_id, message_id), purpose=_LINK_PURPOSE, expires_at=security.link_expiry(LINK_TTL, now))


def principal_for_link(*, session: Session, session_id: int, message_id: int, signature: str) -> Principal:
    return principal_for_signed(session=session, session_id=session_id, subject=_link_subject(session_id, message_id), purpose=_LINK_PURPOSE, signature=signature)


def principal_for_signed(*, session: Session, session_id: int, subject: str, purpose: str, signature: str) -> Principal:
    """The member a signed file link (``security.sign_link`` of ``subject``) acts for, while
    its dashboard session is alive (a case's files use it too)."""
    from services import accounts

    if not security.verify_link(signature, subject, purpose=purpose):
        raise AuthenticationFailed("the file link is invalid or has expired; open the page again")
    check = accounts.check_session(session=session, session_id=session_id, activity=True)
    if check.principal is None:
        raise AuthenticationFailed("the session of this file link has ended")
    return check.principal

