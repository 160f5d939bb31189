"""Every state and kind the dashboard shows as a word has that word in both languages."""

from __future__ import annotations

import pytest

from services.models import CaseStatus, MessageStatus
from watheeq_ui.components.ui import MESSAGE_KINDS
from watheeq_ui.i18n import LABELS


def test_every_kind_of_whatsapp_message_has_a_label():
    gateway = pytest.importorskip("services.whatsapp.neonize_messages")
    # "voice" is the gateway's name for a push-to-talk audio message.
    kinds = {kind for _, kind, _ in gateway._CONTENT} - {"text"} | {"voice"}
    assert kinds <= set(MESSAGE_KINDS)
    assert all(f"kind_{k}" in LABELS for k in MESSAGE_KINDS)


@pytest.mark.parametrize(("prefix", "states"), [("case_", CaseStatus), ("msg_", MessageStatus)])
def test_every_case_and_message_state_has_an_arabic_word(prefix, states):
    for state in states:
        english, arabic = LABELS[f"{prefix}{state.value}"]
        assert english and arabic and not any("a" <= ch.lower() <= "z" for ch in arabic)
