"""The firm's WhatsApp line: its session (``sessions``, ``leases``), messages (``messages``,
``delivery``; ``store`` re-exports all four), gateways, and the sidecar.

The edges import the service functions from here; the sidecar and the gateways are separate
modules so that importing this package never loads neonize.
"""

from services.whatsapp.ingest import get_stats as get_ingest_stats
from services.whatsapp.ingest import list_dead_letters, retry_dead_letter
from services.whatsapp.leases import restore_active_sessions
from services.whatsapp.messages import confirm_message_sent, get_message, get_messages, messages_fingerprint, resend_message, send_message
from services.whatsapp.sessions import disconnect, get_error_detail, get_session_status, init_session

__all__ = [
    "confirm_message_sent",
    "disconnect",
    "get_error_detail",
    "get_ingest_stats",
    "get_message",
    "get_messages",
    "get_session_status",
    "init_session",
    "list_dead_letters",
    "messages_fingerprint",
    "resend_message",
    "restore_active_sessions",
    "retry_dead_letter",
    "send_message",
]
