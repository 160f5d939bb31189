# Over 400 lines: one gateway whose simulated clients, sends and phone actions share its per-firm state.
"""A WhatsApp gateway that needs no phone and no network: for tests and offline demos.

It behaves like the neonize gateway as the sidecar sees it: a new device shows QR payloads
of WhatsApp's shape that rotate (first after 60 s, then every 20 s, six codes in all, then
silence, as whatsmeow does), a paired device is kept in a store file and restored without a
QR, and inbound messages, receipts and phone-side unlinks arrive as events.

The phone is played through a command queue on disk (:mod:`services.whatsapp.simulator_phone`).

What the simulated WhatsApp delivered is appended, one JSON line per delivery, to
``sent/tenant-<id>.jsonl``: that file is WhatsApp's side of the story, which survives a crash
of the sidecar. By default the gateway takes the message id from the caller as WhatsApp does
for a re-sent message: an id it already delivered is not delivered again (the attempt goes to
``sent/tenant-<id>.resent.jsonl``). ``WATHEEQ_SIMULATOR_CLIENT_IDS=0`` makes it behave like
neonize 0.5.2 instead, which chooses the id itself and cannot be asked what it delivered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any

from services import config, phones
from services.models import MessageStatus, WhatsappInbound
from services.whatsapp.failures import Failure
from services.whatsapp.gateway import MEDIA_CHUNK, Gateway, GatewayError, GatewayEvents, qr_code_lifetimes
from services.whatsapp.simulator_phone import (
    ACTIONS,
    FAILURES,
    SYNC_ACTIONS,
    commands_dir,
    enqueue_command,
    main,
    pending_commands,
    read_command,
    simulator_dir,
)

# The phone's side is re-exported: tests and tools queue commands through this module.
__all__ = ["ACTIONS", "FAILURES", "SentMessage", "SimulatorGateway", "enqueue_command", "simulator_dir"]

log = logging.getLogger(__name__)

def _qr_payload() -> str:
    def b64(n: int) -> str:
        return base64.b64encode(secrets.token_bytes(n)).decode()

    ref = "2@" + base64.b64encode(secrets.token_bytes(60)).decode()
    return f"https://wa.me/settings/linked_devices#{ref},{b64(32)},{b64(32)},{b64(32)},1"


def _wa_id() -> str:
    return "3EB0" + secrets.token_hex(8).upper()


@dataclass
class SentMessage:
    tenant_id: int
    chat_jid: str
    body: str
    wa_message_id: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Client:
    tenant_id: int
    state: str = "starting"  # starting | pairing | connected | dead
    push_name: str | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # Restored (not newly paired): the first round of queued messages is its offline sync.
    offline_sync: bool = False



def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(MEDIA_CHUNK):
            yield chunk

class SimulatorGateway(Gateway):
    name = "simulator"
    client_message_ids = True

    def __init__(
        self,
        sink: GatewayEvents,
        *,
        root: Path | None = None,
        qr_first_seconds: float | None = None,
        qr_next_seconds: float | None = None,
        qr_codes: int | None = None,
        poll_interval: float = 0.1,
        connect_delay: float = 0.02,
        client_ids: bool | None = None,
    ) -> None:
        super().__init__(sink)
        self.root = simulator_dir(root)
        self._commands = commands_dir(self.root)
        first, following = qr_code_lifetimes("simulator")
        self.qr_first = qr_first_seconds if qr_first_seconds is not None else first
        self.qr_next = qr_next_seconds if qr_next_seconds is not None else following
        self.qr_codes = qr_codes if qr_codes is not None else int(config.get("WATHEEQ_SIMULATOR_QR_CODES", "6") or 6)
        self.poll_interval = poll_interval
        self.connect_delay = connect_delay
        if client_ids is None:
            client_ids = (config.get("WATHEEQ_SIMULATOR_CLIENT_IDS", "1") or "1") not in ("0", "false", "no")
        # An instance attribute: the class default says what the simulator can do.
        self.client_message_ids = client_ids
        self.sent: list[SentMessage] = []
        # What the phone saw besides messages: (tenant, chat, typing?, when) and read receipts.
        self.presence: list[tuple[int, str, bool, float]] = []
        self.reads: list[tuple[int, str, list[str], float]] = []
        self._banned: dict[int, datetime] = {}
        self.rejected_calls: list[tuple[int, str, str]] = []
        # The ids of each firm's deliveries by this process, for a receipt of "all sent".
        self._sent_ids: dict[int, list[str]] = {}
        self._delivered: dict[int, set[str]] = {}
        self._crash_after: int | None = None
        self._clients: dict[int, _Client] = {}
        self._known: set[int] = set()
        self._fail_connects: dict[int, list[tuple[str, Failure | None]]] = {}
        self._fail_sends: dict[int, list[str]] = {}
        self._fail_downloads: dict[int, int] = {}
        self._poller: asyncio.Task[None] | None = None
        # LID -> number mappings the simulated client has learned (``lid_mapping`` command).
        self._lid_map: dict[int, dict[str, str]] = {}

    # ------------------------------------------------------------------ device store

    def _device_file(self, tenant_id: int) -> Path:
        folder = self.root / "devices"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"tenant-{tenant_id}.json"

    def _read_device(self, tenant_id: int) -> dict[str, Any] | None:
        try:
            return json.loads(self._device_file(tenant_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def has_device_store(self, tenant_id: int) -> bool:
        return self._device_file(tenant_id).exists()

    def delete_device_store(self, tenant_id: int) -> None:
        self._device_file(tenant_id).unlink(missing_ok=True)

    # ------------------------------------------------------------------ lifecycle

    def _spawn(self, client: _Client, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        client.tasks.add(task)
        task.add_done_callback(client.tasks.discard)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll_commands())

    async def start(self, tenant_id: int, device_jid: str | None) -> None:
        if tenant_id in self._clients:
            raise GatewayError("the client is already running")
        self._known.add(tenant_id)
        self._ensure_poller()
        self._process_commands(tenant_id, only=set(SYNC_ACTIONS))
        client = _Client(tenant_id)
        self._clients[tenant_id] = client
        failures = self._fail_connects.get(tenant_id)
        banned = self._banned.get(tenant_id)
        if banned is not None and banned > datetime.now(timezone.utc):
            # WhatsApp refuses a banned number's connects until the ban ends.
            reason = f"temporarily banned by WhatsApp until {banned:%Y-%m-%d %H:%M} UTC"
            self._spawn(client, self._fail(client, reason, Failure.TEMP_BANNED))
        elif failures:
            self._spawn(client, self._fail(client, *failures.pop(0)))
        elif device_jid:
            self._spawn(client, self._restore(client, device_jid))
        else:
            self._spawn(client, self._pair(client))

    async def _fail(self, client: _Client, reason: str, code: Failure | None = None) -> None:
        await asyncio.sleep(self.connect_delay)
        self._drop_client(client)
        await self.sink.on_connection_failed(client.tenant_id, reason, code)

    async def _restore(self, client: _Client, device_jid: str) -> None:
        await asyncio.sleep(self.connect_delay)
        device = self._read_device(client.tenant_id)
        if device is None or device.get("jid") != device_jid:
            self._drop_client(client)
            await self.sink.on_logged_out(client.tenant_id, "the device is no longer linked")
            return
        client.state = "connected"
        client.push_name = device.get("push_name")
        client.offline_sync = True
        await self.sink.on_connected(client.tenant_id, client.push_name)

    async def _pair(self, client: _Client) -> None:
        await asyncio.sleep(self.connect_delay)
        client.state = "pairing"
        for i in range(self.qr_codes):
            if client.state != "pairing":
                return
            await self.sink.on_qr(client.tenant_id, _qr_payload())
            await asyncio.sleep(self.qr_first if i == 0 else self.qr_next)
        # Like whatsmeow's QR channel, the codes simply run out; the sidecar's watchdog expires it.

    def _drop_client(self, client: _Client) -> None:
        if self._clients.get(client.tenant_id) is client:
            del self._clients[client.tenant_id]
        current = asyncio.current_task()
        for task in list(client.tasks):
            if task is not current:
                task.cancel()

    async def stop(self, tenant_id: int) -> None:
        client = self._clients.get(tenant_id)
        if client is not None:
            self._drop_client(client)

    async def logout(self, tenant_id: int) -> None:
        await self.stop(tenant_id)
        self.delete_device_store(tenant_id)

    def is_running(self, tenant_id: int) -> bool:
        return tenant_id in self._clients

    def running_tenants(self) -> list[int]:
        return list(self._clients)

    async def is_alive(self, tenant_id: int) -> bool:
        client = self._clients.get(tenant_id)
        return client is not None and client.state == "connected"

    async def close(self) -> None:
        await super().close()
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    def new_message_id(self) -> str:
        return _wa_id()

    async def send_typing(self, tenant_id: int, chat_jid: str, typing: bool) -> None:
        """The phone sees "typing…" start or stop (kept in :attr:`presence` with the time)."""
        client = self._clients.get(tenant_id)
        if client is None or client.state != "connected":
            raise GatewayError("not connected to WhatsApp")
        self.presence.append((tenant_id, chat_jid, typing, time.monotonic()))

    async def mark_read(self, tenant_id: int, chat_jid: str, wa_message_ids: list[str]) -> None:
        """The phone gets blue ticks for these messages (kept in :attr:`reads`)."""
        client = self._clients.get(tenant_id)
        if client is None or client.state != "connected":
            raise GatewayError("not connected to WhatsApp")
        self.reads.append((tenant_id, chat_jid, list(wa_message_ids), time.monotonic()))

    async def call(self, tenant_id: int, params: dict[str, Any]) -> bool:
        """The phone ``from_phone`` calls the line (a CallOffer); False while no client runs."""
        client = self._clients.get(tenant_id)
        if client is None or client.state != "connected":
            return False
        e164 = phones.normalise(str(params.get("from_phone", "")), "SA")
        call_id = str(params.get("call_id") or secrets.token_hex(16).upper())
        caller = f"{phones.digits_of(e164)}@s.whatsapp.net"
        event = WhatsappInbound(
            wa_message_id=f"call-{call_id}", chat_jid=caller, remote_e164=e164, push_name=params.get("push_name"),
            message_type="call", timestamp=datetime.now(timezone.utc),
        )
        await self.sink.on_call(tenant_id, event, caller)
        return True

    async def reject_call(self, tenant_id: int, caller_jid: str, call_id: str) -> None:
        """The caller's phone stops ringing (kept in :attr:`rejected_calls`)."""
        client = self._clients.get(tenant_id)
        if client is None or client.state != "connected":
            raise GatewayError("not connected to WhatsApp")
        self.rejected_calls.append((tenant_id, caller_jid, call_id))

    async def temporary_ban(self, tenant_id: int, params: dict[str, Any]) -> None:
        """WhatsApp bans the number for ``seconds`` (reason ``code``): whatsmeow reports a
        TemporaryBan event, then the connection fails."""
        code = str(params.get("code") or "SEND_TO_TOO_MANY_PEOPLE")
        expires = datetime.fromtimestamp(time.time() + float(params.get("seconds", 3600)), tz=timezone.utc)
        self._banned[tenant_id] = expires
        client = self._clients.get(tenant_id)
        if client is not None:
            self._drop_client(client)
        await self.sink.on_temporary_ban(tenant_id, code, expires)
        await self.sink.on_connection_failed(
            tenant_id, f"temporarily banned by WhatsApp ({code}) until {expires:%Y-%m-%d %H:%M} UTC", Failure.TEMP_BANNED
        )

    def _sent_log(self, tenant_id: int, suffix: str = "") -> Path:
        folder = self.root / "sent"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"tenant-{tenant_id}{suffix}.jsonl"

    def delivered_ids(self, tenant_id: int) -> set[str]:
        """Ids WhatsApp has delivered for the tenant, read back from its log after a restart."""
        known = self._delivered.get(tenant_id)
        if known is None:
            known = set()
            try:
                with self._sent_log(tenant_id).open(encoding="utf-8") as fh:
                    for line in fh:
                        if line.strip():
                            known.add(json.loads(line)["wa_message_id"])
            except FileNotFoundError:
                pass
            self._delivered[tenant_id] = known
        return known

    async def send_media(
        self, tenant_id: int, chat_jid: str, data: bytes, *, mime: str, name: str, caption: str, message_id: str | None = None
    ) -> str:
        """A file reaches the phone: its bytes are kept under ``received-media/`` and the sent log
        records their SHA-256, name and type with the caption."""
        folder = self.root / "received-media" / f"tenant-{tenant_id}"
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()
        (folder / digest).write_bytes(data)
        return await self.send_text(tenant_id, chat_jid, caption, message_id=message_id, extra={"media_sha256": digest, "media_name": name, "media_mime": mime, "media_size": len(data)})

    async def send_text(
        self, tenant_id: int, chat_jid: str, body: str, *, message_id: str | None = None, extra: dict[str, Any] | None = None
    ) -> str:
        client = self._clients.get(tenant_id)
        if client is None or client.state != "connected":
            raise GatewayError("not connected to WhatsApp")
        failures = self._fail_sends.get(tenant_id)
        if failures:
            raise GatewayError(failures.pop(0))
        wa_id = message_id if (self.client_message_ids and message_id) else _wa_id()
        record = json.dumps({"chat_jid": chat_jid, "body": body, "wa_message_id": wa_id, **(extra or {})}) + "\n"
        delivered = self.delivered_ids(tenant_id)
        if wa_id in delivered:
            # WhatsApp drops a second message under an id it already has.
            with self._sent_log(tenant_id, ".resent").open("a", encoding="utf-8") as fh:
                fh.write(record)
            return wa_id
        # One append of one line: the delivery either happened or not, whenever the process dies.
        with self._sent_log(tenant_id).open("a", encoding="utf-8") as fh:
            fh.write(record)
        delivered.add(wa_id)
        self.sent.append(SentMessage(tenant_id, chat_jid, body, wa_id))
        self._sent_ids.setdefault(tenant_id, []).append(wa_id)
        if self._crash_after is not None:
            self._crash_after -= 1
            if self._crash_after <= 0:
                # Delivered, and the sidecar dies before it hears so: the crash window of a send.
                os.kill(os.getpid(), signal.SIGKILL)
        return wa_id

    async def was_delivered(self, tenant_id: int, chat_jid: str, wa_message_id: str) -> bool | None:
        if not self.client_message_ids:
            return None
        return wa_message_id in self.delivered_ids(tenant_id)

    # ------------------------------------------------------------------ the phone

    async def scan(self, tenant_id: int, phone: str, push_name: str | None = None) -> bool:
        """The phone scans the QR now; False when no QR is being shown."""
        client = self._clients.get(tenant_id)
        if client is None or client.state != "pairing":
            return False
        e164 = phones.normalise(phone if phone.startswith("+") else "+" + phones.digits_of(phone), "SA")
        jid = f"{phones.digits_of(e164)}:{secrets.randbelow(30) + 1}@s.whatsapp.net"
        device = {"jid": jid, "phone": e164, "push_name": push_name}
        tmp = self._device_file(tenant_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(device), encoding="utf-8")
        tmp.replace(self._device_file(tenant_id))
        client.state = "connected"
        client.push_name = push_name
        for task in list(client.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self.sink.on_paired(tenant_id, jid, e164, push_name)
        await self.sink.on_connected(tenant_id, push_name)
        return True

    def _inbound_message(self, params: dict[str, Any]) -> WhatsappInbound:
        """One message as the phone described it: from a number, or from a LID (``from_lid``),
        with the number too when WhatsApp gives it along (``from_phone``)."""
        raw = str(params.get("from_phone", "") or "")
        e164 = phones.normalise(raw if raw.startswith("+") else "+" + phones.digits_of(raw), "SA", field="from_phone") if raw else None
        lid = str(params.get("from_lid") or "")
        if not e164 and not lid:
            raise ValueError("an inbound message needs from_phone or from_lid")
        at = params.get("timestamp")
        file = str(params.get("media_file") or "")
        if file and not Path(file).is_file():
            raise ValueError("media_file must be an existing file")
        return WhatsappInbound(
            wa_message_id=str(params.get("wa_message_id") or _wa_id()),
            chat_jid=f"{phones.digits_of(lid)}@lid" if lid else f"{phones.digits_of(e164 or '')}@s.whatsapp.net",
            remote_e164=e164,
            sender_lid=f"{phones.digits_of(lid)}@lid" if lid else None,
            from_me=bool(params.get("from_me", False)),
            push_name=params.get("push_name"),
            message_type=str(params.get("message_type") or "text"),
            body=str(params.get("body") or ""),
            timestamp=datetime.fromisoformat(at) if at else datetime.now(timezone.utc),
            media_ref=f"file:{file}" if file else None,
            media_name=(params.get("media_name") or Path(file).name) if file else None,
            media_mime=str(params.get("media_mime") or "application/octet-stream") if file else None,
            # What the message declares; ``media_size`` lets a test's sender declare less than it sends.
            media_size=int(params.get("media_size") or Path(file).stat().st_size) if file else None,
        )

    async def download_media(self, tenant_id: int, ref: str) -> Iterable[bytes]:
        """The file of a received message, as WhatsApp's media servers would hand it over:
        streamed from the phone's file, a chunk at a time."""
        client = self._clients.get(tenant_id)
        if client is None or client.state != "connected":
            raise GatewayError("not connected to WhatsApp")
        failing = self._fail_downloads.get(tenant_id, 0)
        if failing:
            self._fail_downloads[tenant_id] = failing - 1
            raise GatewayError("download failed: media server answered 503")
        if not ref.startswith("file:"):
            raise GatewayError("unknown media reference")
        path = Path(ref[5:])
        if not path.is_file():
            raise GatewayError("download failed: the media server no longer has the file")
        return _file_chunks(path)

    async def deliver(self, tenant_id: int, params: dict[str, Any]) -> bool:
        """An inbound message arrives; False (kept for later) while the line is not connected."""
        client = self._clients.get(tenant_id)
        if client is None or client.state != "connected":
            return False
        message = self._inbound_message(params)
        await self.sink.on_activity(tenant_id)
        await self.sink.on_inbound(tenant_id, [message])
        return True

    async def resolve_lid(self, tenant_id: int, lid_jid: str) -> str | None:
        return self._lid_map.get(tenant_id, {}).get(lid_jid)

    def learn_lid(self, tenant_id: int, params: dict[str, Any]) -> None:
        """The client learns a LID's number (as whatsmeow does from WhatsApp's notifications)."""
        raw = str(params.get("phone", ""))
        e164 = phones.normalise(raw if raw.startswith("+") else "+" + phones.digits_of(raw), "SA", field="phone")
        self._lid_map.setdefault(tenant_id, {})[f"{phones.digits_of(str(params.get('lid', '')))}@lid"] = e164

    async def history_sync(self, tenant_id: int, params: dict[str, Any]) -> bool:
        """A history sync: many messages (some maybe already seen live) in one event."""
        client = self._clients.get(tenant_id)
        if client is None or client.state != "connected":
            return False
        messages = [self._inbound_message(m) for m in params.get("messages", [])]
        if messages:
            await self.sink.on_inbound(tenant_id, messages)
        return True

    async def receipt(self, tenant_id: int, params: dict[str, Any]) -> bool:
        client = self._clients.get(tenant_id)
        if client is None or client.state != "connected":
            return False
        status = MessageStatus(str(params.get("status", "DELIVERED")).upper())
        if params.get("all_sent"):
            ids = list(self._sent_ids.get(tenant_id, []))
        else:
            ids = [str(i) for i in params.get("wa_message_ids", [])]
        await self.sink.on_receipt(tenant_id, ids, status, datetime.now(timezone.utc))
        return True

    async def unlink(self, tenant_id: int) -> None:
        self.delete_device_store(tenant_id)
        client = self._clients.get(tenant_id)
        if client is not None:
            self._drop_client(client)
            await self.sink.on_logged_out(tenant_id, "unlinked from the phone")

    def drop(self, tenant_id: int) -> None:
        client = self._clients.get(tenant_id)
        if client is not None:
            client.state = "dead"

    def fail_next_connects(self, tenant_id: int, count: int, reason: str, code: Failure | None = None) -> None:
        self._fail_connects.setdefault(tenant_id, []).extend([(reason, code)] * count)

    async def inject_failure(self, tenant_id: int, kind: str, count: int = 1) -> None:
        """One of the known failures (:data:`FAILURES`), reported now, as neonize would report it."""
        if kind not in FAILURES:
            raise ValueError(f"unknown failure {kind!r}")
        reason, code = FAILURES[kind]
        self._fail_connects.pop(tenant_id, None)
        client = self._clients.get(tenant_id)
        if kind == "logged_out":
            self.delete_device_store(tenant_id)
            if client is not None:
                self._drop_client(client)
            await self.sink.on_logged_out(tenant_id, reason)
            return
        if kind == "qr_timeout":
            # The phone never scans: the codes run out at once instead of over minutes.
            if client is not None and client.state == "pairing":
                for _ in range(max(count, 20)):
                    if self._clients.get(tenant_id) is not client:
                        return
                    await self.sink.on_qr(tenant_id, _qr_payload())
                    await asyncio.sleep(0.01)
            return
        if count > 1:
            self.fail_next_connects(tenant_id, count - 1, reason, code)
        if client is not None:
            self._drop_client(client)
        await self.sink.on_connection_failed(tenant_id, reason, code)

    # ------------------------------------------------------------------ command queue

    def _pending_commands(self) -> dict[int, list[Path]]:
        """Queued command files of the tenants this gateway runs or ran, oldest first per tenant."""
        return pending_commands(self._commands, self._known)

    def _process_commands(self, tenant_id: int, only: set[str]) -> None:
        """Apply the synchronous commands (failure injection) queued for a tenant."""
        for path in self._pending_commands().get(tenant_id, []):
            command = read_command(path)
            if command is None or command.get("action") not in only:
                continue
            self._apply_sync(tenant_id, command)
            path.unlink(missing_ok=True)

    def _apply_sync(self, tenant_id: int, command: dict[str, Any]) -> None:
        count = int(command.get("count", 1))
        reason = str(command.get("reason") or "simulated failure")
        if command["action"] == "fail_connects":
            self.fail_next_connects(tenant_id, count, reason)
        elif command["action"] == "crash_after_sends":
            self._crash_after = max(1, count)
        elif command["action"] == "fail_downloads":
            self._fail_downloads[tenant_id] = self._fail_downloads.get(tenant_id, 0) + count
        else:
            self._fail_sends.setdefault(tenant_id, []).extend([reason] * count)

    async def _apply(self, tenant_id: int, command: dict[str, Any]) -> bool:
        """Apply one command; False keeps it queued for later."""
        action = command["action"]
        if action == "scan":
            if not await self.scan(tenant_id, str(command.get("phone", "")), command.get("push_name")):
                log.warning("simulator: scan for tenant %s ignored: no QR is shown", tenant_id)
            return True
        if action == "inbound":
            return await self.deliver(tenant_id, command)
        if action == "history_sync":
            return await self.history_sync(tenant_id, command)
        if action == "lid_mapping":
            self.learn_lid(tenant_id, command)
            return True
        if action == "receipt":
            return await self.receipt(tenant_id, command)
        if action == "unlink":
            await self.unlink(tenant_id)
            return True
        if action == "drop":
            self.drop(tenant_id)
            return True
        if action == "call":
            return await self.call(tenant_id, command)
        if action == "temporary_ban":
            await self.temporary_ban(tenant_id, command)
            return True
        if action == "failure":
            await self.inject_failure(tenant_id, str(command.get("kind", "")), int(command.get("count", 1)))
            return True
        self._apply_sync(tenant_id, command)
        return True

    async def _poll_commands(self) -> None:
        while True:
            pending = self._pending_commands()
            for tenant_id in list(self._clients):
                await self._poll_tenant(tenant_id, pending.get(tenant_id, []))
            for tenant_id, paths in pending.items():
                if tenant_id not in self._clients:
                    await self._poll_tenant(tenant_id, paths)
            await asyncio.sleep(self.poll_interval)

    async def _poll_tenant(self, tenant_id: int, paths: list[Path]) -> None:
        """Apply a tenant's queued commands in order; a restored line's first round is its
        offline sync: the messages that waited for it, then how many they were."""
        client = self._clients.get(tenant_id)
        syncing = client is not None and client.offline_sync and client.state == "connected"
        arrived = 0
        for path in paths:
            command = read_command(path)
            if command is None:
                continue
            try:
                done = await self._apply(tenant_id, command)
            except Exception:
                log.exception("simulator: command %s for tenant %s failed", command.get("action"), tenant_id)
                done = True
            if not done:
                # Later commands of this tenant wait too, so the phone's order is kept.
                break
            path.unlink(missing_ok=True)
            if command.get("action") == "inbound":
                arrived += 1
            elif command.get("action") == "history_sync":
                arrived += len(command.get("messages", []))
        if syncing and client is not None and self._clients.get(tenant_id) is client:
            client.offline_sync = False
            await self.sink.on_offline_sync(tenant_id, arrived)


if __name__ == "__main__":
    os.environ.setdefault("WATHEEQ_WHATSAPP_GATEWAY", "simulator")
    main()
