"""A case's files: a file a client sent over WhatsApp saved to one of their cases, listed, read,
and sent back over WhatsApp.

Saving points the case file at the message's blob: nothing is copied, and the blob is kept for
as long as a case keeps it (services.blobs refuses to delete it). One file (by SHA-256) is on a
case once, so saving it again answers the case file already there. Sending one queues a
message in the same outbox as any file (services.whatsapp.outbox_files), pointing at the same
blob.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services import audit, authz, blobs, security, storage
from services.errors import Conflict, Invalid, NotFound
from services.models import (
    Blob,
    Case,
    CaseFile,
    CaseFilePublic,
    CaseFileSaved,
    CaseFilesPage,
    CaseFileSend,
    CaseFileSource,
    Client,
    MessageDirection,
    Principal,
    User,
    WhatsappMessage,
    WhatsappMessagePublic,
    WhatsappSend,
    utcnow,
)
from services.tenancy import get_owned, owned_by, owned_join
from services.whatsapp import media, outbox_files

LINK_TTL = timedelta(minutes=15)
_LINK_PURPOSE = "case.file.link"


def _public(row: CaseFile, case_title: str, saved_by: str | None) -> CaseFilePublic:
    return CaseFilePublic(
        id=row.id,  # type: ignore[arg-type]
        case_id=row.case_id,
        case_title=case_title,
        name=row.name,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        source=CaseFileSource(row.source),
        source_message_id=row.source_message_id,
        source_direction=row.source_direction,
        source_number=row.source_number,
        source_at=row.source_at,
        saved_by_user_id=row.saved_by_user_id,
        saved_by_name=saved_by,
        saved_at=row.saved_at,
    )


def _listed(session: Session, tenant_id: int, *conditions: sa.ColumnElement[bool]) -> list[CaseFilePublic]:
    rows = session.exec(
        select(CaseFile, Case.title, User.full_name)
        .join(Case, owned_join(Case, Case.id == CaseFile.case_id, tenant_id))
        .join(User, owned_join(User, User.id == CaseFile.saved_by_user_id, tenant_id), isouter=True)
        .where(owned_by(CaseFile, tenant_id), *conditions)
        .order_by(CaseFile.saved_at.desc(), CaseFile.id.desc())  # type: ignore[attr-defined]
    ).all()
    return [_public(row, title, name) for row, title, name in rows]


def _one(session: Session, tenant_id: int, case_file_id: int) -> CaseFilePublic:
    found = _listed(session, tenant_id, CaseFile.id == case_file_id)
    if not found:
        raise NotFound("case file not found")
    return found[0]


def _existing(session: Session, tenant_id: int, case_id: int, sha256: str) -> CaseFile | None:
    return session.exec(select(CaseFile).where(owned_by(CaseFile, tenant_id), CaseFile.case_id == case_id, CaseFile.sha256 == sha256)).first()


def save_message_file(*, session: Session, tenant_id: int, actor: Principal, case_id: int, message_id: int) -> CaseFileSaved:
    """Keep the file of the firm's WhatsApp message ``message_id`` on its case ``case_id`` (any
    member). The case file points at the message's blob (no copy) and says where it came from.

    Another firm's case or message: NotFound. A message without a stored file: Conflict. A
    message of a client saved to another client's case: Invalid (``case_id``). The same file
    saved to the same case again answers the case file already there (``created`` False).
    Audited.
    """
    authz.require_member(actor, tenant_id)
    message = get_owned(session, WhatsappMessage, tenant_id, message_id, what="message")
    case = get_owned(session, Case, tenant_id, case_id, what="case")
    if message.media_state != media.STORED or message.blob_id is None:
        raise Conflict("this message has no stored file to save", field="message_id")
    if message.client_id is not None and case.client_id != message.client_id:
        raise Invalid("case_id", "the case is not one of the message's client's cases")
    blob = get_owned(session, Blob, tenant_id, message.blob_id, what="file")
    existing = _existing(session, tenant_id, case_id, blob.sha256)
    if existing is None:
        row = CaseFile(
            tenant_id=tenant_id,
            case_id=case_id,
            blob_id=blob.id,  # type: ignore[arg-type]
            name=(message.media_name or f"whatsapp-{message.id}")[:255],
            content_type=(message.media_mime or blob.content_type)[:128],
            size_bytes=blob.size_bytes,
            sha256=blob.sha256,
            source=CaseFileSource.WHATSAPP.value,
            source_message_id=message.id,
            source_direction=MessageDirection(message.direction).value,
            source_number=message.remote_e164,
            source_at=message.created_at,
            saved_by_user_id=actor.user_id,
            saved_at=utcnow(),
        )
        try:
            # Two people saving the same file at once: the second finds the first's row.
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            existing = _existing(session, tenant_id, case_id, blob.sha256)
            if existing is None:
                raise
        else:
            audit.record(
                session=session,
                tenant_id=tenant_id,
                actor=actor,
                action="case.file.save",
                object_type="case_file",
                object_id=row.id,
                detail={"case_id": case_id, "message_id": message_id},
            )
            session.flush()
            return CaseFileSaved(**_one(session, tenant_id, row.id).model_dump(), created=True)  # type: ignore[arg-type]
    return CaseFileSaved(**_one(session, tenant_id, existing.id).model_dump(), created=False)  # type: ignore[arg-type]


def list_case_files(*, session: Session, tenant_id: int, actor: Principal, case_id: int) -> CaseFilesPage:
    """The files kept on the firm's case ``case_id``, newest first (any member)."""
    authz.require_member(actor, tenant_id)
    get_owned(session, Case, tenant_id, case_id, what="case")
    data = _listed(session, tenant_id, CaseFile.case_id == case_id)
    return CaseFilesPage(data=data, count=len(data))


def list_client_case_files(*, session: Session, tenant_id: int, actor: Principal, client_id: int) -> list[CaseFilePublic]:
    """The files of all the cases of the firm's client ``client_id``, newest first (any member)."""
    authz.require_member(actor, tenant_id)
    get_owned(session, Client, tenant_id, client_id, what="client")
    return _listed(session, tenant_id, Case.client_id == client_id)


def get_case_file(*, session: Session, tenant_id: int, actor: Principal, case_file_id: int, case_id: int | None = None) -> CaseFilePublic:
    """One of the firm's case files (of the case ``case_id`` when given); else NotFound."""
    authz.require_member(actor, tenant_id)
    found = _one(session, tenant_id, case_file_id)
    if case_id is not None and found.case_id != case_id:
        raise NotFound("case file not found")
    return found


def open_case_file(
    principal: Principal,
    *,
    session: Session,
    tenant_id: int,
    case_file_id: int,
    case_id: int | None = None,
    start: int | None = None,
    end: int | None = None,
    store: storage.Store | None = None,
) -> blobs.BlobStream:
    """A case file's bytes for a member of its firm (anyone else: not found), by byte range
    (:func:`services.storage.resolve_range`; RangeNotSatisfiable outside the file)."""
    if principal.tenant_id != tenant_id:
        raise NotFound("case file not found")
    found = get_case_file(session=session, tenant_id=tenant_id, actor=principal, case_file_id=case_file_id, case_id=case_id)
    row = get_owned(session, CaseFile, tenant_id, found.id, what="case file")
    blob = get_owned(session, Blob, tenant_id, row.blob_id, what="file")
    return blobs.open_stream(blob, start=start, end=end, filename=row.name or f"case-file-{row.id}", content_type=row.content_type, store=store)


def send_case_file(
    *, session: Session, tenant_id: int, actor: Principal, case_file_id: int, data: CaseFileSend, case_id: int | None = None
) -> WhatsappMessagePublic:
    """Send the firm's case file over WhatsApp to a number or a client, with an optional caption,
    through the same outbox as any file (PENDING until the sidecar sends it; the message points
    at the case file's blob). To a client, the case must be one of that client's (Invalid
    ``case_file_id`` otherwise). Conflict while the line is not connected."""
    authz.require_member(actor, tenant_id)
    found = get_case_file(session=session, tenant_id=tenant_id, actor=actor, case_file_id=case_file_id, case_id=case_id)
    if data.client_id is not None:
        get_owned(session, Client, tenant_id, data.client_id, what="client")
        case = get_owned(session, Case, tenant_id, found.case_id, what="case")
        if case.client_id != data.client_id:
            raise Invalid("case_file_id", "this document is not on one of the client's cases")
    row = get_owned(session, CaseFile, tenant_id, found.id, what="case file")
    sent = outbox_files.send_stored_file(
        session=session,
        tenant_id=tenant_id,
        actor=actor,
        data=WhatsappSend(to=data.to, client_id=data.client_id, body=data.caption),
        blob_id=row.blob_id,
        filename=row.name,
        mime=row.content_type,
    )
    audit.record(
        session=session,
        tenant_id=tenant_id,
        actor=actor,
        action="case.file.send",
        object_type="case_file",
        object_id=row.id,
        detail={"message_id": sent.id},
    )
    session.flush()
    return sent


def _link_subject(session_id: int, case_file_id: int) -> str:
    return f"session {session_id} case file {case_file_id}"


def sign_link(*, session_id: int, case_file_id: int, now: datetime | None = None) -> str:
    """The ``sig`` of a download link to a case file for the dashboard session ``session_id``
    (a link the browser follows sends no bearer token)."""
    return security.sign_link(_link_subject(session_id, case_file_id), purpose=_LINK_PURPOSE, expires_at=security.link_expiry(LINK_TTL, now))


def principal_for_link(*, session: Session, session_id: int, case_file_id: int, signature: str) -> Principal:
    return media.principal_for_signed(
        session=session, session_id=session_id, subject=_link_subject(session_id, case_file_id), purpose=_LINK_PURPOSE, signature=signature
    )
