"""The sidecar's outbox: sends a firm's PENDING messages in order per chat, at a human pace per firm
(read receipts, "typing…", random gaps, first contacts slower and capped: services.whatsapp.guardrails).

Each send is recorded SENDING by an attempt of this process (committed before the gateway has
the message), so a send cut by a crash is found and settled, never sent again blindly.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from services.models import WhatsappOutbound, utcnow
from services.whatsapp import delivery, guardrails
from services.whatsapp.gateway import Gateway, GatewayError
from services.whatsapp.runtime import HeldTenant, Settings, backoff_delay

log = logging.getLogger("watheeq.whatsapp.sidecar")


def _read_file(key: str, purpose: str | None = None) -> bytes:
    """A file to send, decrypted (whatsmeow uploads it whole: neonize takes bytes)."""
    from services import storage
    from services.whatsapp.media import PURPOSE

    return b"".join(storage.default_store().open_range(key, 0, None, purpose=purpose or PURPOSE))


class Sender:
    """Sends for the firms a worker holds; the worker starts one :meth:`send_pending` per firm."""

    def __init__(
        self,
        *,
        gateway: Gateway,
        settings: Settings,
        write: Callable[..., Any],
        tenants: dict[int, HeldTenant],
        stopping: asyncio.Event,
    ) -> None:
        self.gateway = gateway
        self.settings = settings
        self._write = write
        # The worker's own table of held firms: a firm it lets go of stops being sent for.
        self.tenants = tenants
        self.stopping = stopping
        # Send attempts are this process's: a SENDING row of any other attempt has no sender.
        self._attempt_prefix = uuid.uuid4().hex[:16]
        self._attempt_seq = 0
        self._live_attempts: set[str] = set()


    def _new_attempt(self) -> str:
        self._attempt_seq += 1
        return f"{self._attempt_prefix}-{self._attempt_seq}"

    async def send_pending(self, tenant_id: int) -> None:
        """Settle sends orphaned by a dead sender, then send the firm's PENDING messages oldest
        first; a failing message holds back its chat."""
        while True:
            rt = self.tenants.get(tenant_id)
            if rt is None or not rt.connected or rt.stop_sending or self.stopping.is_set():
                return
            orphans = await self._write(delivery.orphaned_sends, tenant_id=tenant_id, live_attempts=set(self._live_attempts))
            for message in orphans:
                if not rt.connected or rt.stop_sending:
                    return
                await self._recover(tenant_id, rt, message)
            batch = await self._write(delivery.next_outbound, tenant_id=tenant_id, limit=200)
            if not batch:
                return
            held_chats: set[str] = set()
            sent_any = False
            for message in batch:
                if message.chat_jid in held_chats:
                    continue
                retry_at = rt.retry_after.get(message.id)
                if retry_at is not None and time.monotonic() < retry_at:
                    held_chats.add(message.chat_jid)
                    continue
                if not rt.connected or rt.stop_sending:
                    return
                outcome = await self._send_one(tenant_id, rt, message)
                if outcome == "paused":
                    return  # a temporary ban: nothing goes out until it ends
                if outcome == "retry":
                    held_chats.add(message.chat_jid)
                sent_any = sent_any or outcome == "sent"
            if not sent_any:
                # Everything left waits for a retry time; the next tick starts a sender again.
                return

    async def _recover(self, tenant_id: int, rt: HeldTenant, message: WhatsappOutbound) -> None:
        """A message left SENDING by a sender that died: find out, never re-send blindly.

        With an id chosen before the send, ask the gateway whether WhatsApp has it; if it does,
        it was sent; if not, or if the gateway cannot tell, send it again under the same id,
        which WhatsApp does not deliver twice. Without such an id nothing can be told: the
        message becomes UNCERTAIN and a person decides.
        """
        if message.wa_message_id and self.gateway.client_message_ids:
            try:
                delivered = await self.gateway.was_delivered(tenant_id, message.chat_jid, message.wa_message_id)
            except Exception:
                log.exception("checking message %s of tenant %s failed", message.id, tenant_id)
                delivered = None
            if delivered:
                await self._write(delivery.mark_sent, tenant_id=tenant_id, message_id=message.id, wa_message_id=message.wa_message_id)
                return
            await self._send_one(tenant_id, rt, message, replaces=message.send_attempt_id)
            return
        log.warning("message %s of tenant %s was being sent when its sender died; marked uncertain", message.id, tenant_id)
        await self._write(
            delivery.mark_uncertain,
            tenant_id=tenant_id,
            message_id=message.id,
            detail=f"sender attempt {message.send_attempt_id} stopped while handing the message to WhatsApp; {self.gateway.name} cannot tell whether it arrived",
        )

    async def _send_one(self, tenant_id: int, rt: HeldTenant, message: WhatsappOutbound, *, replaces: str | None = None) -> str:
        """One send, recorded SENDING (committed) before the gateway has it: sent, retry, failed,
        uncertain or skipped (the message moved meanwhile)."""
        s = self.settings
        if time.monotonic() - rt.ban_checked_at >= 1.0:
            # A ban recorded by another worker's client shows within a second.
            rt.banned_until = await self._write(guardrails.banned_until, tenant_id=tenant_id)
            rt.ban_checked_at = time.monotonic()
        if rt.banned_until is not None and rt.banned_until > utcnow():
            return "paused"
        first_contact = False
        if replaces is None and message.chat_jid not in rt.known_chats:
            admission = await self._write(guardrails.admit, tenant_id=tenant_id, message_id=message.id, chat_jid=message.chat_jid)
            if not admission.allowed:
                log.warning("message %s of tenant %s refused: the daily cap on first contacts is reached", message.id, tenant_id)
                return "failed"
            first_contact = admission.first_contact
            if not first_contact:
                rt.known_chats.add(message.chat_jid)
        wait = rt.next_send_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if not rt.connected or rt.stop_sending:
            return "skipped"
        await self._act_human(tenant_id, message, first_contact)
        wa_id = message.wa_message_id
        if wa_id is None and self.gateway.client_message_ids:
            wa_id = self.gateway.new_message_id()
        attempt = self._new_attempt()
        self._live_attempts.add(attempt)
        try:
            attempts = await self._write(
                delivery.begin_send,
                tenant_id=tenant_id,
                message_id=message.id,
                attempt_id=attempt,
                wa_message_id=wa_id,
                replaces_attempt=replaces,
            )
            if attempts is None:
                return "skipped"
            try:
                if message.media_key:
                    data = await asyncio.to_thread(_read_file, message.media_key, message.media_purpose)
                    sent_id = await self.gateway.send_media(
                        tenant_id,
                        message.chat_jid,
                        data,
                        mime=message.media_mime or "application/octet-stream",
                        name=message.media_name or "file",
                        caption=message.body,
                        message_id=wa_id,
                    )
                else:
                    sent_id = await self.gateway.send_text(tenant_id, message.chat_jid, message.body, message_id=wa_id)
            except Exception as exc:
                return await self._send_failed(tenant_id, rt, message, exc, attempts, idempotent=wa_id is not None)
            rt.retry_after.pop(message.id, None)
            rt.next_send_at = time.monotonic() + self._gap(first_contact)
            rt.known_chats.add(message.chat_jid)  # written to now: later messages are no first contact
            await self._write(delivery.mark_sent, tenant_id=tenant_id, message_id=message.id, wa_message_id=sent_id)
            return "sent"
        finally:
            self._live_attempts.discard(attempt)

    def _gap(self, first_contact: bool) -> float:
        """Seconds until the firm's next send: a random human gap, longer after a first contact,
        never shorter than the configured rate allows."""
        s = self.settings
        if first_contact:
            gap = guardrails.gap_seconds(s.first_contact_gap_seconds, 2 * s.first_contact_gap_seconds)
        else:
            gap = guardrails.gap_seconds(s.gap_min_seconds, s.gap_max_seconds)
        return max(gap, 1.0 / s.send_rate if s.send_rate > 0 else 0.0)

    async def _act_human(self, tenant_id: int, message: WhatsappOutbound, first_contact: bool) -> None:
        """Before a send: read receipts for what the client wrote since the last answer, then
        "typing…" for as long as a person would type the text. A gateway error here is logged
        and the send goes on (these are signals, not the message)."""
        s = self.settings
        try:
            if s.mark_read and not first_contact:
                unread = await self._write(guardrails.unread_inbound, tenant_id=tenant_id, chat_jid=message.chat_jid)
                if unread:
                    await self.gateway.mark_read(tenant_id, message.chat_jid, unread)
            typing = guardrails.typing_seconds(message.body, chars_per_second=s.typing_chars_per_second, max_seconds=s.typing_max_seconds)
            if typing > 0:
                await self.gateway.send_typing(tenant_id, message.chat_jid, True)
                await asyncio.sleep(typing)
        except GatewayError as exc:
            log.info("tenant %s: read/typing signal not sent: %s", tenant_id, exc)

    async def _send_failed(
        self, tenant_id: int, rt: HeldTenant, message: WhatsappOutbound, exc: Exception, attempts: int, *, idempotent: bool
    ) -> str:
        reason = str(exc) if isinstance(exc, GatewayError) else f"send failed: {type(exc).__name__}"
        if isinstance(exc, GatewayError) and exc.maybe_sent and not idempotent:
            # WhatsApp may have it: trying again could deliver it twice.
            await self._write(delivery.mark_uncertain, tenant_id=tenant_id, message_id=message.id, detail=reason)
            rt.retry_after.pop(message.id, None)
            return "uncertain"
        final = attempts >= self.settings.send_attempts
        await self._write(delivery.mark_failed, tenant_id=tenant_id, message_id=message.id, error=reason, final=final)
        if final:
            rt.retry_after.pop(message.id, None)
            return "failed"
        rt.retry_after[message.id] = time.monotonic() + backoff_delay(attempts, 1.0, 60.0)
        return "retry"

