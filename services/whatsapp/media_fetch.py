"""The sidecar's downloader of received files: one run at a time per firm, after messages with
files arrive and on each health round (for retries that came due)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from services import storage
from services.whatsapp import media
from services.whatsapp.gateway import Gateway

log = logging.getLogger("watheeq.whatsapp.sidecar")


class _OverLimit(Exception):
    def __init__(self, state: str, read: int) -> None:
        super().__init__(state)
        self.state, self.read = state, read


def _guarded(chunks: Iterable[bytes], *, file_limit: int, room: int) -> Iterator[bytes]:
    """``chunks`` passed on as they come, stopped as soon as the file is over the per-file limit
    or over the room left in the firm's quota (the store then keeps nothing of it)."""
    read = 0
    for chunk in chunks:
        read += len(chunk)
        if read > file_limit:
            raise _OverLimit(media.TOO_LARGE, read)
        if read > room:
            raise _OverLimit(media.OVER_QUOTA, read)
        yield chunk


class MediaFetcher:
    def __init__(self, *, gateway: Gateway, write: Callable[..., Any], run_blocking: Callable[..., Any], store: storage.Store | None = None) -> None:
        self.gateway = gateway
        self._write = write
        self._blocking = run_blocking
        self._store = store
        self._running: dict[int, asyncio.Task[None]] = {}

    @property
    def store(self) -> storage.Store:
        if self._store is None:
            self._store = storage.default_store()
        return self._store

    def kick(self, tenant_id: int) -> None:
        """Start the firm's download run unless one is under way."""
        task = self._running.get(tenant_id)
        if task is not None and not task.done():
            return
        task = asyncio.get_running_loop().create_task(self._run(tenant_id))
        self._running[tenant_id] = task

    async def close(self) -> None:
        for task in self._running.values():
            task.cancel()
        for task in self._running.values():
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self, tenant_id: int) -> None:
        try:
            while True:
                batch = await self._write(media.due, tenant_id=tenant_id)
                if not batch:
                    return
                for item in batch:
                    await self._one(tenant_id, item)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("downloading files of tenant %s failed", tenant_id)

    async def _one(self, tenant_id: int, item: media.DueMedia) -> None:
        used = await self._write(media.firm_usage, tenant_id=tenant_id)
        room = media.firm_quota_bytes() - used
        key = media.new_key(tenant_id, item.message_id)
        try:
            chunks = await self.gateway.download_media(tenant_id, item.ref)
            # Read, encrypted and written a chunk at a time in a worker thread: no whole file here.
            stored = await self._blocking(
                lambda: self.store.put(key, _guarded(chunks, file_limit=media.max_file_bytes(), room=room), purpose=media.PURPOSE)
            )
        except _OverLimit as refused:
            await self._write(media.record_refused, tenant_id=tenant_id, message_id=item.message_id, state=refused.state, size=max(item.size or 0, refused.read))
            return
        except Exception as exc:
            state = await self._write(media.record_failure, tenant_id=tenant_id, message_id=item.message_id)
            log.warning("tenant %s: downloading the file of message %s failed (%s): %s", tenant_id, item.message_id, state, str(exc)[:200])
            return
        await self._write(media.record_stored, tenant_id=tenant_id, message_id=item.message_id, stored=stored, mime=item.mime)
