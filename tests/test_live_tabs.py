"""watheeq_ui.live_tabs: which of this worker's tabs a change reaches, once, and only there."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

from services import live
from watheeq_ui import live_tabs


class FakeState:
    """What live_tabs uses of a Reflex state: its tab token and on_live_change."""

    def __init__(self, token: str) -> None:
        self.router = SimpleNamespace(session=SimpleNamespace(client_token=token))
        self.seen: list[live.Change] = []
        self.gate: asyncio.Event | None = None

    async def on_live_change(self, change: live.Change) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.seen.append(change)


class PageA(FakeState):
    pass


class PageB(FakeState):
    pass


class FakeApp:
    """A worker: its sockets (token -> instance) and out-of-band state access."""

    def __init__(self, states: dict[tuple[str, type], FakeState], sockets: dict[str, str]) -> None:
        manager = SimpleNamespace(instance_id="me", token_to_socket={t: SimpleNamespace(instance_id=i) for t, i in sockets.items()})
        self.event_namespace = SimpleNamespace(_token_manager=manager)
        self.states = states

    @contextlib.asynccontextmanager
    async def modify_state(self, token):
        yield self.states[(token.ident, token.cls)]


def _reset() -> None:
    live_tabs._tabs.clear()
    live_tabs._running.clear()
    live_tabs._ticking.clear()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_change_reaches_the_local_tabs_of_its_firm_and_topic_only() -> None:
    _reset()
    here, other_firm, elsewhere, closed = PageA("t1"), PageA("t2"), PageA("t3"), PageA("t4")
    wrong_topic = PageB("t1")
    live_tabs.follow(here, 1, 10, "calls")
    live_tabs.follow(wrong_topic, 1, 10, "whatsapp")
    live_tabs.follow(other_firm, 2, 20, "calls")
    live_tabs.follow(elsewhere, 1, 11, "calls")
    live_tabs.follow(closed, 1, 12, "calls")
    states = {("t1", PageA): here, ("t1", PageB): wrong_topic, ("t2", PageA): other_firm, ("t3", PageA): elsewhere}
    app = FakeApp(states, {"t1": "me", "t2": "me", "t3": "another-worker"})

    async def scenario() -> int:
        started = live_tabs.dispatch(app, live.Change(1, "calls", "5"))
        await _settle()
        return started

    assert asyncio.run(scenario()) == 1
    assert [c.ref for c in here.seen] == ["5"]
    assert not wrong_topic.seen and not other_firm.seen and not elsewhere.seen
    assert "t4" not in live_tabs.followed()  # its socket is gone: dropped
    assert "t3" in live_tabs.followed()  # served by another worker: kept, not pushed here


def test_a_sessions_change_reaches_only_that_users_tabs() -> None:
    _reset()
    mine, colleague = PageA("a"), PageA("b")
    live_tabs.follow(mine, 1, 10, "sessions", layout=True)
    live_tabs.follow(colleague, 1, 11, "sessions", layout=True)
    app = FakeApp({("a", PageA): mine, ("b", PageA): colleague}, {"a": "me", "b": "me"})

    async def scenario() -> None:
        live_tabs.dispatch(app, live.Change(1, "sessions", "11"))
        await _settle()

    asyncio.run(scenario())
    assert not mine.seen and len(colleague.seen) == 1


def test_changes_arriving_during_a_refresh_are_run_once_more_not_queued() -> None:
    _reset()
    tab = PageA("t")
    live_tabs.follow(tab, 1, 10, "whatsapp")
    app = FakeApp({("t", PageA): tab}, {"t": "me"})

    async def scenario() -> None:
        tab.gate = asyncio.Event()
        for n in range(5):
            live_tabs.dispatch(app, live.Change(1, "whatsapp", str(n)))
        await _settle()
        tab.gate.set()
        await _settle()

    asyncio.run(scenario())
    # The first, then the newest of those that came while it ran.
    assert [c.ref for c in tab.seen] == ["0", "4"]
    assert not live_tabs._running


def test_opening_another_page_keeps_only_the_layouts_followers() -> None:
    _reset()
    auth, page = PageA("t"), PageB("t")
    live_tabs.follow(auth, 1, 10, "sessions", layout=True)
    live_tabs.follow(page, 1, 10, "calls")
    live_tabs.page_opened(auth)
    assert set(live_tabs.followed()["t"].followers) == {PageA}
    live_tabs.follow(page, 2, 10, "calls")  # signed in to another firm: starts over
    assert set(live_tabs.followed()["t"].followers) == {PageB}
    live_tabs.unfollow(page, everything=True)
    assert live_tabs.followed() == {}


def test_a_refresh_that_fails_is_tried_again_so_the_tab_does_not_stay_stale(monkeypatch) -> None:
    _reset()
    monkeypatch.setattr(live_tabs, "REFRESH_RETRY_SECONDS", 0.01)
    tab = PageA("t")
    failures = [RuntimeError("database is locked")]
    real = tab.on_live_change

    async def flaky(change: live.Change) -> None:
        if failures:
            raise failures.pop()
        await real(change)

    tab.on_live_change = flaky  # type: ignore[method-assign]
    live_tabs.follow(tab, 1, 10, "whatsapp")
    app = FakeApp({("t", PageA): tab}, {"t": "me"})

    async def scenario() -> None:
        live_tabs.dispatch(app, live.Change(1, "whatsapp", "7"))
        await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert [c.ref for c in tab.seen] == ["7"] and not failures
    assert not live_tabs._running
