"""neonize's messages and JIDs read as the sidecar's data: pure functions, no client, no Go core."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

from neonize.proto.Neonize_pb2 import JID

USER_SERVER = "s.whatsapp.net"
# Wrappers whose inner message is the real content.
_WRAPPERS = ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension", "documentWithCaptionMessage", "editedMessage")
# (field, type shown, where the text is)
_CONTENT = (
    ("conversation", "text", None),
    ("extendedTextMessage", "text", "text"),
    ("imageMessage", "image", "caption"),
    ("videoMessage", "video", "caption"),
    ("documentMessage", "document", "caption"),
    ("audioMessage", "audio", None),
    ("stickerMessage", "sticker", None),
    ("locationMessage", "location", "name"),
    ("liveLocationMessage", "location", "caption"),
    ("contactMessage", "contact", "displayName"),
    ("contactsArrayMessage", "contact", "displayName"),
    ("pollCreationMessage", "poll", "name"),
    ("pollCreationMessageV3", "poll", "name"),
)


def parse_jid(text: str) -> JID:
    """``user[.agent][:device]@server`` back into neonize's JID (the inverse of Jid2String)."""
    user, _, server = text.partition("@")
    device = 0
    if ":" in user:
        user, _, dev = user.partition(":")
        device = int(dev)
    agent = 0
    if "." in user:
        user, _, raw_agent = user.partition(".")
        agent = int(raw_agent)
    return JID(User=user, Server=server or USER_SERVER, Device=device, RawAgent=agent, Integrator=0, IsEmpty=False)


def describe_message(message: Any) -> tuple[str, str] | None:
    """(type, text or caption) of a waE2E.Message; None for messages with no content to store."""
    for _ in range(3):
        for wrapper in _WRAPPERS:
            if message.HasField(wrapper) and getattr(message, wrapper).HasField("message"):
                message = getattr(message, wrapper).message
                break
        else:
            break
    for name, kind, text_field in _CONTENT:
        if name == "conversation":
            if message.conversation:
                return kind, message.conversation
            continue
        if not message.HasField(name):
            continue
        part = getattr(message, name)
        if name == "audioMessage" and part.PTT:
            kind = "voice"
        text = getattr(part, text_field) if text_field else ""
        if name == "documentMessage" and not text:
            text = part.fileName
        return kind, text or ""
    return None


# Message parts that carry a file neonize's download_any can fetch.
_MEDIA = ("imageMessage", "videoMessage", "documentMessage", "audioMessage", "stickerMessage")
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "video/mp4": ".mp4", "application/pdf": ".pdf"}


def _unwrap(message: Any) -> Any:
    for _ in range(3):
        for wrapper in _WRAPPERS:
            if message.HasField(wrapper) and getattr(message, wrapper).HasField("message"):
                message = getattr(message, wrapper).message
                break
        else:
            break
    return message


def media_of(message: Any) -> tuple[str, str, int | None, str] | None:
    """(file name, type, declared size, reference) of a message's file; None without one.

    The reference is the file's part alone as a serialised waE2E.Message (URL, direct path,
    media key and hashes): what ``download_any`` needs, now or after a restart."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    message = _unwrap(message)
    for name in _MEDIA:
        if not message.HasField(name):
            continue
        part = getattr(message, name)
        mime = (part.mimetype or "application/octet-stream").split(";")[0].strip() or "application/octet-stream"
        file_name = getattr(part, "fileName", "") or ""
        if not file_name:
            ext = ".ogg" if mime.startswith("audio/ogg") else _EXTENSIONS.get(mime, "")
            file_name = f"{name.removesuffix('Message')}{ext}"
        only = Message()
        getattr(only, name).CopyFrom(part)
        size = int(part.fileLength) if part.fileLength else None
        return file_name, mime, size, base64.b64encode(only.SerializeToString()).decode("ascii")
    return None


def message_of_ref(ref: str) -> Any:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    return Message.FromString(base64.b64decode(ref))


def timestamp_of(value: int) -> datetime | None:
    """whatsmeow's Unix time as an aware datetime, None when unset."""
    if not value:
        return None
    # whatsmeow hands Unix seconds; guard against milliseconds all the same.
    seconds = value / 1000 if value > 10**11 else value
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def phone_of(jid: JID) -> str | None:
    """The E.164 number of a phone user JID, None for groups, LIDs and servers."""
    if jid.Server == USER_SERVER and jid.User.isdigit():
        return "+" + jid.User
    return None
