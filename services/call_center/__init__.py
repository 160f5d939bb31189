"""Call center: SIP extensions and PBX settings, call records, call analytics."""

from services.call_center.call_history import find_call_by_sip_id, get_call, get_call_history, get_call_legs
from services.call_center.calls import add_notes, delete_call, log_call, update_call_status
from services.call_center.extensions import (
    assign_extension,
    delete_extension,
    get_extension_for_user,
    get_extensions,
    get_pbx_settings,
    update_pbx_settings,
)
from services.call_center.stale_calls import close_open_calls_for_agent, close_stale_calls
from services.call_center.stats import get_stats

__all__ = [
    "add_notes",
    "assign_extension",
    "close_open_calls_for_agent",
    "close_stale_calls",
    "delete_call",
    "delete_extension",
    "find_call_by_sip_id",
    "get_call",
    "get_call_history",
    "get_call_legs",
    "get_extension_for_user",
    "get_extensions",
    "get_pbx_settings",
    "get_stats",
    "log_call",
    "update_call_status",
    "update_pbx_settings",
]
