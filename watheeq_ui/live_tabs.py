"""Live updates in the browser: this worker's open tabs and the one listener that pushes to them.

Every backend worker keeps a registry of the tabs whose websocket it serves: which firm and
user each shows, and which states of the tab follow which topics (the signed-in session
follows ``sessions``, the header follows the WhatsApp line, a page follows what it lists).
A state follows a topic by calling :func:`follow` from one of its handlers; it then gets
``await state.on_live_change(change)`` (a plain method, not an event) inside
``app.modify_state`` whenever a change of its firm and topic arrives, and re-reads what it
shows through the services with its own session check. The delta goes to the browser as
for any event.

One lifespan task per worker (:func:`push_live_changes`) starts this process's bus
(services.live_bus), hears every change once and fans it out here: no tab polls anything.
A tab whose socket is on another worker is skipped (that worker has it registered); a
closed tab is dropped. A tab that reconnects runs its page's on_load again (Reflex
rehydrates on every connect), so it re-reads the current picture and registers with the
worker it now talks to. A change that arrives while a tab is still re-reading is run once
more afterwards, never queued up.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import reflex as rx

from services import live, live_bus

log = logging.getLogger("watheeq.live_tabs")


@dataclass
class Tab:
    tenant_id: int
    user_id: int
    # The dashboard session the tab is signed in with (for the idle sweep).
    session_id: int = 0
    # The states of this tab that follow changes, with their topics.
    followers: dict[type, frozenset[str]] = field(default_factory=dict)
    # Those that belong to every page (the session, the header): kept when the page changes.
    layout: set[type] = field(default_factory=set)


_tabs: dict[str, Tab] = {}
_ticking: set[tuple[str, type]] = set()
# (token, state class) being refreshed now -> a change that arrived meanwhile (or None).
_running: dict[tuple[str, type], live.Change | None] = {}
_app: Any = None


def token_of(state: rx.State) -> str:
    return state.router.session.client_token


def follow(
    state: rx.State, tenant_id: int, user_id: int, *topics: str, session_id: int | None = None, layout: bool = False
) -> None:
    """``state``'s tab shows firm ``tenant_id`` to ``user_id``; ``state`` follows ``topics``
    (``layout``: on every page, else until the tab opens another page).

    A tab signed in as someone else (another firm or user) starts over.
    """
    token = token_of(state)
    if not token:
        return
    tab = _tabs.get(token)
    if tab is None or tab.tenant_id != tenant_id or tab.user_id != user_id:
        tab = _tabs[token] = Tab(tenant_id, user_id)
    tab.followers[type(state)] = frozenset(topics)
    if layout:
        tab.layout.add(type(state))
    if session_id:
        tab.session_id = session_id


def unfollow(state: rx.State, *, everything: bool = False) -> None:
    """``state`` no longer follows anything (``everything``: the tab signed out)."""
    token = token_of(state)
    if everything:
        _tabs.pop(token, None)
        for key in [k for k in _ticking if k[0] == token]:
            _ticking.discard(key)
    else:
        if token in _tabs:
            _tabs[token].followers.pop(type(state), None)
        _ticking.discard((token, type(state)))


def page_opened(state: rx.State) -> None:
    """The tab opened a page: the previous page's states stop following (the new page's
    loaders follow what they show)."""
    token = token_of(state)
    tab = _tabs.get(token)
    if tab is None:
        return
    for cls in [c for c in tab.followers if c not in tab.layout]:
        del tab.followers[cls]
        _ticking.discard((token, cls))


def tick_every_second(state: rx.State) -> None:
    """``state.on_tick()`` (no database work) once a second until it returns False: a
    countdown shown in the tab, driven by this worker's one ticker, not a task per tab."""
    token = token_of(state)
    if token:
        _ticking.add((token, type(state)))


async def _tick(app: Any, key: tuple[str, type]) -> None:
    token, cls = key
    try:
        async with app.modify_state(rx.BaseStateToken(ident=token, cls=cls)) as root:
            state = root if type(root) is cls else await root.get_state(cls)
            keep = state.on_tick()
    except Exception:
        log.exception("a tab's tick failed")
        keep = False
    if not keep:
        _ticking.discard(key)


async def _ticker(app: Any) -> None:
    while True:
        await asyncio.sleep(1.0)
        for key in list(_ticking):
            if not _local(app, key[0]):
                _ticking.discard(key)
                continue
            asyncio.get_running_loop().create_task(_tick(app, key))


def followed(tenant_id: int | None = None) -> dict[str, Tab]:
    """The registry (for tests and the readiness figures)."""
    return {t: tab for t, tab in _tabs.items() if tenant_id is None or tab.tenant_id == tenant_id}


def _local(app: Any, token: str) -> bool | None:
    """True: the tab's socket is on this worker; False: on another; None: closed."""
    namespace = getattr(app, "event_namespace", None)
    if namespace is None:
        return None
    manager = namespace._token_manager
    record = manager.token_to_socket.get(token)
    if record is None:
        return None
    return record.instance_id == manager.instance_id


def targets(change: live.Change) -> list[tuple[str, type]]:
    """Which (tab, state) pairs of this worker ``change`` concerns."""
    found = []
    for token, tab in list(_tabs.items()):
        if tab.tenant_id != change.tenant_id:
            continue
        if change.topic == "sessions" and change.ref is not None and change.ref != str(tab.user_id):
            continue
        for cls, topics in list(tab.followers.items()):
            if change.topic in topics:
                found.append((token, cls))
    return found


# A re-read that failed (a database busy for a moment) is tried again this many times, this
# far apart: otherwise the tab would show the old picture until the next change.
REFRESH_ATTEMPTS = 3
REFRESH_RETRY_SECONDS = 0.5


async def _refresh(app: Any, token: str, cls: type, change: live.Change) -> None:
    key = (token, cls)
    while True:
        for attempt in range(1, REFRESH_ATTEMPTS + 1):
            try:
                async with app.modify_state(rx.BaseStateToken(ident=token, cls=cls)) as root:
                    state = root if type(root) is cls else await root.get_state(cls)
                    await state.on_live_change(change)
                break
            except Exception:
                log.exception("pushing %s to a tab failed (attempt %s of %s)", change.topic, attempt, REFRESH_ATTEMPTS)
                if attempt < REFRESH_ATTEMPTS:
                    await asyncio.sleep(REFRESH_RETRY_SECONDS)
        again = _running.get(key)
        if again is None:
            _running.pop(key, None)
            return
        _running[key] = None
        change = again


def dispatch(app: Any, change: live.Change) -> int:
    """Start refreshing every local tab ``change`` concerns; returns how many were started."""
    started = 0
    for token, cls in targets(change):
        where = _local(app, token)
        if where is None:
            _tabs.pop(token, None)
            continue
        if not where:
            continue
        key = (token, cls)
        if key in _running:
            _running[key] = change
            continue
        _running[key] = None
        asyncio.get_running_loop().create_task(_refresh(app, token, cls, change))
        started += 1
    return started


async def _sweep_sessions(app: Any, every: float) -> None:
    """Idle time and expiry end a session without any write to announce it: every ``every``
    seconds ONE query asks which of this worker's tabs' sessions no longer hold, and only
    those tabs check (and end) their session."""
    from services import accounts, db

    while True:
        await asyncio.sleep(every)
        local = {t: tab for t, tab in list(_tabs.items()) if tab.session_id and _local(app, t)}
        if not local:
            continue

        def ended() -> set[int]:
            with db.session_scope() as session:
                return accounts.ended_sessions(session=session, session_ids=[tab.session_id for tab in local.values()])

        try:
            gone = await asyncio.to_thread(ended)
        except Exception:
            log.exception("session sweep failed")
            continue
        for token, tab in local.items():
            if tab.session_id in gone:
                for cls, topics in list(tab.followers.items()):
                    if "sessions" in topics and (token, cls) not in _running:
                        _running[(token, cls)] = None
                        change = live.Change(tenant_id=tab.tenant_id, topic="sessions", ref=str(tab.user_id))
                        asyncio.get_running_loop().create_task(_refresh(app, token, cls, change))


SESSION_SWEEP_SECONDS = 30.0
LEASE_SWEEP_SECONDS = 3.0


async def _sweep_leases(app: Any, every: float) -> None:
    """A WhatsApp sidecar that dies writes nothing: its firms' leases just lapse. Every
    ``every`` seconds ONE query asks which firms followed by this worker's WhatsApp tabs lost
    (or got back) their sidecar, and only those firms' tabs re-read their line."""
    from services import db
    from services.whatsapp.leases import unheld_tenants

    down: set[int] = set()
    while True:
        await asyncio.sleep(every)
        tenants = {tab.tenant_id for t, tab in list(_tabs.items())
                   if tab.tenant_id is not None and any("whatsapp" in topics for topics in tab.followers.values())}
        if not tenants:
            down.clear()
            continue

        def unheld() -> set[int]:
            with db.session_scope() as session:
                return unheld_tenants(session=session, tenant_ids=tenants)

        try:
            now_down = await asyncio.to_thread(unheld)
        except Exception:
            log.exception("lease sweep failed")
            continue
        for tenant_id in now_down ^ (down & tenants):
            dispatch(app, live.Change(tenant_id=tenant_id, topic="whatsapp", ref="line"))
        down = now_down


async def push_live_changes() -> None:
    """The worker's lifespan task: start the bus, then fan every change out to this worker's tabs."""
    from watheeq_ui.watheeq_ui import app  # the running app (imported here: it imports this module)

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[live.Change] = asyncio.Queue()
    unsubscribe = live.subscribe(lambda change: loop.call_soon_threadsafe(queue.put_nowait, change))
    try:
        await asyncio.to_thread(live_bus.start, listen=True)
    except Exception:
        log.exception("live bus did not start; tabs see changes of this worker only")
    log.info("live updates: worker %s listening", os.getpid())
    sweep = loop.create_task(_sweep_sessions(app, SESSION_SWEEP_SECONDS))
    leases = loop.create_task(_sweep_leases(app, LEASE_SWEEP_SECONDS))
    ticker = loop.create_task(_ticker(app))
    try:
        while True:
            change = await queue.get()
            dispatch(app, change)
    finally:
        sweep.cancel()
        leases.cancel()
        ticker.cancel()
        unsubscribe()
        await asyncio.to_thread(live_bus.stop)
