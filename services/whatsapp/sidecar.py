"""The WhatsApp sidecar: keeps every firm's line in the state the firm asked for.

``python -m services.whatsapp.sidecar`` runs a supervisor that starts the worker as a child
process and restarts it (with backoff) when it dies: a Go fatal error inside neonize kills
the whole process and cannot be caught in Python. The worker keeps the same worker id across
restarts, so it takes its own leases back at once; other sidecars take them when they lapse.

The worker is one asyncio loop that, every tick, renews its leases, claims free sessions,
and reconciles each: start a client (restoring a paired device), log out and delete the
device store, expire an unscanned QR, restart a zombie, retry failures with capped
exponential backoff and jitter, and send PENDING messages in order per chat, rate-limited
per firm. Gateway events are written to the database at once. Nothing a gateway does can
crash the loop; SIGTERM stops every client without logging it out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from services import config, db
from services.models import (
    MessageStatus,
    WhatsappDesiredState,
    WhatsappInbound,
    WhatsappLease,
    WhatsappOutbound,
    WhatsappStatus,
    utcnow,
)
from services.whatsapp import store
from services.whatsapp.failures import Failure
from services.whatsapp.gateway import Gateway, GatewayError, create_gateway

log = logging.getLogger("watheeq.whatsapp.sidecar")
T = TypeVar("T")


def _env_float(name: str, default: float) -> float:
    try:
        return float(config.get(name, str(default)) or default)
    except ValueError:
        return default


@dataclass
class Settings:
    """Tunables, each from a ``WATHEEQ_WHATSAPP_*`` variable."""

    tick_seconds: float = 1.0
    lease_seconds: float = 30.0
    max_sessions: int = 500
    claim_batch: int = 50
    send_rate: float = 1.0  # messages per second per firm; 0 = unlimited
    send_attempts: int = 5
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    qr_timeout: float = 160.0
    max_qr_codes: int = 6
    health_interval: float = 30.0
    zombie_seconds: float = 90.0
    stop_timeout: float = 10.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            tick_seconds=_env_float("WATHEEQ_WHATSAPP_TICK_SECONDS", 1.0),
            lease_seconds=_env_float("WATHEEQ_WHATSAPP_LEASE_SECONDS", 30.0),
            max_sessions=int(_env_float("WATHEEQ_WHATSAPP_MAX_SESSIONS", 500)),
            claim_batch=int(_env_float("WATHEEQ_WHATSAPP_CLAIM_BATCH", 50)),
            send_rate=_env_float("WATHEEQ_WHATSAPP_SEND_RATE", 1.0),
            send_attempts=int(_env_float("WATHEEQ_WHATSAPP_SEND_ATTEMPTS", 5)),
            backoff_base=_env_float("WATHEEQ_WHATSAPP_BACKOFF_BASE_SECONDS", 2.0),
            backoff_cap=_env_float("WATHEEQ_WHATSAPP_BACKOFF_CAP_SECONDS", 300.0),
            qr_timeout=_env_float("WATHEEQ_WHATSAPP_QR_TIMEOUT_SECONDS", 160.0),
            max_qr_codes=int(_env_float("WATHEEQ_WHATSAPP_MAX_QR_CODES", 6)),
            health_interval=_env_float("WATHEEQ_WHATSAPP_HEALTH_SECONDS", 30.0),
            zombie_seconds=_env_float("WATHEEQ_WHATSAPP_ZOMBIE_SECONDS", 90.0),
        )


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential, capped, half of it jittered."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class _Tenant:
    """What the worker knows of one held session beyond its row."""

    lease: WhatsappLease
    busy: bool = False  # a start/stop/teardown is in flight
    started_at: float | None = None
    pairing_since: float | None = None
    qr_count: int = 0
    connected: bool = False
    last_health: float = 0.0
    keepalive_failing_since: float | None = None
    sender: asyncio.Task[None] | None = None
    stop_sending: bool = False  # the sender finishes the message in hand, then stops
    next_send_at: float = 0.0
    retry_after: dict[int, float] = field(default_factory=dict)


class InboundWriter:
    """Stores inbound messages with group commit: each handler awaits its own message's commit.

    Handlers call :meth:`store` first thing (whatsmeow has already acked the message), and
    concurrent calls share one transaction, which is what keeps ingestion fast on SQLite.
    """

    def __init__(self, run_db: Callable[..., Any], max_batch: int = 1000) -> None:
        self._run_db = run_db
        self._queue: asyncio.Queue[tuple[int, list[WhatsappInbound], asyncio.Future[None]]] = asyncio.Queue()
        self._max_batch = max_batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def store(self, tenant_id: int, messages: list[WhatsappInbound]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((tenant_id, messages, future))
        await future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            size = len(first[1])
            while size < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item[1])
            try:
                await self._run_db(_store_batch, [(t, m) for t, m, _ in batch])
            except Exception:
                # One bad message must not lose the others of its batch: store them one call each.
                for tenant_id, messages, fut in batch:
                    try:
                        await self._run_db(_store_batch, [(tenant_id, messages)])
                    except Exception as exc:
                        fut.set_exception(exc)
                    else:
                        fut.set_result(None)
                continue
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def close(self) -> None:
        while not self._queue.empty():
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()


def _store_batch(items: list[tuple[int, list[WhatsappInbound]]]) -> None:
    by_tenant: dict[int, list[WhatsappInbound]] = {}
    for tenant_id, messages in items:
        by_tenant.setdefault(tenant_id, []).extend(messages)
    with db.session_scope() as session:
        for tenant_id, messages in by_tenant.items():
            store.store_inbound(session=session, tenant_id=tenant_id, messages=messages)


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
        self.tenants: dict[int, _Tenant] = {}
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
        # Send attempts are this process's: a SENDING row of any other attempt has no sender.
        self._attempt_prefix = uuid.uuid4().hex[:16]
        self._attempt_seq = 0
        self._live_attempts: set[str] = set()

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
            store.sync_worker,
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
                self.tenants[lease.tenant_id] = _Tenant(lease=lease)
                log.info("claimed tenant %s", lease.tenant_id)
        now = time.monotonic()
        wall = utcnow()
        for tenant_id, rt in list(self.tenants.items()):
            self._reconcile(tenant_id, rt, now, wall)
        for tenant_id in sync.pending:
            rt = self.tenants.get(tenant_id)
            if rt is not None and rt.connected and not rt.stop_sending and (rt.sender is None or rt.sender.done()):
                rt.sender = self._spawn(self._guard(f"sender of tenant {tenant_id}", self._send_pending(tenant_id)))
        self.last_tick_seconds = time.perf_counter() - started

    def _reconcile(self, tenant_id: int, rt: _Tenant, now: float, wall: datetime) -> None:
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

    async def _start(self, tenant_id: int, rt: _Tenant) -> None:
        try:
            if not await self._write(store.record_connecting, tenant_id=tenant_id, worker_id=self.worker_id):
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

    async def _teardown(self, tenant_id: int, rt: _Tenant) -> None:
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
            await self._write(store.record_disconnected, tenant_id=tenant_id, worker_id=self.worker_id)
            await self._write(store.release_leases, worker_id=self.worker_id, tenant_ids=[tenant_id])
            self.tenants.pop(tenant_id, None)
        finally:
            rt.busy = False

    async def _expire_qr(self, tenant_id: int, rt: _Tenant) -> None:
        try:
            await self.gateway.stop(tenant_id)
            self.gateway.delete_device_store(tenant_id)
            await self._write(
                store.record_disconnected,
                tenant_id=tenant_id,
                worker_id=self.worker_id,
                reason=store.QR_EXPIRED,
                give_up=True,
                code=Failure.QR_TIMEOUT,
            )
            await self._write(store.release_leases, worker_id=self.worker_id, tenant_ids=[tenant_id])
            self.tenants.pop(tenant_id, None)
        finally:
            rt.busy = False

    async def _health(self, tenant_id: int, rt: _Tenant) -> None:
        """Restart a session that says CONNECTED but whose client is dead or silent too long."""
        alive = await self.gateway.is_alive(tenant_id)
        silent = rt.keepalive_failing_since is not None and time.monotonic() - rt.keepalive_failing_since > self.settings.zombie_seconds
        if alive and not silent:
            # Written with the next lease renewal: one statement for every live session.
            self._seen.add(tenant_id)
            return
        log.warning("tenant %s looks dead while CONNECTED; restarting its client", tenant_id)
        await self.gateway.stop(tenant_id)
        await self._failed(tenant_id, rt, "the connection went silent; reconnecting", immediate=True, code=Failure.CONNECTION_LOST)

    async def _failed(
        self, tenant_id: int, rt: _Tenant, reason: str, *, immediate: bool = False, code: Failure | None = None
    ) -> None:
        rt.connected = False
        attempt = rt.lease.retry_count + 1
        delay = 0.0 if immediate else backoff_delay(attempt, self.settings.backoff_base, self.settings.backoff_cap)
        next_retry = utcnow() + timedelta(seconds=delay)
        rt.lease = rt.lease.model_copy(update={"retry_count": attempt, "next_retry_at": next_retry, "status": WhatsappStatus.ERROR})
        log.warning("tenant %s: %s (retry %s in %.1fs)", tenant_id, reason, attempt, delay)
        await self._write(
            store.record_error,
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

    async def _stop_sender(self, rt: _Tenant) -> None:
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
        try:
            await asyncio.wait_for(self._writer.close(), timeout=self.settings.stop_timeout)
        except Exception:
            log.exception("flushing inbound messages failed")
        for task in list(self._background):
            task.cancel()
        try:
            await self._write(store.release_leases, worker_id=self.worker_id)
        except Exception:
            log.exception("releasing the leases failed; they lapse on their own")
        self.tenants.clear()
        self._db_pool.shutdown(wait=False)
        self._control_pool.shutdown(wait=False)
        log.info("WhatsApp sidecar %s stopped", self.worker_id)

    # ------------------------------------------------------------------ sending

    def _new_attempt(self) -> str:
        self._attempt_seq += 1
        return f"{self._attempt_prefix}-{self._attempt_seq}"

    async def _send_pending(self, tenant_id: int) -> None:
        """Settle sends orphaned by a dead sender, then send the firm's PENDING messages oldest
        first; a failing message holds back its chat."""
        while True:
            rt = self.tenants.get(tenant_id)
            if rt is None or not rt.connected or rt.stop_sending or self.stopping.is_set():
                return
            orphans = await self._write(store.orphaned_sends, tenant_id=tenant_id, live_attempts=set(self._live_attempts))
            for message in orphans:
                if not rt.connected or rt.stop_sending:
                    return
                await self._recover(tenant_id, rt, message)
            batch = await self._write(store.next_outbound, tenant_id=tenant_id, limit=200)
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
                if outcome == "retry":
                    held_chats.add(message.chat_jid)
                sent_any = sent_any or outcome == "sent"
            if not sent_any:
                # Everything left waits for a retry time; the next tick starts a sender again.
                return

    async def _recover(self, tenant_id: int, rt: _Tenant, message: WhatsappOutbound) -> None:
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
                await self._write(store.mark_sent, tenant_id=tenant_id, message_id=message.id, wa_message_id=message.wa_message_id)
                return
            await self._send_one(tenant_id, rt, message, replaces=message.send_attempt_id)
            return
        log.warning("message %s of tenant %s was being sent when its sender died; marked uncertain", message.id, tenant_id)
        await self._write(
            store.mark_uncertain,
            tenant_id=tenant_id,
            message_id=message.id,
            detail=f"sender attempt {message.send_attempt_id} stopped while handing the message to WhatsApp; {self.gateway.name} cannot tell whether it arrived",
        )

    async def _send_one(self, tenant_id: int, rt: _Tenant, message: WhatsappOutbound, *, replaces: str | None = None) -> str:
        """One send, recorded SENDING (committed) before the gateway has it: sent, retry, failed,
        uncertain or skipped (the message moved meanwhile)."""
        s = self.settings
        if s.send_rate > 0:
            wait = rt.next_send_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            rt.next_send_at = max(time.monotonic(), rt.next_send_at) + 1.0 / s.send_rate
        wa_id = message.wa_message_id
        if wa_id is None and self.gateway.client_message_ids:
            wa_id = self.gateway.new_message_id()
        attempt = self._new_attempt()
        self._live_attempts.add(attempt)
        try:
            attempts = await self._write(
                store.begin_send,
                tenant_id=tenant_id,
                message_id=message.id,
                attempt_id=attempt,
                wa_message_id=wa_id,
                replaces_attempt=replaces,
            )
            if attempts is None:
                return "skipped"
            try:
                sent_id = await self.gateway.send_text(tenant_id, message.chat_jid, message.body, message_id=wa_id)
            except Exception as exc:
                return await self._send_failed(tenant_id, rt, message, exc, attempts, idempotent=wa_id is not None)
            rt.retry_after.pop(message.id, None)
            await self._write(store.mark_sent, tenant_id=tenant_id, message_id=message.id, wa_message_id=sent_id)
            return "sent"
        finally:
            self._live_attempts.discard(attempt)

    async def _send_failed(
        self, tenant_id: int, rt: _Tenant, message: WhatsappOutbound, exc: Exception, attempts: int, *, idempotent: bool
    ) -> str:
        reason = str(exc) if isinstance(exc, GatewayError) else f"send failed: {type(exc).__name__}"
        if isinstance(exc, GatewayError) and exc.maybe_sent and not idempotent:
            # WhatsApp may have it: trying again could deliver it twice.
            await self._write(store.mark_uncertain, tenant_id=tenant_id, message_id=message.id, detail=reason)
            rt.retry_after.pop(message.id, None)
            return "uncertain"
        final = attempts >= self.settings.send_attempts
        await self._write(store.mark_failed, tenant_id=tenant_id, message_id=message.id, error=reason, final=final)
        if final:
            rt.retry_after.pop(message.id, None)
            return "failed"
        rt.retry_after[message.id] = time.monotonic() + backoff_delay(attempts, 1.0, 60.0)
        return "retry"

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
        await self._write(store.record_qr, tenant_id=tenant_id, worker_id=self.worker_id, payload=payload)

    async def on_paired(self, tenant_id: int, device_jid: str, phone_number: str | None, push_name: str | None) -> None:
        async def go() -> None:
            rt = self.tenants.get(tenant_id)
            if rt is not None:
                rt.pairing_since = None
                rt.lease = rt.lease.model_copy(update={"device_jid": device_jid, "status": WhatsappStatus.CONNECTING})
            await self._write(
                store.record_pairing,
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
            await self._write(store.record_connected, tenant_id=tenant_id, worker_id=self.worker_id, push_name=push_name)

        await self._guard(f"connection of tenant {tenant_id}", go())

    async def on_logged_out(self, tenant_id: int, reason: str) -> None:
        async def go() -> None:
            rt = self.tenants.get(tenant_id)
            if rt is not None:
                rt.connected = False
                await self._stop_sender(rt)
            await self.gateway.stop(tenant_id)
            self.gateway.delete_device_store(tenant_id)
            await self._write(
                store.record_disconnected,
                tenant_id=tenant_id,
                worker_id=self.worker_id,
                reason=f"WhatsApp was unlinked: {reason}",
                give_up=True,
                code=Failure.LOGGED_OUT,
            )
            await self._write(store.release_leases, worker_id=self.worker_id, tenant_ids=[tenant_id])
            self.tenants.pop(tenant_id, None)

        await self._guard(f"logout of tenant {tenant_id}", go())

    async def on_connection_failed(self, tenant_id: int, reason: str, code: Failure | None = None) -> None:
        async def go() -> None:
            rt = self.tenants.get(tenant_id)
            await self.gateway.stop(tenant_id)
            if rt is not None:
                await self._failed(tenant_id, rt, reason, code=code)

        await self._guard(f"failure of tenant {tenant_id}", go())

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

    async def on_receipt(self, tenant_id: int, wa_message_ids: list[str], status: MessageStatus, at: datetime | None) -> None:
        await self._guard(
            f"receipt of tenant {tenant_id}",
            self._write(store.apply_receipt, tenant_id=tenant_id, wa_message_ids=wa_message_ids, status=status, at=at),
        )


# --------------------------------------------------------------------------- processes


async def run_worker(worker_id: str | None = None) -> None:
    """The worker process: one sidecar until SIGTERM/SIGINT."""
    settings = Settings.from_env()
    loop = asyncio.get_running_loop()
    # Every started neonize client blocks one default-executor thread for its whole life.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=settings.max_sessions + 16, thread_name_prefix="wa-client"))
    sidecar = Sidecar(worker_id=worker_id, settings=settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sidecar.stopping.set)
    await sidecar.run()


def supervise(worker_id: str) -> int:
    """Run the worker as a child and restart it when it dies; SIGTERM is passed on and awaited."""
    stop = False
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failures = 0
    while not stop:
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", "services.whatsapp.sidecar", "--worker", "--worker-id", worker_id])
        code = child.wait()
        if stop:
            return 0
        # A worker that ran for a while before dying starts the backoff over.
        failures = 1 if time.monotonic() - started > 60 else failures + 1
        delay = backoff_delay(failures, 1.0, 60.0)
        log.error("WhatsApp worker exited with %s; restarting in %.1fs", code, delay)
        deadline = time.monotonic() + delay
        while not stop and time.monotonic() < deadline:
            time.sleep(0.1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.whatsapp.sidecar", description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help="run the worker itself (the supervisor starts it)")
    parser.add_argument("--worker-id", default=None, help="stable id of this sidecar's leases")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(config.get("WATHEEQ_LOG_LEVEL", "INFO") or "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    worker_id = args.worker_id or f"{socket.gethostname()}:{os.getpid()}"
    if args.worker:
        asyncio.run(run_worker(worker_id))
        return 0
    return supervise(worker_id)


if __name__ == "__main__":
    sys.exit(main())
