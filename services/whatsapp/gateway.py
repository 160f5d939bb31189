"""What the sidecar needs from a WhatsApp connection, whichever library provides it.

A gateway runs one client per tenant and reports what happens through a
:class:`GatewayEvents` sink (the sidecar). It never touches the database itself: the
sidecar decides what each event means for the session row.

This module is the interface only; ``gateways.create_gateway`` picks an implementation.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Protocol

from services import config
from services.models import MessageStatus, WhatsappInbound
from services.whatsapp.failures import Failure


# What a download hands over at a time: a file is never read whole where the gateway can stream.
MEDIA_CHUNK = 1024 * 1024


def chunks_of(data: bytes) -> Iterator[bytes]:
    """``data`` as :data:`MEDIA_CHUNK`-sized views, for a gateway handed the whole file (no copy)."""
    view = memoryview(data)
    for start in range(0, len(view), MEDIA_CHUNK):
        yield view[start : start + MEDIA_CHUNK]


class GatewayError(Exception):
    """A gateway operation failed; the text holds no keys or secrets (it is still raw detail,
    shown only to an owner or admin).

    ``maybe_sent``: a send failed in a way that does not say whether WhatsApp got the message
    (a timeout waiting for the server's answer): it must not simply be tried again.
    """

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class GatewayEvents(Protocol):
    """Callbacks a gateway calls; each is awaited and must not raise."""

    async def on_qr(self, tenant_id: int, payload: str) -> None: ...

    async def on_paired(self, tenant_id: int, device_jid: str, phone_number: str | None, push_name: str | None) -> None: ...

    async def on_connected(self, tenant_id: int, push_name: str | None) -> None: ...

    async def on_logged_out(self, tenant_id: int, reason: str) -> None: ...

    async def on_connection_failed(self, tenant_id: int, reason: str, code: Failure | None = None) -> None: ...

    async def on_keepalive_timeout(self, tenant_id: int) -> None: ...

    async def on_activity(self, tenant_id: int) -> None: ...

    async def on_inbound(self, tenant_id: int, messages: list[WhatsappInbound]) -> None: ...

    async def on_offline_sync(self, tenant_id: int, messages: int) -> None:
        """A (re)connect's offline sync is over: ``messages`` arrived during it."""
        ...

    async def on_receipt(self, tenant_id: int, wa_message_ids: list[str], status: MessageStatus, at: datetime | None) -> None: ...

    async def on_call(self, tenant_id: int, call: WhatsappInbound, caller_jid: str) -> None:
        """An incoming voice call (whatsmeow CallOffer): ``call`` is its event row (type
        ``call``, id ``call-<call id>``); ``caller_jid`` as WhatsApp gave it, to decline it."""
        ...

    async def on_temporary_ban(self, tenant_id: int, code: str, expires: datetime | None) -> None:
        """whatsmeow's TemporaryBan: the reason code (TempBanReason name) and when it ends."""
        ...


class Gateway(ABC):
    """One WhatsApp client per tenant, driven by the sidecar."""

    name: str
    # Whether send_text takes the WhatsApp message id from the caller. With one, the id is
    # stored before the send, a re-send of it is a no-op on WhatsApp's side, and receipts match
    # it even when the sender died before hearing the answer.
    client_message_ids: bool = False

    def __init__(self, sink: GatewayEvents) -> None:
        self.sink = sink

    @abstractmethod
    async def start(self, tenant_id: int, device_jid: str | None) -> None:
        """Start the tenant's client: restore ``device_jid`` or, without one, pair a new device (QR).

        Returns once the client is started; the outcome arrives as events. Raises
        :class:`GatewayError` when it cannot even start.
        """

    @abstractmethod
    async def stop(self, tenant_id: int) -> None:
        """Stop the tenant's client without logging out (the device stays linked). Never raises."""

    @abstractmethod
    async def logout(self, tenant_id: int) -> None:
        """Unlink the device from the phone when the client is online, stop it, delete its store."""

    @abstractmethod
    def delete_device_store(self, tenant_id: int) -> None:
        """Forget the tenant's keys (after a logout or a phone-side unlink)."""

    @abstractmethod
    def has_device_store(self, tenant_id: int) -> bool:
        """Whether keys of the tenant are stored."""

    @abstractmethod
    def is_running(self, tenant_id: int) -> bool:
        """Whether a client of the tenant is started (connected or not)."""

    @abstractmethod
    async def is_alive(self, tenant_id: int) -> bool:
        """Whether the tenant's client is really connected right now (the health watchdog's probe)."""

    @abstractmethod
    async def send_text(self, tenant_id: int, chat_jid: str, body: str, *, message_id: str | None = None) -> str:
        """Send a text; returns the WhatsApp message id. Raises :class:`GatewayError`.

        ``message_id`` is used as the message's id when :attr:`client_message_ids` is set.
        """

    async def send_media(
        self, tenant_id: int, chat_jid: str, data: bytes, *, mime: str, name: str, caption: str, message_id: str | None = None
    ) -> str:
        """Send a file (image, document, audio or video by ``mime``) with a caption; returns the
        WhatsApp message id. Raises :class:`GatewayError`."""
        raise GatewayError("this gateway cannot send files")

    async def send_typing(self, tenant_id: int, chat_jid: str, typing: bool) -> None:
        """Show (or stop showing) "typing…" in the chat (whatsmeow SendChatPresence).
        Raises :class:`GatewayError`."""
        raise GatewayError("this gateway cannot show typing")

    async def mark_read(self, tenant_id: int, chat_jid: str, wa_message_ids: list[str]) -> None:
        """Send read receipts for received messages of a one-to-one chat (whatsmeow MarkRead).
        Raises :class:`GatewayError`."""
        raise GatewayError("this gateway cannot mark messages read")

    async def reject_call(self, tenant_id: int, caller_jid: str, call_id: str) -> None:
        """Decline an incoming call (whatsmeow RejectCall). Raises :class:`GatewayError`."""
        raise GatewayError("this gateway cannot decline calls")

    def new_message_id(self) -> str:
        """A fresh WhatsApp message id (only for gateways with :attr:`client_message_ids`)."""
        raise NotImplementedError

    async def was_delivered(self, tenant_id: int, chat_jid: str, wa_message_id: str) -> bool | None:
        """Whether WhatsApp has the message with this id in the chat: True, False, or None when
        the gateway cannot tell (the default)."""
        return None

    async def download_media(self, tenant_id: int, ref: str) -> Iterable[bytes]:
        """The file a received message carried (``ref``: what the gateway put in
        ``WhatsappInbound.media_ref``), as chunks of at most :data:`MEDIA_CHUNK` bytes that the
        caller reads in a worker thread while it encrypts them, so a gateway that can stream
        never holds a whole file. Raises :class:`GatewayError` when it cannot be had now
        (reading the chunks may raise it too)."""
        raise GatewayError("this gateway cannot download files")

    async def resolve_lid(self, tenant_id: int, lid_jid: str) -> str | None:
        """The E.164 number of a LID the client has learned (``digits@lid``), None when unknown
        or when the gateway cannot tell (the default)."""
        return None

    async def close(self) -> None:
        """Stop every client (without logging out)."""
        for tenant_id in list(self.running_tenants()):
            await self.stop(tenant_id)

    @abstractmethod
    def running_tenants(self) -> list[int]:
        """Tenants with a started client."""


def data_dir() -> Path:
    """The project's data folder (``WATHEEQ_DATA_DIR``, default ``data/`` in the project)."""
    return Path(config.get("WATHEEQ_DATA_DIR", str(config.PROJECT_ROOT / "data")) or "data")


def whatsapp_dir() -> Path:
    path = data_dir() / "whatsapp"
    path.mkdir(parents=True, exist_ok=True)
    # Device stores hold the line's private keys: readable by the service user only.
    os.chmod(path, 0o700)
    return path


# WhatsApp's linking codes: the first is shown about 60 s, each next one about 20 s.
QR_FIRST_SECONDS = 60.0
QR_NEXT_SECONDS = 20.0


def qr_code_lifetimes(name: str | None = None) -> tuple[float, float]:
    """How long the first and each later linking code of the configured gateway stay valid."""
    if (name or config.whatsapp_gateway()).lower() == "simulator":
        try:
            return (
                float(config.get("WATHEEQ_SIMULATOR_QR_FIRST_SECONDS", "60") or 60),
                float(config.get("WATHEEQ_SIMULATOR_QR_NEXT_SECONDS", "20") or 20),
            )
        except ValueError:
            pass
    return QR_FIRST_SECONDS, QR_NEXT_SECONDS

