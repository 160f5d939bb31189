"""The browser softphone (JsSIP) mounted above the router; see softphone.py."""

from watheeq_ui.components.softphone.softphone import Softphone, call_button, click_to_call, softphone_root, softphone_slot
from watheeq_ui.components.softphone.state import SoftphoneState

__all__ = ["Softphone", "SoftphoneState", "call_button", "click_to_call", "softphone_root", "softphone_slot"]
