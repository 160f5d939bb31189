"""A page's wait for its firm's live changes (services.live), without polling.

One :class:`LiveWaiter` per open page's background task: the process's live listener sets
an asyncio event of that task when a change of the firm on one of the page's topics arrives;
the task then re-reads what it shows through the services, with the user's own session.
Pages keep the WhatsApp page's liveness rule: the browser beats every few seconds and a task
whose page stopped beating (tab closed, page left) ends.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from services import live

T = TypeVar("T")

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


class SharedRead(Generic[T]):
    """One read per firm per change in this process, shared by every open page showing it.

    Twenty wallboards of one firm woken by the same change make one database read, not
    twenty: the first one reads (under the firm's lock), the others get that result. A
    change arriving meanwhile bumps the firm's version, so the next ``get`` reads again; a
    result is also re-read after ``max_age`` seconds (clocks such as "over target" move).
    Only pages that already checked the viewer's access to the firm's data may call it.
    """

    def __init__(self, topics: Iterable[str], read: Callable[[object], T], *, max_age: float = 15.0) -> None:
        self._topics = frozenset(topics)
        self._read = read
        self._max_age = max_age
        self._versions: dict[int, int] = defaultdict(int)
        self._results: dict[int, tuple[int, float, T]] = {}
        self._locks: dict[int, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        live.subscribe(self._on_change)

    def _on_change(self, change: live.Change) -> None:
        if change.topic in self._topics:
            with self._guard:
                self._versions[change.tenant_id] += 1

    def version(self, tenant_id: int) -> int:
        with self._guard:
            return self._versions[tenant_id]

    def get(self, principal) -> tuple[int, T]:
        """(the firm's version it reflects, the result) for ``principal``'s firm; blocking."""
        tenant_id = principal.tenant_id
        with self._guard:
            lock = self._locks[tenant_id]
        with lock:
            version = self.version(tenant_id)
            cached = self._results.get(tenant_id)
            if cached is not None and cached[0] == version and time.monotonic() - cached[1] < self._max_age:
                return version, cached[2]
            result = self._read(principal)
            self._results[tenant_id] = (version, time.monotonic(), result)
            return version, result
