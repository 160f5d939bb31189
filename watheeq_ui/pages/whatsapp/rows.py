"""What the WhatsApp page shows, as plain rows: chats of messages, client options, the QR image."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import qrcode
from pydantic import BaseModel

from services.models import WhatsappMessagePublic

from watheeq_ui import formatting


class ChatMessage(BaseModel):
    id: int
    direction: str
    status: str
    body: str
    kind: str
    at: str
    error_code: str
    # A file with the message: its state (pending, stored, failed, too_large, over_quota), how
    # the page shows it (image, audio, video, document), a signed link, its name and size.
    media_state: str = ""
    media_kind: str = ""
    media_url: str = ""
    media_name: str = ""
    media_size: str = ""
    # The cases its file was saved to, by title ("" when none).
    saved_to: str = ""


def media_kind(mime: str | None) -> str:
    top = (mime or "").split("/", 1)[0]
    return top if top in ("image", "audio", "video") else "document"


class ChatGroup(BaseModel):
    chat_jid: str
    title: str
    number: str
    client_id: str
    latest: str
    messages: list[ChatMessage]


class Option(BaseModel):
    value: str
    label: str


def chat_groups(messages: Iterable[WhatsappMessagePublic], tz: str, link: Callable[[int], str] | None = None) -> list[ChatGroup]:
    """Messages (newest first) grouped by chat, chats in the order of their latest message.

    A chat is titled by its client when one matches, else by the sender's WhatsApp name, else
    by the number.
    """
    groups: dict[str, ChatGroup] = {}
    for m in messages:  # newest first: a chat's first message is its latest
        group = groups.get(m.chat_jid)
        if group is None:
            number = m.remote_e164 or m.chat_jid.partition("@")[0]
            group = groups[m.chat_jid] = ChatGroup(
                chat_jid=m.chat_jid,
                title=m.client_name or m.push_name or number,
                number=number,
                client_id=str(m.client_id or ""),
                latest=formatting.local_time(m.created_at, tz),
                messages=[],
            )
        if m.client_name and group.title != m.client_name:
            group.title = m.client_name
            group.client_id = str(m.client_id)
        group.messages.append(
            ChatMessage(
                id=m.id,
                direction=m.direction.value,
                status=m.status.value,
                body=m.body,
                kind=m.message_type,
                at=formatting.local_time(m.created_at, tz),
                error_code=m.error_code or "",
                media_state=m.media_state or "",
                media_kind=media_kind(m.media_mime) if m.media_state else "",
                media_url=link(m.id) if link is not None and m.media_state == "stored" else "",
                media_name=m.media_name or "",
                media_size=formatting.file_size(m.media_size),
                saved_to=", ".join(m.saved_to_cases),
            )
        )
    return list(groups.values())


def qr_data_url(payload: str) -> str:
    """The payload as an SVG QR code in a data: URL: one path of dark runs, ~10 KB."""
    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(payload)
    code.make(fit=True)
    matrix = code.get_matrix()
    runs: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
    size = len(matrix)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" shape-rendering="crispEdges">'
        f'<rect width="100%" height="100%" fill="#fff"/><path d="{"".join(runs)}" fill="#000"/></svg>'
    )
    # Percent-encoding only what a data: URL needs keeps it smaller than base64.
    return "data:image/svg+xml;utf8," + svg.replace("%", "%25").replace("#", "%23").replace('"', "'")
