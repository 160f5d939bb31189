"""Incoming WhatsApp voice calls (whatsmeow ``events.CallOffer``, neonize ``CallOfferEv``).

A call is kept as an event of its chat: a received row of type ``call`` in whatsapp_message
(deduplicated by the call id, matched to the client like any message, LIDs resolved the same
way), so it shows in the conversation and in the client's timeline. When the firm chooses
(``WhatsappSession.reject_calls``), the call is declined and an automatic text goes out through
the outbox (same order, pace and ticks as any message).

Every incoming call joins the callback queue (services/callbacks.py, issue "live operations")
as an item of channel WHATSAPP, in the transaction that stores the call: the product never
answers a WhatsApp call (the linked device only hears the offer), so each one is a caller
nobody took. A call seen twice (delivered again after an offline sync, or to a restarted
sidecar) is stored once and counted once: the message row is unique by the call id, and
the queue counts a miss once by its key ``wa:<call id>``. A caller whose number is unknown
(a LID WhatsApp has not mapped to a phone yet) is kept in the chat but not queued: there is
no number to call back. A call answered on the firm's phone itself still counts: whatsmeow's
CallAccept / CallTerminate events are not read yet (an agent closes such an item as reached).
Further listeners registered with :func:`subscribe` hear of each new call in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from services import callbacks
from services.models import MessageDirection, MessageStatus, WhatsappInbound, WhatsappMessage, WhatsappSession
from services.tenancy import owned_by, tenant_select
from services.whatsapp.delivery import store_inbound

CALL_TYPE = "call"
# The automatic answer to a declined call, in both of the firm's languages.
AUTO_REPLY = "We can't take WhatsApp calls; we'll call you back.\nلا نستقبل مكالمات واتساب؛ سنعاود الاتصال بك."


@dataclass(frozen=True)
class IncomingCall:
    """One new incoming call, as the hook's listeners get it."""

    tenant_id: int
    call_id: str
    message_id: int  # the call's row in whatsapp_message
    chat_jid: str
    remote_e164: str | None
    client_id: int | None
    at: datetime
    rejected: bool  # the firm declines calls: the caller was declined and answered by text
    reply_message_id: int | None
    callback_id: int | None  # the callback queue's item the call counts on (None: no number)


Listener = Callable[..., None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener(session=..., call=IncomingCall)`` for each new incoming call; returns a
    function that unsubscribes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def on_incoming_call(*, session: Session, call: IncomingCall) -> None:
    """The hook: every subscribed listener hears of the call, in the transaction that stored
    it (a listener that raises rolls the call back: the sidecar's writer retries it, then keeps
    it as a dead letter)."""
    for listener in list(_listeners):
        listener(session=session, call=call)


def call_id_of(wa_message_id: str) -> str:
    return wa_message_id.removeprefix("call-")


def _callback_number(remote_e164: str | None, chat_jid: str) -> str | None:
    """The number to call back: the caller's phone, or the user part of a phone JID."""
    if remote_e164:
        return remote_e164
    user, _, server = chat_jid.partition("@")
    user = user.split(":")[0].split(".")[0]
    return f"+{user}" if server == "s.whatsapp.net" and user.isdigit() else None


def record_call(*, session: Session, tenant_id: int, call: WhatsappInbound) -> IncomingCall | None:
    """Store an incoming call once (its ``wa_message_id`` is ``call-<call id>``), count it on
    the callback queue; when the firm declines calls, queue the automatic text. None for a call
    already recorded."""
    if call.message_type != CALL_TYPE or not call.wa_message_id.startswith("call-"):
        raise ValueError("not a call event")
    if store_inbound(session=session, tenant_id=tenant_id, messages=[call]) == 0:
        return None
    row = session.execute(
        sa.select(WhatsappMessage).where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.wa_message_id == call.wa_message_id)
    ).scalar_one()
    line = session.exec(tenant_select(WhatsappSession, tenant_id)).first()
    rejected = bool(line is not None and line.reject_calls)
    reply_id = None
    if rejected:
        reply = WhatsappMessage(
            tenant_id=tenant_id,
            direction=MessageDirection.OUTBOUND,
            status=MessageStatus.PENDING,
            chat_jid=row.chat_jid,
            remote_e164=row.remote_e164,
            client_id=row.client_id,
            message_type="text",
            body=AUTO_REPLY,
        )
        session.add(reply)
        session.flush()
        reply_id = reply.id
    number = _callback_number(row.remote_e164, row.chat_jid)
    callback_id = (
        callbacks.record_whatsapp_call(session, tenant_id, number=number, call_id=call_id_of(call.wa_message_id), at=row.created_at)
        if number
        else None
    )
    incoming = IncomingCall(
        tenant_id=tenant_id,
        call_id=call_id_of(call.wa_message_id),
        message_id=row.id,  # type: ignore[arg-type]
        chat_jid=row.chat_jid,
        remote_e164=row.remote_e164,
        client_id=row.client_id,
        at=row.created_at,
        rejected=rejected,
        reply_message_id=reply_id,
        callback_id=callback_id,
    )
    on_incoming_call(session=session, call=incoming)
    return incoming


__all__ = ["AUTO_REPLY", "CALL_TYPE", "IncomingCall", "call_id_of", "on_incoming_call", "record_call", "subscribe"]
