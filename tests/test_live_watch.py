"""watheeq_ui.state.live_watch: a page's wait for its firm's changes, and the shared read."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from services import live
from watheeq_ui.state.live_watch import LiveWaiter, SharedRead


def test_a_waiter_wakes_only_for_its_firm_and_topics() -> None:
    async def run() -> list[bool]:
        waiter = LiveWaiter(7, ("agents",))
        try:
            live.publish(8, "agents")
            live.publish(7, "whatsapp")
            first = await waiter.wait(0.2)
            live.publish(7, "agents", ref=3)
            second = await waiter.wait(0.2)
            third = await waiter.wait(0.05)  # consumed
            return [first, second, third]
        finally:
            waiter.close()

    assert asyncio.run(run()) == [False, True, False]


def test_the_shared_read_reads_once_per_change_per_firm() -> None:
    calls: list[int] = []
    shared = SharedRead(("callbacks",), lambda p: calls.append(p.tenant_id) or len(calls))
    viewer, other = SimpleNamespace(tenant_id=41), SimpleNamespace(tenant_id=42)
    assert [shared.get(viewer) for _ in range(5)] == [(0, 1)] * 5
    live.publish(41, "agents")  # not its topic
    assert shared.get(viewer) == (0, 1)
    live.publish(41, "callbacks")
    assert shared.get(viewer) == (1, 2) and shared.get(viewer) == (1, 2)
    assert shared.get(other) == (0, 3)
    assert calls == [41, 41, 42]
