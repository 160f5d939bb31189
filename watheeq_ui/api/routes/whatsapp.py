"""The firm's WhatsApp line: link by QR, status, sending and the message log.

Connect, disconnect and send only record intent; the sidecar acts on it. So a sent
message answers 201 in PENDING and its later states show up in the message log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import Field

from services import whatsapp
from services.models import (
    MessageDirection,
    WhatsappMessageBase,
    WhatsappMessagePublic,
    WhatsappMessagesPage,
    WhatsappSend,
    WhatsappStatusPublic,
    max_length,
)
from services.paging import MAX_CURSOR_LENGTH
from watheeq_ui.api.deps import MAX_ID, AdminDep, IdPath, IdQuery, PrincipalDep, SessionDep
from watheeq_ui.api.errors import responses

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
