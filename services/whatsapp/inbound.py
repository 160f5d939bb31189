"""The sidecar's writer of inbound messages: group commit, retries, and dead letters.

A burst costs one transaction (group commit keeps ingestion fast on SQLite). When a batch fails,
each firm's part is retried on its own, then each message on its own, a few times with a short
backoff; a message that still cannot be stored is kept raw as a dead letter (``ingest``), and
if even that cannot be written (the database is down) it is appended to a spool file in the
data folder that the next start moves into the database. Nothing handed over is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services import db
from services.models import WhatsappInbound
from services.whatsapp import ingest

log = logging.getLogger("watheeq.whatsapp.sidecar")

SPOOL_NAME = "dead-letter-spool.jsonl"


class InboundWriter:
    """Stores inbound messages with group commit: each handler awaits its own message's outcome.

    Handlers call :meth:`store` first thing (whatsmeow has already acked the message), and
    concurrent calls share one transaction.
    """

    def __init__(
        self,
        run_db: Callable[..., Any],
        max_batch: int = 1000,
        *,
        attempts: int = 3,
        retry_delay: float = 0.2,
        spool: Path | None = None,
    ) -> None:
        self._run_db = run_db
        self._queue: asyncio.Queue[tuple[int, list[WhatsappInbound], asyncio.Future[None]]] = asyncio.Queue()
        self._max_batch = max_batch
        self._task: asyncio.Task[None] | None = None
        self.attempts = max(1, attempts)
        self.retry_delay = retry_delay
        self._spool = spool

    def _spool_path(self) -> Path:
        if self._spool is None:
            from services.whatsapp.gateway import whatsapp_dir

            self._spool = whatsapp_dir() / SPOOL_NAME
        return self._spool

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def store(self, tenant_id: int, messages: list[WhatsappInbound]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((tenant_id, messages, future))
        await future

    async def _run(self) -> None:
        await self._drain_spool()
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
                # One bad message must not lose the others of its batch.
                for tenant_id, messages, fut in batch:
                    try:
                        await self._store_carefully(tenant_id, messages)
                    except Exception as exc:  # only if even the spool could not be written
                        if not fut.done():
                            fut.set_exception(exc)
                        continue
                    if not fut.done():
                        fut.set_result(None)
                continue
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def _store_carefully(self, tenant_id: int, messages: list[WhatsappInbound]) -> None:
        """One firm's messages after their batch failed: the whole part, then each message,
        each retried with backoff; what still fails becomes a dead letter."""
        try:
            await self._run_db(_store_batch, [(tenant_id, messages)])
            return
        except Exception:
            pass
        for message in messages:
            error = ""
            for attempt in range(1, self.attempts + 1):
                try:
                    await self._run_db(_store_batch, [(tenant_id, [message])])
                    break
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    if attempt < self.attempts:
                        await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
            else:
                log.error("inbound message %s of tenant %s could not be stored; kept as a dead letter", message.wa_message_id, tenant_id)
                await self._dead_letter(tenant_id, message, error)

    async def _dead_letter(self, tenant_id: int, message: WhatsappInbound, error: str) -> None:
        try:
            await self._run_db(_write_dead_letter, tenant_id, message, error, self.attempts)
        except Exception:
            log.exception("writing a dead letter failed; spooling it to %s", self._spool_path())
            line = json.dumps({"tenant_id": tenant_id, "message": message.model_dump(mode="json"), "error": error, "attempts": self.attempts})
            path = self._spool_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as spool:
                spool.write(line + "\n")
                spool.flush()

    async def _drain_spool(self) -> None:
        """Move dead letters spooled while the database was down into the database."""
        path = self._spool_path()
        if not path.exists():
            return
        try:
            lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            for item in lines:
                message = WhatsappInbound.model_validate(item["message"])
                await self._run_db(_write_dead_letter, int(item["tenant_id"]), message, str(item["error"]), int(item["attempts"]))
            path.unlink()
        except Exception:
            log.exception("moving spooled dead letters into the database failed; kept in %s", path)

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
            ingest.store_counted(session=session, tenant_id=tenant_id, messages=messages)


def _write_dead_letter(tenant_id: int, message: WhatsappInbound, error: str, attempts: int) -> None:
    with db.session_scope() as session:
        ingest.dead_letter(session=session, tenant_id=tenant_id, message=message, error=error, attempts=attempts)
