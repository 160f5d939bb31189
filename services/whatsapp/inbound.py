"""The sidecar's writer of inbound messages: group commit, so a burst costs one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from services import db
from services.models import WhatsappInbound
from services.whatsapp import delivery


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
            delivery.store_inbound(session=session, tenant_id=tenant_id, messages=messages)
