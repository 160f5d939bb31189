"""A page's loaders run inside the event that opens the page (watheeq_ui/state/auth.py,
AuthState._run_loaders): each on its own state, a failing one reported as Reflex reports a
failed event while the others still run, and the events they return passed on."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from watheeq_ui.state import auth
from watheeq_ui.state.auth import AuthState

_run_loaders = AuthState.__dict__["_run_loaders"]


class _Page:
    """What ``get_state`` hands a loader: one object per state class."""

    def __init__(self) -> None:
        self.states: dict[type, SimpleNamespace] = {}

    async def get_state(self, cls: type) -> SimpleNamespace:
        return self.states.setdefault(cls, SimpleNamespace(ran=[]))


class DataState:
    pass


class HeaderState:
    pass


def _loader(state: type, fn) -> SimpleNamespace:
    return SimpleNamespace(state=state, fn=fn)


def test_loaders_run_in_order_on_their_states_and_their_events_are_passed_on(monkeypatch):
    async def load(state):
        state.ran.append("load")
        return "watch-event"

    def sync_load(state):
        state.ran.append("sync")

    async def refresh(state):
        state.ran.append("refresh")
        yield "first"
        yield None
        yield "second"

    monkeypatch.setitem(
        auth.PAGE_LOADERS, "/x", [_loader(DataState, load), _loader(DataState, sync_load), _loader(HeaderState, refresh)]
    )
    page = _Page()
    produced = asyncio.run(_run_loaders(page, "/x"))
    assert produced == ["watch-event", "first", "second"]
    assert page.states[DataState].ran == ["load", "sync"]
    assert page.states[HeaderState].ran == ["refresh"]


def test_a_failing_loader_is_reported_and_the_others_still_run(monkeypatch):
    async def broken(state):
        raise RuntimeError("the database is gone")

    async def refresh(state):
        state.ran.append("refresh")

    monkeypatch.setitem(auth.PAGE_LOADERS, "/x", [_loader(DataState, broken), _loader(HeaderState, refresh)])
    page = _Page()
    produced = asyncio.run(_run_loaders(page, "/x"))
    assert page.states[HeaderState].ran == ["refresh"]
    # Reflex's own report of a failed event: an error toast (in production without the
    # exception's text, which goes to the log).
    assert len(produced) == 1
    assert "An error occurred." in str(produced[0])


def test_a_background_loader_stays_an_event_of_its_own(monkeypatch):
    async def task(state):
        state.ran.append("task")

    async def refresh(state):
        state.ran.append("refresh")

    background = SimpleNamespace(state=DataState, fn=task, is_background=True)
    monkeypatch.setitem(auth.PAGE_LOADERS, "/x", [background, _loader(HeaderState, refresh)])
    page = _Page()
    produced = asyncio.run(_run_loaders(page, "/x"))
    assert produced == [background]
    assert DataState not in page.states
    assert page.states[HeaderState].ran == ["refresh"]


def test_a_route_without_loaders_runs_nothing():
    assert asyncio.run(_run_loaders(_Page(), "/no-such-page")) == []
