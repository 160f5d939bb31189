# Over 400 lines: one class whose reconcile loop and gateway event handlers share each held firm's state.
"""A sidecar worker: one asyncio loop that keeps the firms it holds in the state they asked for.

Every tick it renews its leases, claims free sessions, and reconciles each: start a client
(restoring a paired device), log out and delete the device store, expire an unscanned QR,
restart a zombie, retry failures with capped exponential backoff and jitter, and start the
firm's sender (``sender``) when messages wait. Gateway events are written to the database at
once. Nothing a gateway does can crash the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from services import db
from services.models import (
    MessageStatus,
    WhatsappDesiredState,
    WhatsappInbound,
    WhatsappStatus,
    utcnow,
)
from services.whatsapp import calls, delivery, guardrails, ingest, leases, lids
from services.whatsapp.failures import Failure
from services.whatsapp.gateway import Gateway, GatewayError
from services.whatsapp.gateways import create_gateway
from services.whatsapp.inbound import InboundWriter
from services.whatsapp.media_fetch import MediaFetcher
from services.whatsapp.runtime import HeldTenant, Settings, backoff_delay
from services.whatsapp.sender import Sender

log = logging.getLogger("watheeq.whatsapp.sidecar")
T = TypeVar("T")


class Sidecar:
    """One worker: holds leases on some tenants' sessions and reconciles them."""

    def __init__(
        self,
        *,
        worker_id: str | None = None,
        settings: Settings | None = None,
        gateway_factory: Callable[[Sidecar], Gateway] | None = None,
    ) -> None:
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.settings = settings or Settings.from_env()
        self.gateway: Gateway = (gateway_factory or (lambda sink: create_gateway(sink)))(self)
        self.tenants: dict[int, HeldTenant] = {}
        self.stopping = asyncio.Event()
        self.last_tick_seconds = 0.0
        # The database gets its own threads: neonize keeps one default-executor thread per client.
        self._db_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="wa-db")
        # The tick's own thread: its one call never waits behind a burst of event writes.
        self._control_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wa-tick")
        self._renewed_at: float | None = None
        self._seen: set[int] = set()
        self._writer = InboundWriter(self._db)
        self._background: set[asyncio.Task[Any]] = set()
        self.media = MediaFetcher(gateway=self.gateway, write=self._write, run_blocking=lambda fn: self._db(fn))
        self.sender = Sender(gateway=self.gateway, settings=self.settings, write=self._write, tenants=self.tenants, stopping=self.stopping)

    # ------------------------------------------------------------------ plumbing

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db_pool, fn, *args)

    async def _control(self, fn: Callable[..., T], **kwargs: Any) -> T:
        def call() -> T:
            with db.session_scope() as session:
                return fn(session=session, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._control_pool, call)

    async def _write(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        def call() -> Any:
            with db.session_scope() as session:
                return fn(session=session, **kwargs)

        return await self._db(call)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _guard(self, what: str, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", what)

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        """Reconcile until :attr:`stopping` is set, then stop every client cleanly."""
        self._writer.start()
        log.info("WhatsApp sidecar %s started (gateway %s)", self.worker_id, self.gateway.name)
        try:
            while not self.stopping.is_set():
                await self._guard("reconcile tick", self.tick())
                try:
                    await asyncio.wait_for(self.stopping.wait(), timeout=self.settings.tick_seconds)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self.shutdown()

    async def tick(self) -> None:
        """One reconcile round: a single batched database call, then in-memory decisions.

        The call runs on its own thread so it never queues behind event writes, and it only
        writes when the leases are due for renewal (a few times per lease) or claims happen.
        """
        started = time.perf_counter()
        s = self.settings
        mono = time.monotonic()
        renew = self._renewed_at is None or mono - self._renewed_at >= s.lease_seconds / 3
        seen = set(self._seen) if renew else set()
        before = set(self.tenants)
        idle_connected = [t for t, rt in self.tenants.items() if rt.connected and (rt.sender is None or rt.sender.done())]
        sync = await self._control(
            leases.sync_worker,
            worker_id=self.worker_id,
            held=before,
            lease_seconds=s.lease_seconds,
            renew=renew,
            claim_limit=min(s.claim_batch, s.max_sessions - len(before)),
            seen=seen,
            pending_for=idle_connected,
        )
        if renew:
            self._renewed_at = mono
            self._seen -= seen
        now_ids = {lease.tenant_id for lease in sync.leases}
        for tenant_id in before - now_ids:
            if tenant_id in self.tenants:
                log.warning("lease on tenant %s lost; stopping its client", tenant_id)
                await self._forget(tenant_id)
        for lease in sync.leases:
            rt = self.tenants.get(lease.tenant_id)
            if rt is not None:
                rt.lease = lease
            elif lease.tenant_id not in before:
                # Not in ``before`` and not torn down while the call ran: newly claimed or adopted.
                self.tenants[lease.tenant_id] = HeldTenant(lease=lease)
                log.info("claimed tenant %s", lease.tenant_id)
        now = time.monotonic()
        wall = utcnow()
        for tenant_id, rt in list(self.tenants.items()):
            self._reconcile(tenant_id, rt, now, wall)
        for tenant_id in sync.pending:
            rt = self.tenants.get(tenant_id)
            if rt is not None and rt.connected and not rt.stop_sending and (rt.sender is None or rt.sender.done()):
                rt.sender = self._spawn(self._guard(f"sender of tenant {tenant_id}", self.sender.send_pending(tenant_id)))
        self.last_tick_seconds = time.perf_counter() - started

    def _reconcile(self, tenant_id: int, rt: HeldTenant, now: float, wall: datetime) -> None:
        if rt.busy:
            return
        lease, s = rt.lease, self.settings
        running = self.gateway.is_running(tenant_id)
        if lease.desired_state == WhatsappDesiredState.DISCONNECTED:
            rt.busy = True
            self._spawn(self._guard(f"teardown of tenant {tenant_id}", self._teardown(tenant_id, rt)))
            return
        if not running:
            rt.connected = False
            due = lease.next_retry_at is None or lease.next_retry_at <= wall
            if due:
                rt.busy = True
                self._spawn(self._guard(f"start of tenant {tenant_id}", self._start(tenant_id, rt)))
            return
        if lease.status == WhatsappStatus.QR_PENDING and rt.pairing_since is not None:
            if now - rt.pairing_since > s.qr_timeout:
                rt.busy = True
                self._spawn(self._guard(f"QR expiry of tenant {tenant_id}", self._expire_qr(tenant_id, rt)))
            return
        if rt.connected and now - rt.last_health >= s.health_interval:
            rt.last_health = now
            self._spawn(self._guard(f"health check of tenant {tenant_id}", self._health(tenant_id, rt)))

    async def _start(self, tenant_id: int, rt: HeldTenant) -> None:
        try:
            if not await self._write(leases.record_connecting, tenant_id=tenant_id, worker_id=self.worker_id):
                return
            rt.started_at = time.monotonic()
            rt.pairing_since = None
            rt.qr_count = 0
            rt.connected = False
            rt.keepalive_failing_since = None
            try:
                await self.gateway.start(tenant_id, rt.lease.device_jid)
            except Exception as exc:
                await self._failed(tenant_id, rt, f"could not start the client: {exc}")
        finally:
            rt.busy = False

    async def _teardown(self, tenant_id: int, rt: HeldTenant) -> None:
        """Desired DISCONNECTED: log the device out (unlinking it on the phone), forget its keys."""
        try:
            await self._stop_sender(rt)
            if self.gateway.is_running(tenant_id) or self.gateway.has_device_store(tenant_id):
                try:
                    await self.gateway.logout(tenant_id)
                except Exception:
                    log.exception("logout of tenant %s failed; deleting its keys anyway", tenant_id)
                    await self.gateway.stop(tenant_id)
                self.gateway.delete_device_store(tenant_id)
            await self._write(leases.record_disconnected, tenant_id=tenant_id, worker_id=self.worker_id)
            await self._write(leases.release_leases, worker_id=self.worker_id, tenant_ids=[tenant_id])
            self.tenants.pop(tenant_id, None)
        finally:
            rt.busy = False

    async def _expire_qr(self, tenant_id: int, rt: HeldTenant) -> None:
        try:
            await self.gateway.stop(tenant_id)
            self.gateway.delete_device_store(tenant_id)
            await self._write(
                leases.record_disconnected,
                tenant_id=tenant_id,
                worker_id=self.worker_id,
                reason=leases.QR_EXPIRED,
                give_up=True,
                code=Failure.QR_TIMEOUT,
            )
            await self._write(leases.release_leases, worker_id=self.worker_id, tenant_ids=[tenant_id])
            self.tenants.pop(tenant_id, None)
        finally:
            rt.busy = False

    async def _health(self, tenant_id: int, rt: HeldTenant) -> None:
        """Restart a session that says CONNECTED but whose client is dead or silent too long."""
        alive = await self.gateway.is_alive(tenant_id)
        silent = rt.keepalive_failing_since is not None and time.monotonic() - rt.keepalive_failing_since > self.settings.zombie_seconds
        if alive and not silent:
            # Written with the next lease renewal: one statement for every live session.
            self._seen.add(tenant_id)
            await self._resolve_lids(tenant_id)
            self.media.kick(tenant_id)
            return
        log.warning("tenant %s looks dead while CONNECTED; restarting its client", tenant_id)
        await self.gateway.stop(tenant_id)
        await self._failed(tenant_id, rt, "the connection went silent; reconnecting", immediate=True, code=Failure.CONNECTION_LOST)

    async def _resolve_lids(self, tenant_id: int) -> None:
        """Ask the client about LID senders still without a number (whatsmeow learns mappings as
        it goes); each one found merges that person's conversations (``lids.learn``)."""
        pending = await self._write(lids.unresolved, tenant_id=tenant_id)
        found = {}
        for lid in pending:
            e164 = await self.gateway.resolve_lid(tenant_id, lid)
            if e164:
                found[lid] = e164
        if found:
            moved = await self._write(lids.learn, tenant_id=tenant_id, mappings=found)
            log.info("tenant %s: %d LID sender(s) resolved, %d message(s) merged", tenant_id, len(found), moved)

    async def _failed(
        self, tenant_id: int, rt: HeldTenant, reason: str, *, immediate: bool = False, code: Failure | None = None
    ) -> None:
        rt.connected = False
        attempt = rt.lease.retry_count + 1
        delay = 0.0 if immediate else backoff_delay(attempt, self.settings.backoff_base, self.settings.backoff_cap)
        next_retry = utcnow() + timedelta(seconds=delay)
        if rt.banned_until is not None and rt.banned_until > next_retry:
            # WhatsApp refuses the number until its temporary ban ends: reconnect then.
            next_retry = rt.banned_until
        rt.lease = rt.lease.model_copy(update={"retry_count": attempt, "next_retry_at": next_retry, "status": WhatsappStatus.ERROR})
        log.warning("tenant %s: %s (retry %s in %.1fs)", tenant_id, reason, attempt, delay)
        await self._write(
            leases.record_error,
            tenant_id=tenant_id,
            worker_id=self.worker_id,
            reason=reason,
            retry_count=attempt,
            next_retry_at=next_retry,
            code=code,
        )

    async def _forget(self, tenant_id: int) -> None:
        rt = self.tenants.pop(tenant_id, None)
        if rt is not None:
            await self._stop_sender(rt)
        await self.gateway.stop(tenant_id)

    async def _stop_sender(self, rt: HeldTenant) -> None:
        """Stop the tenant's sender after the message in hand: cancelling a send midway would
        leave it SENDING with nobody to say how it ended. Cancelled only past the stop bound."""
        rt.stop_sending = True
        sender = rt.sender
        if sender is not None and not sender.done():
            try:
                await asyncio.wait_for(asyncio.shield(sender), timeout=self.settings.stop_timeout)
            except asyncio.TimeoutError:
                sender.cancel()
                try:
                    await sender
                except (asyncio.CancelledError, Exception):
                    pass
            except Exception:
                pass
        rt.sender = None

    async def shutdown(self) -> None:
        """Stop taking work, stop every client (no logout), flush inbound, release the leases."""
        self.stopping.set()
        for rt in self.tenants.values():
            rt.stop_sending = True
        for rt in list(self.tenants.values()):
            await self._stop_sender(rt)
        try:
            await asyncio.wait_for(self.gateway.close(), timeout=self.settings.stop_timeout)
        except Exception:
            log.exception("stopping the clients failed")
        await self.media.close()
        try:
            await asyncio.wait_for(self._writer.close(), timeout=self.settings.stop_timeout)
        except Exception:
            log.exception("flushing inbound messages failed")
        for task in list(self._background):
            task.cancel()
        try:
            await self._write(leases.release_leases, worker_id=self.worker_id)
        except Exception:
            log.exception("releasing the leases failed; they lapse on their own")
        self.tenants.clear()
        self._db_pool.shutdown(wait=False)
        self._control_pool.shutdown(wait=False)
        log.info("WhatsApp sidecar %s stopped", self.worker_id)

    # ------------------------------------------------------------------ gateway events

    async def on_qr(self, tenant_id: int, payload: str) -> None:
        await self._guard(f"QR of tenant {tenant_id}", self._on_qr(tenant_id, payload))

    async def _on_qr(self, tenant_id: int, payload: str) -> None:
        rt = self.tenants.get(tenant_id)
        if rt is None:
            return
        rt.qr_count += 1
        if rt.pairing_since is None:
            rt.pairing_since = time.monotonic()
        if rt.qr_count > self.settings.max_qr_codes:
            if not rt.busy:
                rt.busy = True
                await self._expire_qr(tenant_id, rt)
            return
        rt.lease = rt.lease.model_copy(update={"status": WhatsappStatus.QR_PENDING})
        await self._write(leases.record_qr, tenant_id=tenant_id, worker_id=self.worker_id, payload=payload)

    async def on_paired(self, tenant_id: int, device_jid: str, phone_number: str | None, push_name: str | None) -> None:
        async def go() -> None:
            rt = self.tenants.get(tenant_id)
            if rt is not None:
                rt.pairing_since = None
                rt.lease = rt.lease.model_copy(update={"device_jid": device_jid, "status": WhatsappStatus.CONNECTING})
            await self._write(
                leases.record_pairing,
                tenant_id=tenant_id,
                worker_id=self.worker_id,
                device_jid=device_jid,
                phone_number=phone_number,
                push_name=push_name,
            )

        await self._guard(f"pairing of tenant {tenant_id}", go())

    async def on_connected(self, tenant_id: int, push_name: str | None) -> None:
        async def go() -> None:
            rt = self.tenants.get(tenant_id)
            if rt is None:
                return
            rt.connected = True
            rt.pairing_since = None
            rt.keepalive_failing_since = None
            rt.last_health = time.monotonic()
            rt.lease = rt.lease.model_copy(update={"status": WhatsappStatus.CONNECTED, "retry_count": 0, "next_retry_at": None})
            await self._write(leases.record_connected, tenant_id=tenant_id, worker_id=self.worker_id, push_name=push_name)

        await self._guard(f"connection of tenant {tenant_id}", go())

    async def on_logged_out(self, tenant_id: int, reason: str) -> None:
        async def go() -> None:
            rt = self.tenants.get(tenant_id)
            if rt is not None:
                # No tick acts on the tenant from here: once the client below has stopped, one
                # would start it again (and write CONNECTING over the logout's record).
                rt.busy = True
                rt.connected = False
                await self._stop_sender(rt)
            await self.gateway.stop(tenant_id)
            self.gateway.delete_device_store(tenant_id)
            await self._write(
                leases.record_disconnected,
                tenant_id=tenant_id,
                worker_id=self.worker_id,
                reason=f"WhatsApp was unlinked: {reason}",
                give_up=True,
                code=Failure.LOGGED_OUT,
            )
            await self._write(leases.release_leases, worker_id=self.worker_id, tenant_ids=[tenant_id])
            self.tenants.pop(tenant_id, None)

        await self._guard(f"logout of tenant {tenant_id}", go())

    async def on_connection_failed(self, tenant_id: int, reason: str, code: Failure | None = None) -> None:
        async def go() -> None:
            rt = self.tenants.get(tenant_id)
            await self.gateway.stop(tenant_id)
            if rt is not None:
                await self._failed(tenant_id, rt, reason, code=code)

        await self._guard(f"failure of tenant {tenant_id}", go())

    async def on_call(self, tenant_id: int, call: WhatsappInbound, caller_jid: str) -> None:
        """An incoming WhatsApp call: kept in its chat (and the client's timeline), the hook
        ``calls.on_incoming_call`` told; declined with the automatic text when the firm chose."""
        try:
            incoming = await self._write(calls.record_call, tenant_id=tenant_id, call=call)
        except Exception:
            log.exception("recording a call of tenant %s failed", tenant_id)
            return
        if incoming is not None and incoming.rejected:
            try:
                await self.gateway.reject_call(tenant_id, caller_jid, incoming.call_id)
            except GatewayError as exc:
                log.warning("tenant %s: declining call %s failed: %s", tenant_id, incoming.call_id, exc)

    async def on_temporary_ban(self, tenant_id: int, code: str, expires: datetime | None) -> None:
        """whatsmeow's TemporaryBan: recorded with its reason and expiry (status and page show
        them); sending stops now and starts again only after it."""
        rt = self.tenants.get(tenant_id)
        if rt is not None:
            rt.banned_until = expires
        log.warning("tenant %s: temporarily banned by WhatsApp (%s) until %s", tenant_id, code, expires)
        await self._guard(
            f"temporary ban of tenant {tenant_id}",
            self._write(guardrails.record_temporary_ban, tenant_id=tenant_id, code=code, expires=expires),
        )

    async def on_keepalive_timeout(self, tenant_id: int) -> None:
        rt = self.tenants.get(tenant_id)
        if rt is not None and rt.keepalive_failing_since is None:
            rt.keepalive_failing_since = time.monotonic()

    async def on_activity(self, tenant_id: int) -> None:
        rt = self.tenants.get(tenant_id)
        if rt is not None:
            rt.keepalive_failing_since = None

    async def on_inbound(self, tenant_id: int, messages: list[WhatsappInbound]) -> None:
        try:
            await self._writer.store(tenant_id, messages)
        except Exception:
            log.exception("storing %d inbound message(s) of tenant %s failed", len(messages), tenant_id)
            return
        if any(m.media_ref for m in messages):
            self.media.kick(tenant_id)

    async def on_offline_sync(self, tenant_id: int, messages: int) -> None:
        log.info("tenant %s: the offline sync brought %d message(s)", tenant_id, messages)
        await self._guard(f"offline sync of tenant {tenant_id}", self._write(ingest.record_offline_sync, tenant_id=tenant_id, messages=messages))

    async def on_receipt(self, tenant_id: int, wa_message_ids: list[str], status: MessageStatus, at: datetime | None) -> None:
        await self._guard(
            f"receipt of tenant {tenant_id}",
            self._write(delivery.apply_receipt, tenant_id=tenant_id, wa_message_ids=wa_message_ids, status=status, at=at),
        )
