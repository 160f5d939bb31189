"""The firm's WhatsApp line: session store and messages (``store``), gateways, and the sidecar.

The edges import the service functions from here; the sidecar and the gateways are separate
modules so that importing this package never loads neonize.
"""

from services.whatsapp.store import (
    confirm_message_sent,
    disconnect,
    get_error_detail,
    get_messages,
    get_session_status,
    init_session,
    resend_message,
    restore_active_sessions,
    send_message,
)

__all__ = [
    "confirm_message_sent",
    "disconnect",
    "get_error_detail",
    "get_messages",
    "get_session_status",
    "init_session",
    "resend_message",
    "restore_active_sessions",
    "send_message",
]
