"""Sending a file: an agent's upload is stored encrypted and queued as a PENDING message with its
caption, in the same outbox (order, rate limit, ticks) as text; the sidecar's sender sends it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlmodel import Session

from services import authz, blobs, storage
from services.errors import Invalid
from services.models import Blob, BlobKind, Principal, WhatsappMessage, WhatsappMessagePublic, WhatsappSend
from services.names import clean_name
from services.tenancy import get_owned
from services.whatsapp import media
from services.whatsapp.messages import MAX_BODY, _message_public, queue_outbound

MAX_NAME = 200


def _kind(mime: str) -> str:
    top = mime.split("/", 1)[0]
    return top if top in ("image", "audio", "video") else "document"


class _TooLarge(Exception):
    pass


def _limited(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise _TooLarge
        yield chunk


def _queued_file(
    session: Session, tenant_id: int, actor: Principal, data: WhatsappSend, filename: str, mime: str | None
) -> tuple[WhatsappMessage, str | None]:
    """The PENDING message of a file to send (flushed, without its file yet) and its client's
    name: the caption, recipient and line checked as for any file sent."""
    authz.require_member(actor, tenant_id)
    caption = data.body if isinstance(data.body, str) else ""
    if len(caption) > MAX_BODY:
        raise Invalid("body", f"a message is at most {MAX_BODY} characters")
    name = clean_name(filename or "")[:MAX_NAME].replace("/", "_").replace("\\", "_") or "file"
    mime = (mime or "application/octet-stream").split(";")[0].strip()[:128] or "application/octet-stream"
    return queue_outbound(session, tenant_id, actor, data, message_type=_kind(mime), body=caption, media_name=name, media_mime=mime)


def _attach(session: Session, message: WhatsappMessage, blob: Blob) -> None:
    message.media_state = media.STORED
    message.blob_id = blob.id
    message.media_size = blob.size_bytes
    session.add(message)
    session.flush()


def send_file(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    data: WhatsappSend,
    filename: str,
    mime: str | None,
    chunks: Iterable[bytes],
    store: storage.Store | None = None,
) -> WhatsappMessagePublic:
    """Queue a file with ``data.body`` as its (optional) caption to a number or a client.

    Streamed into the store (never whole in memory here); refused with the reason when it is
    over the per-file limit or the firm's storage limit, or empty. Conflict when the line is
    not connected.
    """
    message, client_name = _queued_file(session, tenant_id, actor, data, filename, mime)
    assert message.id is not None
    store = store or storage.default_store()
    limit = min(media.max_file_bytes(), max(0, media.firm_quota_bytes() - media.firm_usage(session=session, tenant_id=tenant_id)))
    key = media.new_key(tenant_id, message.id)
    try:
        stored = store.put(key, _limited(chunks, limit), purpose=media.PURPOSE)
    except _TooLarge:
        store.delete(key)
        if limit < media.max_file_bytes():
            raise Invalid("file", media.QUOTA_MESSAGE) from None
        raise Invalid("file", media.too_large_message()) from None
    if stored.size == 0:
        store.delete(key)
        raise Invalid("file", "the file is empty")
    blob = blobs.create(session=session, tenant_id=tenant_id, kind=BlobKind.WHATSAPP_MEDIA, stored=stored, content_type=message.media_mime or "")
    _attach(session, message, blob)
    return _message_public(message, client_name, blob.sha256)


def send_stored_file(
    *, session: Session, tenant_id: int, actor: Principal, data: WhatsappSend, blob_id: int, filename: str, mime: str | None
) -> WhatsappMessagePublic:
    """Queue a file the firm already keeps (the blob ``blob_id``, a case's document) with
    ``data.body`` as its caption, in the same outbox as any file: the message points at the
    same blob, nothing is copied (nor counted again against the firm's storage). Over the
    per-file limit it is refused like an upload; Conflict when the line is not connected."""
    blob = get_owned(session, Blob, tenant_id, blob_id, what="file")
    if blob.size_bytes > media.max_file_bytes():
        raise Invalid("file", media.too_large_message())
    if blob.size_bytes == 0:
        raise Invalid("file", "the file is empty")
    message, client_name = _queued_file(session, tenant_id, actor, data, filename, mime or blob.content_type)
    _attach(session, message, blob)
    return _message_public(message, client_name, blob.sha256)
