# Over 400 lines: one gateway class whose client lifecycle and event handlers share each firm's neonize client.
"""The real gateway: neonize's asyncio client (whatsmeow in Go), one client per firm.

Constraints of neonize 0.5.2 this module is built around (see shared research, whatsapp.md):

- the Go core keeps its clients in unlocked maps: client start/stop/logout are serialised
  through one lock, held until the new client has had time to register;
- a client without ``jid`` or ``new_device`` resumes the *first* device of its store, so a new
  pairing always passes ``uuid`` + ``new_device=True`` and a restore always passes the JID;
- ``connect()`` returns a task at once and a dial error only surfaces when it ends, and the
  first connect is never retried by the library: the task's end is reported to the sidecar;
- handler exceptions are swallowed by neonize, so every handler catches and logs its own;
- outgoing 1:1 messages carry a bot tag unless ``NEONIZE_BOT_TAG=off``.

Device store: one SQLite file per firm under ``<data>/whatsapp/``, or, when the app's database
is PostgreSQL, that database (whatsmeow's own ``whatsmeow_*`` tables), identities kept apart
by the per-firm uuid and stored JID.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

os.environ.setdefault("NEONIZE_BOT_TAG", "off")

from neonize._binder import ProxySettings  # noqa: E402
from neonize.aioze.client import NewAClient  # noqa: E402
from neonize.aioze.events import (  # noqa: E402
    CallOfferEv,
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    HistorySyncEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    MessageEv,
    OfflineSyncCompletedEv,
    OfflineSyncPreviewEv,
    PairStatusEv,
    QREv,
    ReceiptEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.proto.Neonize_pb2 import JID, ConnectFailureReason, PairStatus, Receipt, TemporaryBan  # noqa: E402
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ReceiptType  # noqa: E402
from neonize.utils.jid import Jid2String  # noqa: E402

from services import config, db  # noqa: E402
from services.models import MessageStatus, WhatsappInbound  # noqa: E402
from services.whatsapp.failures import Failure  # noqa: E402
from services.whatsapp.gateway import Gateway, GatewayError, GatewayEvents, chunks_of, whatsapp_dir  # noqa: E402
from services.whatsapp.lids import lid_user  # noqa: E402
from services.whatsapp.neonize_messages import USER_SERVER, describe_message, media_of, message_of_ref, parse_jid, phone_of, timestamp_of  # noqa: E402

# Re-exported: tests and tools read neonize's messages through the gateway module.
__all__ = ["USER_SERVER", "NeonizeGateway", "describe_message", "device_store_url", "parse_jid", "proxy_settings", "send_error"]

log = logging.getLogger("watheeq.whatsapp.neonize")

EVENTS = (
    QREv,
    PairStatusEv,
    ConnectedEv,
    LoggedOutEv,
    StreamReplacedEv,
    TemporaryBanEv,
    ConnectFailureEv,
    ClientOutdatedEv,
    DisconnectedEv,
    KeepAliveTimeoutEv,
    KeepAliveRestoredEv,
    MessageEv,
    ReceiptEv,
    OfflineSyncCompletedEv,
    OfflineSyncPreviewEv,
    HistorySyncEv,
    CallOfferEv,
)


def device_store_url(database_url: str) -> str:
    """The app's PostgreSQL URL in the form lib/pq reads (no driver suffix; no TLS on loopback)."""
    parts = urlsplit(database_url.replace("postgresql+psycopg://", "postgresql://", 1))
    query = dict(parse_qsl(parts.query))
    if "sslmode" not in query and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        query["sslmode"] = "disable"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))



# whatsmeow's send errors after the message node went out, when no answer came back: the
# message may well be on WhatsApp's side.
_MAYBE_SENT = ("timed out", "deadline exceeded", "disconnected before")


def ban_expiry(value: int) -> datetime | None:
    """When a TemporaryBan ends: whatsmeow's ``Expire`` is a duration (seconds from now), a
    Unix time is taken as it is."""
    if not value:
        return None
    if value > 10**9:
        return timestamp_of(value)
    return datetime.now(timezone.utc) + timedelta(seconds=value)


def send_error(exc: Exception) -> GatewayError:
    """A failed send as a GatewayError that says whether WhatsApp may have the message."""
    text = str(exc)[:500] or type(exc).__name__
    return GatewayError(text, maybe_sent=any(marker in text.lower() for marker in _MAYBE_SENT))


def proxy_settings() -> ProxySettings | None:
    """The proxy WhatsApp traffic goes through (``WATHEEQ_WHATSAPP_PROXY``, http:// or
    socks5://), for firms whose network only lets traffic out through one."""
    address = config.get("WATHEEQ_WHATSAPP_PROXY")
    return ProxySettings(proxy_address=address) if address else None

class NeonizeGateway(Gateway):
    name = "neonize"

    def __init__(self, sink: GatewayEvents, *, database_url: str | None = None, folder: Path | None = None, settle_seconds: float | None = None) -> None:
        super().__init__(sink)
        url = database_url or config.database_url()
        self.postgres = url.startswith("postgres")
        self._pg_url = device_store_url(url) if self.postgres else None
        self._folder = folder
        self.settle_seconds = settle_seconds if settle_seconds is not None else float(config.get("WATHEEQ_WHATSAPP_START_SETTLE_SECONDS", "0.5") or 0.5)
        # One lock for every call that writes neonize's Go maps (start, stop, logout).
        self._go_lock = asyncio.Lock()
        self._clients: dict[int, NewAClient] = {}
        self._tasks: dict[int, asyncio.Task[Any]] = {}
        self._stopping: set[int] = set()
        self._jids: dict[int, str] = {}
        # Messages counted since the client (re)connected, until whatsmeow's offline sync ends.
        self._offline: dict[int, int] = {}

    # ------------------------------------------------------------------ device store

    def store_name(self, tenant_id: int) -> str:
        if self._pg_url:
            return self._pg_url
        folder = self._folder or whatsapp_dir()
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"tenant-{tenant_id}.sqlite3")

    def has_device_store(self, tenant_id: int) -> bool:
        if self._pg_url:
            return tenant_id in self._jids
        return Path(self.store_name(tenant_id)).exists()

    def delete_device_store(self, tenant_id: int) -> None:
        jid = self._jids.pop(tenant_id, None)
        if self._pg_url:
            if jid:
                self._delete_pg_device(jid)
            return
        base = Path(self.store_name(tenant_id))
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(base) + suffix).unlink(missing_ok=True)

    def _delete_pg_device(self, jid: str) -> None:
        import sqlalchemy as sa

        try:
            with db.get_engine().begin() as conn:
                # whatsmeow's other tables reference the device with ON DELETE CASCADE.
                conn.execute(sa.text("DELETE FROM whatsmeow_device WHERE jid = :jid"), {"jid": jid})
        except Exception:
            log.exception("deleting a device from the PostgreSQL store failed")

    # ------------------------------------------------------------------ lifecycle

    async def start(self, tenant_id: int, device_jid: str | None) -> None:
        if tenant_id in self._clients:
            raise GatewayError("the client is already running")
        name = self.store_name(tenant_id)
        async with self._go_lock:
            if device_jid:
                client = NewAClient(name, jid=parse_jid(device_jid))
                self._jids[tenant_id] = device_jid
            else:
                client = NewAClient(name, uuid=f"watheeq-tenant-{tenant_id}", new_device=True)
            for event_type in EVENTS:
                client.event(event_type)(self._handler(tenant_id))
            client.qr(self._qr_handler(tenant_id))
            self._clients[tenant_id] = client
            self._offline[tenant_id] = 0
            self._stopping.discard(tenant_id)
            try:
                task = await client.connect(proxy_settings())
            except Exception as exc:
                self._clients.pop(tenant_id, None)
                raise GatewayError(str(exc)) from exc
            self._tasks[tenant_id] = task
            task.add_done_callback(lambda t: self._on_task_done(tenant_id, client, t))
            # Neonize() registers the client in Go's maps from its worker thread: keep others
            # out until it has, or until it already ended.
            await asyncio.wait({task}, timeout=self.settle_seconds)

    def _on_task_done(self, tenant_id: int, client: NewAClient, task: asyncio.Task[Any]) -> None:
        if self._clients.get(tenant_id) is not client:
            return
        self._clients.pop(tenant_id, None)
        self._tasks.pop(tenant_id, None)
        if tenant_id in self._stopping or task.cancelled():
            return
        exc = task.exception()
        reason = str(exc) if exc else "the connection to WhatsApp ended"
        asyncio.get_running_loop().create_task(self.sink.on_connection_failed(tenant_id, reason[:500]))

    async def stop(self, tenant_id: int) -> None:
        client = self._clients.get(tenant_id)
        if client is None:
            return
        self._stopping.add(tenant_id)
        async with self._go_lock:
            try:
                await client.stop()
            except Exception:
                log.exception("stopping the client of tenant %s failed", tenant_id)
        task = self._tasks.get(tenant_id)
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=5)
            except (asyncio.TimeoutError, Exception):
                pass
        self._clients.pop(tenant_id, None)
        self._tasks.pop(tenant_id, None)

    async def logout(self, tenant_id: int) -> None:
        client = self._clients.get(tenant_id)
        if client is not None and await self.is_alive(tenant_id):
            async with self._go_lock:
                try:
                    await client.logout()
                except Exception as exc:
                    log.warning("logout of tenant %s failed: %s", tenant_id, exc)
        await self.stop(tenant_id)
        self.delete_device_store(tenant_id)

    def is_running(self, tenant_id: int) -> bool:
        return tenant_id in self._clients

    def running_tenants(self) -> list[int]:
        return list(self._clients)

    async def is_alive(self, tenant_id: int) -> bool:
        client = self._clients.get(tenant_id)
        if client is None:
            return False
        try:
            # A coroutine property in the async client: without await it is always truthy.
            return bool(await client.is_connected)
        except Exception:
            return False

    async def send_text(self, tenant_id: int, chat_jid: str, body: str, *, message_id: str | None = None) -> str:
        # neonize 0.5.2 cannot take the id (its Go SendMessage builds the request without one),
        # so client_message_ids stays False and message_id is never given here.
        client = self._clients.get(tenant_id)
        if client is None:
            raise GatewayError("not connected to WhatsApp")
        try:
            response = await client.send_message(parse_jid(chat_jid), body)
        except Exception as exc:
            raise send_error(exc) from exc
        return response.ID

    async def send_typing(self, tenant_id: int, chat_jid: str, typing: bool) -> None:
        client = self._clients.get(tenant_id)
        if client is None:
            raise GatewayError("not connected to WhatsApp")
        state = ChatPresence.CHAT_PRESENCE_COMPOSING if typing else ChatPresence.CHAT_PRESENCE_PAUSED
        try:
            await client.send_chat_presence(parse_jid(chat_jid), state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT)
        except Exception as exc:
            raise send_error(exc) from exc

    async def mark_read(self, tenant_id: int, chat_jid: str, wa_message_ids: list[str]) -> None:
        client = self._clients.get(tenant_id)
        if client is None:
            raise GatewayError("not connected to WhatsApp")
        if not wa_message_ids:
            return
        chat = parse_jid(chat_jid)
        try:
            # One-to-one chats: the sender of the received messages is the chat itself.
            await client.mark_read(*wa_message_ids, chat=chat, sender=chat, receipt=ReceiptType.READ)
        except Exception as exc:
            raise send_error(exc) from exc

    async def send_media(
        self, tenant_id: int, chat_jid: str, data: bytes, *, mime: str, name: str, caption: str, message_id: str | None = None
    ) -> str:
        client = self._clients.get(tenant_id)
        if client is None:
            raise GatewayError("not connected to WhatsApp")
        to = parse_jid(chat_jid)
        try:
            if mime.startswith("image/"):
                response = await client.send_image(to, data, caption=caption or None)
            elif mime.startswith("video/"):
                response = await client.send_video(to, data, caption=caption or None)
            elif mime.startswith("audio/"):
                response = await client.send_audio(to, data, ptt=mime.startswith("audio/ogg"))
            else:
                response = await client.send_document(to, data, caption=caption or None, filename=name, mimetype=mime, title=name)
        except Exception as exc:
            raise send_error(exc) from exc
        return response.ID

    # ------------------------------------------------------------------ events

    def _handler(self, tenant_id: int) -> Any:
        async def handle(client: Any, event: Any) -> None:
            try:
                await self.dispatch(tenant_id, client, event)
            except Exception:
                log.exception("handling %s of tenant %s failed", type(event).__name__, tenant_id)

        return handle

    def _qr_handler(self, tenant_id: int) -> Any:
        async def handle(_client: Any, data: bytes) -> None:
            try:
                await self.sink.on_qr(tenant_id, data.decode() if isinstance(data, bytes) else str(data))
            except Exception:
                log.exception("handling a QR of tenant %s failed", tenant_id)

        return handle

    async def dispatch(self, tenant_id: int, client: Any, event: Any) -> None:
        """Turn one neonize event of a tenant's client into what it means for the sidecar."""
        sink = self.sink
        if isinstance(event, MessageEv):
            inbound = await self._inbound(client, event)
            if inbound is not None:
                if tenant_id in self._offline:
                    self._offline[tenant_id] += 1
                await sink.on_inbound(tenant_id, [inbound])
            await sink.on_activity(tenant_id)
        elif isinstance(event, OfflineSyncCompletedEv):
            # What arrived while the line was away came between the (re)connect and this event.
            await sink.on_offline_sync(tenant_id, self._offline.pop(tenant_id, 0))
            await sink.on_activity(tenant_id)
        elif isinstance(event, OfflineSyncPreviewEv):
            self._offline.setdefault(tenant_id, 0)
            await sink.on_activity(tenant_id)
        elif isinstance(event, ReceiptEv):
            status = {Receipt.DELIVERED: MessageStatus.DELIVERED, Receipt.READ: MessageStatus.READ, Receipt.PLAYED: MessageStatus.READ}.get(event.Type)
            if status is not None and not event.MessageSource.IsFromMe:
                await sink.on_receipt(tenant_id, list(event.MessageIDs), status, timestamp_of(event.Timestamp))
            await sink.on_activity(tenant_id)
        elif isinstance(event, QREv):
            codes = [c for c in event.Codes if c]
            if codes:
                await sink.on_qr(tenant_id, codes[0])
        elif isinstance(event, PairStatusEv):
            if event.Status == PairStatus.SUCCESS:
                jid = Jid2String(event.ID)
                self._jids[tenant_id] = jid
                push_name = getattr(getattr(client, "me", None), "PushName", None) or event.BusinessName or None
                await sink.on_paired(tenant_id, jid, phone_of(event.ID), push_name)
            else:
                await sink.on_connection_failed(tenant_id, f"pairing failed: {event.Error or 'unknown error'}", Failure.PAIRING_FAILED)
        elif isinstance(event, ConnectedEv):
            await sink.on_connected(tenant_id, await self._push_name(client))
        elif isinstance(event, LoggedOutEv):
            await sink.on_logged_out(tenant_id, ConnectFailureReason.Name(event.Reason).replace("_", " ").lower())
        elif isinstance(event, StreamReplacedEv):
            await sink.on_connection_failed(tenant_id, "the same device connected from elsewhere (stream replaced)", Failure.STREAM_REPLACED)
        elif isinstance(event, TemporaryBanEv):
            code = TemporaryBan.TempBanReason.Name(event.Code) if event.Code in TemporaryBan.TempBanReason.values() else str(event.Code)
            until = ban_expiry(event.Expire)
            await sink.on_temporary_ban(tenant_id, code, until)
            await sink.on_connection_failed(
                tenant_id,
                f"temporarily banned by WhatsApp ({code})" + (f" until {until:%Y-%m-%d %H:%M} UTC" if until else ""),
                Failure.TEMP_BANNED,
            )
        elif isinstance(event, ConnectFailureEv):
            name = ConnectFailureReason.Name(event.Reason)
            code = Failure.TEMP_BANNED if "TEMP_BANNED" in name else Failure.CLIENT_OUTDATED if "OUTDATED" in name else None
            await sink.on_connection_failed(tenant_id, f"WhatsApp refused the connection ({name}) {event.Message}".strip(), code)
        elif isinstance(event, ClientOutdatedEv):
            await sink.on_connection_failed(tenant_id, "WhatsApp says this client is outdated (405): update neonize", Failure.CLIENT_OUTDATED)
        elif isinstance(event, KeepAliveTimeoutEv):
            await sink.on_keepalive_timeout(tenant_id)
        elif isinstance(event, (KeepAliveRestoredEv, DisconnectedEv)):
            # whatsmeow reconnects by itself after a Disconnected (and syncs what it missed then);
            # the health watchdog covers the rest.
            if isinstance(event, DisconnectedEv):
                self._offline[tenant_id] = 0
            await sink.on_activity(tenant_id)
        elif isinstance(event, CallOfferEv):
            call = await self._call(client, event)
            if call is not None:
                await sink.on_call(tenant_id, *call)
            await sink.on_activity(tenant_id)
        elif isinstance(event, HistorySyncEv):
            messages = self._history(event)
            if messages:
                await sink.on_inbound(tenant_id, messages)

    async def _push_name(self, client: Any) -> str | None:
        me = getattr(client, "me", None)
        if me is not None and me.PushName:
            return me.PushName
        if client is None:
            return None
        try:
            device = await client.get_me()
            return device.PushName or None
        except Exception:
            return None

    async def _phone_for(self, client: Any, jid: JID, alt: JID | None) -> str | None:
        phone = phone_of(jid)
        if phone:
            return phone
        if alt is not None and alt.User:
            phone = phone_of(alt)
            if phone:
                return phone
        if jid.Server == "lid" and client is not None:
            try:
                # What whatsmeow has learned (its LID map), asked of the client.
                return phone_of(await client.get_pn_from_lid(jid))
            except Exception as exc:
                log.info("no phone number known for a LID sender: %s", exc)
        return None

    async def resolve_lid(self, tenant_id: int, lid_jid: str) -> str | None:
        client = self._clients.get(tenant_id)
        if client is None or not lid_jid.endswith("@lid"):
            return None
        try:
            return phone_of(await client.get_pn_from_lid(parse_jid(lid_jid)))
        except Exception as exc:
            log.info("no phone number known for a LID yet: %s", exc)
            return None

    async def _call(self, client: Any, event: Any) -> tuple[WhatsappInbound, str] | None:
        """A CallOffer as a call event of the caller's chat (a LID caller put in its phone's
        chat when the number is known, like a message), and the caller's JID to decline it."""
        meta = event.basicCallMeta
        if not meta.callID:
            return None
        caller = meta.callCreator if meta.HasField("callCreator") else getattr(meta, "from")
        alt = meta.callCreatorAlt if meta.HasField("callCreatorAlt") else None
        remote = await self._phone_for(client, caller, alt)
        chat = f"{caller.User}@{caller.Server}"
        lid = lid_user(chat) or (lid_user(Jid2String(alt)) if alt is not None else None)
        if lid and lid_user(chat):
            chat = lid
        inbound = WhatsappInbound(
            wa_message_id=f"call-{meta.callID}"[:128],
            chat_jid=chat,
            remote_e164=remote,
            message_type="call",
            timestamp=timestamp_of(meta.timestamp),
            sender_lid=lid,
        )
        return inbound, Jid2String(getattr(meta, "from"))

    async def reject_call(self, tenant_id: int, caller_jid: str, call_id: str) -> None:
        client = self._clients.get(tenant_id)
        if client is None:
            raise GatewayError("not connected to WhatsApp")
        try:
            await client.reject_call(parse_jid(caller_jid), call_id)
        except Exception as exc:
            raise send_error(exc) from exc

    async def _inbound(self, client: Any, event: Any) -> WhatsappInbound | None:
        info = event.Info
        source = info.MessageSource
        chat = Jid2String(source.Chat)
        if source.Chat.Server in ("broadcast", "newsletter") or not info.ID:
            return None
        described = describe_message(event.Message)
        if described is None:
            return None
        kind, body = described
        if source.IsFromMe:
            alt = source.RecipientAlt if source.HasField("RecipientAlt") else None
            remote = await self._phone_for(client, source.Chat, alt)
            # The other person's LID: the chat's, or the alternative id of a phone chat.
            lid = lid_user(chat) or (lid_user(Jid2String(alt)) if alt is not None else None)
        else:
            alt = source.SenderAlt if source.HasField("SenderAlt") else None
            remote = await self._phone_for(client, source.Sender, alt)
            lid = lid_user(Jid2String(source.Sender)) or (lid_user(Jid2String(alt)) if alt is not None else None)
        if lid and lid_user(chat):
            chat = lid  # one form per LID conversation (no device part)
        file = media_of(event.Message)
        return WhatsappInbound(
            wa_message_id=info.ID,
            chat_jid=chat,
            remote_e164=remote,
            sender_lid=lid,
            from_me=source.IsFromMe,
            push_name=info.Pushname or None,
            message_type=kind,
            body=body,
            timestamp=timestamp_of(info.Timestamp),
            media_name=file[0] if file else None,
            media_mime=file[1] if file else None,
            media_size=file[2] if file else None,
            media_ref=file[3] if file else None,
        )

    async def download_media(self, tenant_id: int, ref: str) -> Iterable[bytes]:
        # neonize hands the file over whole (DownloadAny returns one protobuf with its bytes;
        # its ``path`` argument only writes those same bytes out): this is the one copy held.
        client = self._clients.get(tenant_id)
        if client is None:
            raise GatewayError("not connected to WhatsApp")
        try:
            data = await client.download_any(message_of_ref(ref))
        except Exception as exc:
            raise GatewayError(f"download failed: {str(exc)[:300]}") from exc
        if data is None:
            raise GatewayError("download failed: WhatsApp returned no file")
        return chunks_of(data)

    def _history(self, event: Any) -> list[WhatsappInbound]:
        """Messages of a history sync (what arrived while the sidecar was down, among others)."""
        found: list[WhatsappInbound] = []
        for conversation in event.Data.conversations:
            # A conversation may name both ids of its person: that is a LID mapping.
            lid = lid_user(conversation.lidJID) or lid_user(conversation.ID)
            pn = conversation.pnJID if conversation.pnJID.endswith("@" + USER_SERVER) else ""
            for item in conversation.messages:
                web = item.message
                key = web.key
                described = describe_message(web.message)
                if described is None or not key.ID or not key.remoteJID:
                    continue
                chat = key.remoteJID
                if lid_user(chat):
                    chat = lid_user(chat) or chat
                elif not chat.endswith("@" + USER_SERVER):
                    continue
                kind, body = described
                file = media_of(web.message)
                user = (pn or chat).split("@", 1)[0].split(":", 1)[0]
                found.append(
                    WhatsappInbound(
                        wa_message_id=key.ID,
                        chat_jid=chat,
                        sender_lid=lid,
                        remote_e164="+" + user if user.isdigit() and (pn or chat.endswith("@" + USER_SERVER)) else None,
                        from_me=key.fromMe,
                        push_name=web.pushName or None,
                        message_type=kind,
                        body=body,
                        timestamp=timestamp_of(web.messageTimestamp),
                        media_name=file[0] if file else None,
                        media_mime=file[1] if file else None,
                        media_size=file[2] if file else None,
                        media_ref=file[3] if file else None,
                    )
                )
        return found
