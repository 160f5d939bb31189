"""The WhatsApp page's rows: messages grouped into chats as the page lists them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from services.models import MessageDirection, MessageStatus, WhatsappMessagePublic
from watheeq_ui.pages.whatsapp.rows import chat_groups

BASE = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def _message(n: int, phone: str, *, client: tuple[int, str] | None = None, push_name: str | None = None, outbound: bool = False) -> WhatsappMessagePublic:
    return WhatsappMessagePublic(
        id=n,
        wa_message_id=f"W{n}",
        direction=MessageDirection.OUTBOUND if outbound else MessageDirection.INBOUND,
        status=MessageStatus.SENT if outbound else MessageStatus.RECEIVED,
        chat_jid=f"{phone.lstrip('+')}@s.whatsapp.net",
        remote_e164=phone,
        client_id=client[0] if client else None,
        client_name=client[1] if client else None,
        push_name=push_name,
        message_type="text",
        body=f"m{n}",
        error_code="send_failed" if n == 2 else None,
        error=None,
        created_at=BASE + timedelta(minutes=n),
        sent_at=None,
        delivered_at=None,
        read_at=None,
    )


def test_chats_come_in_the_order_of_their_latest_message_titled_by_client_then_name_then_number() -> None:
    newest_first = [
        _message(5, "+966500000003"),
        _message(4, "+966500000001", push_name="Abu Salem"),
        _message(3, "+966500000002", push_name="Sara"),
        _message(2, "+966500000001", client=(7, "Salem Trading"), outbound=True),
        _message(1, "+966500000002", push_name="Sara"),
    ]
    chats = chat_groups(newest_first, "Asia/Riyadh")
    assert [c.number for c in chats] == ["+966500000003", "+966500000001", "+966500000002"]
    # A chat with any message matched to a client carries the client's name and link.
    assert [(c.title, c.client_id) for c in chats] == [("+966500000003", ""), ("Salem Trading", "7"), ("Sara", "")]
    salem = chats[1]
    assert [m.body for m in salem.messages] == ["m4", "m2"]
    assert [(m.direction, m.status, m.error_code) for m in salem.messages] == [("INBOUND", "RECEIVED", ""), ("OUTBOUND", "SENT", "send_failed")]
    # Times are the firm's local time (Riyadh is UTC+3).
    assert salem.latest.endswith("12:04") and salem.messages[0].at == salem.latest


def test_files_are_shown_by_kind_with_a_link_only_once_stored() -> None:
    def with_file(n: int, state: str, mime: str, size: int | None) -> WhatsappMessagePublic:
        return _message(n, "+966500000001").model_copy(update={"media_state": state, "media_mime": mime, "media_name": f"f{n}", "media_size": size})

    newest_first = [
        with_file(6, "stored", "image/jpeg", 2048),
        with_file(5, "stored", "audio/ogg", 40_000),
        with_file(4, "stored", "video/mp4", 3 * 1024 * 1024),
        with_file(3, "stored", "application/pdf", 300_000),
        with_file(2, "failed", "application/pdf", None),
        _message(1, "+966500000001"),
    ]
    (chat,) = chat_groups(newest_first, "Asia/Riyadh", lambda message_id: f"/media/{message_id}")
    shown = [(m.media_state, m.media_kind, m.media_url, m.media_size) for m in chat.messages]
    assert shown == [
        ("stored", "image", "/media/6", "2 KB"),
        ("stored", "audio", "/media/5", "39 KB"),
        ("stored", "video", "/media/4", "3.0 MB"),
        ("stored", "document", "/media/3", "292 KB"),
        ("failed", "document", "", ""),
        ("", "", "", ""),
    ]
