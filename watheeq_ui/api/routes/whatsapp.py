"""The firm's WhatsApp line: link by QR, status, sending and the message log.

Connect, disconnect and send only record intent; the sidecar acts on it. So a sent
message answers 201 in PENDING and its later states show up in the message log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import Field

from services import accounts, whatsapp
from services.errors import AuthenticationFailed
from services.whatsapp import guardrails, media, outbox_files
from services.models import (
    MessageDirection,
    WhatsappMessageBase,
    WhatsappDeadLettersPage,
    WhatsappGuardrailsUpdate,
    WhatsappIngestStats,
    WhatsappMessagePublic,
    WhatsappMessagesPage,
    WhatsappSend,
    WhatsappStatusPublic,
    max_length,
)
from services.paging import MAX_CURSOR_LENGTH
from services.storage import RangeNotSatisfiable
from watheeq_ui.api.deps import MAX_ID, AdminDep, IdPath, IdQuery, PrincipalDep, SessionDep, TokenDep
from watheeq_ui.api.errors import responses
from watheeq_ui.api.files import FILE_RESPONSES, file_response, parse_range, range_refused

router = APIRouter(prefix="/whatsapp/qr", tags=["whatsapp"], responses=responses(401))


class WhatsappSendIn(WhatsappSend):
    client_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None


@router.post("/connect", response_model=WhatsappStatusPublic, responses=responses(403))
def connect(session: SessionDep, admin: AdminDep) -> WhatsappStatusPublic:
    """Ask for the firm's line to be linked (OWNER/ADMIN); poll the status for the QR code."""
    return whatsapp.init_session(session=session, tenant_id=admin.tenant_id, actor=admin)


@router.post("/disconnect", response_model=WhatsappStatusPublic, responses=responses(403))
def disconnect(session: SessionDep, admin: AdminDep) -> WhatsappStatusPublic:
    """Unlink the firm's line (OWNER/ADMIN)."""
    return whatsapp.disconnect(session=session, tenant_id=admin.tenant_id, actor=admin)


@router.put("/guardrails", response_model=WhatsappStatusPublic, responses=responses(400, 403, 422))
def set_guardrails(session: SessionDep, admin: AdminDep, data: WhatsappGuardrailsUpdate) -> WhatsappStatusPublic:
    """The firm's guardrails (OWNER/ADMIN): the daily cap on first messages to numbers that never
    wrote to it (0 to 1000, default 20) and whether WhatsApp calls are declined with an automatic
    text; a field left out is kept. The status then carries both and today's first contacts."""
    guardrails.set_first_contact_cap(session=session, tenant_id=admin.tenant_id, actor=admin, data=data)
    return whatsapp.get_session_status(session=session, tenant_id=admin.tenant_id, actor=admin)


@router.get("/status", response_model=WhatsappStatusPublic)
def get_status(session: SessionDep, principal: PrincipalDep) -> WhatsappStatusPublic:
    """The line's state; the QR payload to scan is included for OWNER/ADMIN while pairing.

    A failure shows as ``error_code`` (no_route, proxy_unreachable, logged_out, temp_banned,
    stream_replaced, qr_timeout, client_outdated, connection_lost, pairing_failed, unknown)
    and ``error_message``, a sentence that says what to do.
    """
    return whatsapp.get_session_status(session=session, tenant_id=principal.tenant_id, actor=principal)


@router.post("/send", response_model=WhatsappMessagePublic, status_code=status.HTTP_201_CREATED, responses=responses(400, 404, 409))
def send(session: SessionDep, principal: PrincipalDep, data: WhatsappSendIn) -> WhatsappMessagePublic:
    """Queue a text message to a number or a client; 409 while the line is not connected."""
    return whatsapp.send_message(session=session, tenant_id=principal.tenant_id, actor=principal, data=data)


def _upload_chunks(upload: UploadFile) -> Any:
    while chunk := upload.file.read(1024 * 1024):
        yield chunk


@router.post("/send-file", response_model=WhatsappMessagePublic, status_code=status.HTTP_201_CREATED, responses=responses(404, 409))
def send_file(
    session: SessionDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="the file: an image, a document, audio or video (64 MB at most)")],
    to: Annotated[str | None, Form(max_length=40)] = None,
    client_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
    caption: Annotated[str, Form(max_length=4096)] = "",
) -> WhatsappMessagePublic:
    """Queue a file (multipart) with an optional caption to a number or a client, in the same
    outbox as text; 422 (field ``file``) when it is over the per-file or the firm's limit or
    empty, 409 while the line is not connected."""
    return outbox_files.send_file(
        session=session,
        tenant_id=principal.tenant_id,
        actor=principal,
        data=WhatsappSend(to=to, client_id=client_id, body=caption),
        filename=file.filename or "file",
        mime=file.content_type,
        chunks=_upload_chunks(file),
    )


@router.get("/messages", response_model=WhatsappMessagesPage, responses=responses(404))
def list_messages(
    session: SessionDep,
    principal: PrincipalDep,
    client_id: IdQuery = None,
    direction: MessageDirection | None = None,
    chat_jid: Annotated[str | None, Query(max_length=max_length(WhatsappMessageBase, "chat_jid"))] = None,
    date_from: datetime | None = None,
    date_to: Annotated[datetime | None, Query(description="end of the period, exclusive")] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> WhatsappMessagesPage:
    """The message log, newest first."""
    return whatsapp.get_messages(
        session=session,
        tenant_id=principal.tenant_id,
        actor=principal,
        client_id=client_id,
        direction=direction,
        chat_jid=chat_jid,
        date_from=date_from,
        date_to=date_to,
        cursor=cursor,
        limit=limit,
    )


@router.post("/messages/{message_id}/resend", response_model=WhatsappMessagePublic, responses=responses(404, 409))
def resend(session: SessionDep, principal: PrincipalDep, message_id: IdPath) -> WhatsappMessagePublic:
    """Send again a message that may not have been sent (UNCERTAIN); 409 for any other message."""
    return whatsapp.resend_message(session=session, tenant_id=principal.tenant_id, actor=principal, message_id=message_id)


@router.post("/messages/{message_id}/mark-sent", response_model=WhatsappMessagePublic, responses=responses(404, 409))
def mark_sent(session: SessionDep, principal: PrincipalDep, message_id: IdPath) -> WhatsappMessagePublic:
    """Record that a message that may not have been sent (UNCERTAIN) did arrive; 409 for any other."""
    return whatsapp.confirm_message_sent(session=session, tenant_id=principal.tenant_id, actor=principal, message_id=message_id)


@router.get("/stats", response_model=WhatsappIngestStats)
def ingest_stats(session: SessionDep, principal: PrincipalDep) -> WhatsappIngestStats:
    """Inbound counters: messages received, stored (each WhatsApp id once) and failed (kept as
    dead letters), and how many the last reconnect's offline sync brought."""
    return whatsapp.get_ingest_stats(session=session, tenant_id=principal.tenant_id, actor=principal)


@router.get("/dead-letters", response_model=WhatsappDeadLettersPage, responses=responses(400, 403))
def dead_letters(
    session: SessionDep, admin: AdminDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> WhatsappDeadLettersPage:
    """Inbound messages that could not be stored even after retries, kept raw (OWNER/ADMIN)."""
    return whatsapp.list_dead_letters(session=session, tenant_id=admin.tenant_id, actor=admin, limit=limit)


@router.post("/dead-letters/{dead_letter_id}/retry", response_model=WhatsappIngestStats, responses=responses(403, 404, 409))
def retry_dead_letter(session: SessionDep, admin: AdminDep, dead_letter_id: IdPath) -> WhatsappIngestStats:
    """Store a dead letter's message now (OWNER/ADMIN); 409 when it still cannot be stored."""
    whatsapp.retry_dead_letter(session=session, tenant_id=admin.tenant_id, actor=admin, dead_letter_id=dead_letter_id)
    return whatsapp.get_ingest_stats(session=session, tenant_id=admin.tenant_id, actor=admin)


@router.get("/messages/{message_id}/media", response_class=StreamingResponse, responses=FILE_RESPONSES)
def message_media(
    session: SessionDep,
    token: TokenDep,
    message_id: IdPath,
    range_header: Annotated[str | None, Header(alias="range", max_length=100)] = None,
    session_id: Annotated[int | None, Query(alias="session", ge=1, le=MAX_ID, description="with sig: the dashboard session a signed link is for")] = None,
    sig: Annotated[str | None, Query(max_length=200, description="the signature of a link the dashboard made (15 minutes)")] = None,
    download: Annotated[bool, Query(description="send as an attachment")] = False,
) -> Any:
    """A received file (image, document, voice note, audio, video), for members of the firm
    (anyone else 404); one HTTP byte range supported."""
    if token:
        principal = accounts.principal_for_token(session=session, token=token)
    elif session_id is not None and sig:
        principal = media.principal_for_link(session=session, session_id=session_id, message_id=message_id, signature=sig)
    else:
        raise AuthenticationFailed("not authenticated: send an Authorization: Bearer token")
    start, end = parse_range(range_header)
    try:
        stream = media.open_for(principal, session=session, tenant_id=principal.tenant_id, message_id=message_id, start=start, end=end)
    except RangeNotSatisfiable as exc:
        return range_refused(exc)
    return file_response(stream, download=download)


@router.post("/messages/{message_id}/media/retry", response_model=WhatsappMessagePublic, responses=responses(404, 409))
def retry_media(session: SessionDep, principal: PrincipalDep, message_id: IdPath) -> WhatsappMessagePublic:
    """Download again a file that could not be downloaded ("failed"); 409 for any other."""
    media.retry(session=session, tenant_id=principal.tenant_id, actor=principal, message_id=message_id)
    return whatsapp.get_message(session=session, tenant_id=principal.tenant_id, actor=principal, message_id=message_id)
