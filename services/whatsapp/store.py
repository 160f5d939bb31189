"""The WhatsApp store's former single module, kept as one import for the sidecar and old callers.

The code lives in ``sessions`` (intent and status), ``leases`` (the sidecar's claims and the
session row it writes), ``messages`` (send, list, UNCERTAIN decisions) and ``delivery`` (inbound,
outbox, send results, receipts); ``from services.whatsapp import store; store.send_message``
keeps working through these re-exports.
"""

from services.whatsapp.delivery import (
    apply_receipt,
    begin_send,
    mark_failed,
    mark_sent,
    mark_uncertain,
    next_outbound,
    orphaned_sends,
    store_inbound,
    tenants_with_pending,
)
from services.whatsapp.leases import (
    QR_EXPIRED,
    WorkerSync,
    record_connected,
    record_connecting,
    record_disconnected,
    record_error,
    record_pairing,
    record_qr,
    release_leases,
    restore_active_sessions,
    sync_worker,
)
from services.whatsapp.messages import (
    MAX_BODY,
    chat_jid_for,
    confirm_message_sent,
    get_messages,
    messages_fingerprint,
    resend_message,
    send_message,
)
from services.whatsapp.sessions import NOT_CONNECTED, disconnect, get_error_detail, get_session_status, init_session

__all__ = [
    "MAX_BODY",
    "NOT_CONNECTED",
    "QR_EXPIRED",
    "WorkerSync",
    "apply_receipt",
    "begin_send",
    "chat_jid_for",
    "confirm_message_sent",
    "disconnect",
    "get_error_detail",
    "get_messages",
    "get_session_status",
    "init_session",
    "mark_failed",
    "mark_sent",
    "mark_uncertain",
    "messages_fingerprint",
    "next_outbound",
    "orphaned_sends",
    "record_connected",
    "record_connecting",
    "record_disconnected",
    "record_error",
    "record_pairing",
    "record_qr",
    "release_leases",
    "resend_message",
    "restore_active_sessions",
    "send_message",
    "store_inbound",
    "sync_worker",
    "tenants_with_pending",
]
