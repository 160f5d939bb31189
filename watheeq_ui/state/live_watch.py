"""A page's wait for its firm's live changes (services.live), without polling.

One :class:`LiveWaiter` per open page's background task: the process's live listener sets
an asyncio event of that task when a change of the firm on one of the page's topics arrives;
the task then re-reads what it shows through the services, with the user's own session.
Pages keep the WhatsApp page's liveness rule: the browser beats every few seconds and a task
whose page stopped beating (tab closed, page left) ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from services import live

BEAT_MS = 4000
BEAT_GRACE_SECONDS = 15.0


class LiveWaiter:
    """Subscribed from creation until :meth:`close`; :meth:`wait` says whether a change came."""

    def __init__(self, tenant_id: int, topics: Iterable[str]) -> None:
        self._tenant_id = tenant_id
        self._topics = frozenset(topics)
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._stop = live.subscribe(self._on_change)

    def _on_change(self, change: live.Change) -> None:
        # Called on whatever thread published: hand over to this task's loop.
        if change.tenant_id == self._tenant_id and change.topic in self._topics:
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> bool:
        """True when a change arrived (now or since the last wait), False after ``timeout``."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        self._event.clear()
        return True

    def close(self) -> None:
        self._stop()
