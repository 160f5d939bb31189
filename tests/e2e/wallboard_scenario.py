"""The wallboard scenario, run against one backend worker (test_wallboard_e2e.py) and against
two workers sharing Redis with the manager and the agent on different ones
(tests/scaleout/test_wallboard_two_workers_e2e.py): a manager's wallboard follows an agent
going Away, a missed call and a WhatsApp call joining the callback queue, the agent claiming
and closing them, each pushed without reload."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_PASSWORD, LOGINS, RunningApp, login, screenshot

# The bound: a change shows on the wallboard within a second.
LIVE_BOUND_S = 1.0


@dataclass
class Tab:
    context: Any
    page: Any
    # The pid of the backend worker serving the tab's websocket ("" when the app does not tell).
    worker: str = ""


Opener = Callable[[str, str], Tab]


def open_signed_in(browser, app: RunningApp, role: str, path: str) -> Tab:
    """A new browser context signed in as ``role`` on ``path``."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=app.base_url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    login(page, role)
    page.goto(path)
    page.get_by_test_id("page-title").wait_for()
    return Tab(context, page)


def _wait_live(page, script: str, arg) -> float:
    """Seconds until ``script(arg)`` holds in the page (checked on every animation frame)."""
    start = time.monotonic()
    page.wait_for_function(script, arg=arg, polling="raf", timeout=10_000)
    return time.monotonic() - start


def _token(app: RunningApp, role: str) -> str:
    r = httpx.post(f"{app.backend_url}/api/v1/auth/token", json={"email": LOGINS[role], "password": DEMO_PASSWORD}, timeout=20)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _incoming_whatsapp_call(services_db, tenant_id: int, e164: str) -> None:
    """A WhatsApp call to the firm's line, stored as the sidecar stores it (services.whatsapp.calls)."""
    from services.models import WhatsappInbound
    from services.whatsapp import calls

    call = WhatsappInbound(
        wa_message_id=f"call-E2E{random.randint(10**9, 10**10 - 1)}", chat_jid=f"{e164[1:]}@s.whatsapp.net", remote_e164=e164,
        message_type="call", timestamp=datetime.now(timezone.utc),
    )
    with services_db.session_scope() as session:
        assert calls.record_call(session=session, tenant_id=tenant_id, call=call) is not None


def wallboard_follows_presence_and_the_callback_queue(browser, app: RunningApp, services_db, open_tab: Opener | None = None) -> dict[str, float]:
    """The scenario; returns the seconds each change took to show on the wallboard."""
    from services.models import User

    opener = open_tab or (lambda role, path: open_signed_in(browser, app, role, path))
    with services_db.session_scope() as session:
        agent_id, tenant_id = session.execute(sa.select(User.id, User.tenant_id).where(User.email == LOGINS["AGENT"])).one()

    tabs: list[Tab] = []
    figures: dict[str, float] = {}
    try:
        board = opener("MANAGER", "/wallboard")
        tabs.append(board)
        manager = board.page
        tile = manager.locator(f"[data-testid=agent-tile][data-user-id='{agent_id}']")
        expect(tile).to_be_visible()
        loads = manager.evaluate("performance.getEntriesByType('navigation').length")

        desk = opener("AGENT", "/callbacks")
        tabs.append(desk)
        agent = desk.page
        expect(agent.get_by_test_id("callback-queue")).to_be_visible()
        # The agent goes Away (in court) from the phone's control.
        agent.get_by_test_id("presence-select").click()
        agent.get_by_test_id("presence-AWAY-COURT").click()
        expect(agent.get_by_test_id("presence-state")).to_have_attribute("data-state", "AWAY")
        figures["away"] = _wait_live(
            manager, "id => document.querySelector(`[data-testid=agent-tile][data-user-id='${id}']`)?.dataset.status === 'AWAY'", agent_id
        )
        expect(tile.get_by_test_id("agent-reason")).to_have_text("Court")

        # A missed call (logged by the phone system through the API, in the app's own process).
        queue_before = int(manager.get_by_test_id("wb-queue").inner_text().replace(",", ""))
        number = f"055{random.randint(1_000_000, 9_999_999)}"
        r = httpx.post(
            f"{app.backend_url}/api/v1/call-center/calls",
            json={"direction": "INBOUND", "remote_number": number, "status": "MISSED"},
            headers={"Authorization": f"Bearer {_token(app, 'OWNER')}"},
            timeout=20,
        )
        assert r.status_code == 201, r.text
        e164 = "+966" + number[1:]
        item_js = "n => [...document.querySelectorAll('[data-testid=wallboard-queue] [data-testid=callback-item]')].find(e => e.textContent.includes(n))"
        figures["missed"] = _wait_live(manager, item_js, e164)
        expect(manager.get_by_test_id("wb-queue")).to_have_text(f"{queue_before + 1:,}")

        # The agent sees it without reload, claims it: the wallboard shows who holds it.
        item = agent.locator("[data-testid=callback-item]", has_text=e164)
        expect(item).to_be_visible()
        expect(item.get_by_test_id("callback-channel")).to_have_attribute("data-channel", "CALL")
        item.get_by_test_id("callback-claim").click()
        figures["claim"] = _wait_live(
            manager,
            f"n => ({item_js})(n)?.querySelector('[data-testid=callback-claimed-by]')",
            e164,
        )
        expect(manager.locator("[data-testid=wallboard-queue] [data-testid=callback-item]", has_text=e164).get_by_test_id("callback-claimed-by")).to_contain_text("Claimed by")
        screenshot(manager, "wallboard-live")
        # ... and closes it with an outcome: it leaves the queue, the count follows.
        item.get_by_test_id("callback-close").click()
        agent.get_by_test_id("outcome-REACHED").click()
        figures["close"] = _wait_live(manager, f"n => !({item_js})(n)", e164)
        expect(manager.get_by_test_id("wb-queue")).to_have_text(f"{queue_before:,}")
        expect(agent.locator("[data-testid=callback-item]", has_text=e164)).to_have_count(0)

        # A WhatsApp call nobody took (stored by the sidecar's path in another process): an item
        # with the WhatsApp badge on the agent's queue and the wallboard; closed, it leaves both.
        wa = f"+96656{random.randint(1_000_000, 9_999_999)}"
        _incoming_whatsapp_call(services_db, tenant_id, wa)
        figures["whatsapp_call"] = _wait_live(manager, item_js, wa)
        expect(manager.get_by_test_id("wb-queue")).to_have_text(f"{queue_before + 1:,}")
        wa_item = agent.locator("[data-testid=callback-item]", has_text=wa)
        expect(wa_item.get_by_test_id("callback-channel")).to_have_attribute("data-channel", "WHATSAPP")
        expect(wa_item.get_by_test_id("callback-channel")).to_have_text("WhatsApp call")
        expect(
            manager.locator("[data-testid=wallboard-queue] [data-testid=callback-item]", has_text=wa).get_by_test_id("callback-channel")
        ).to_have_attribute("data-channel", "WHATSAPP")
        screenshot(agent, "callbacks-whatsapp-call")
        wa_item.get_by_test_id("callback-close").click()
        agent.get_by_test_id("outcome-NO_ANSWER").click()
        _wait_live(manager, f"n => !({item_js})(n)", wa)
        expect(manager.get_by_test_id("wb-queue")).to_have_text(f"{queue_before:,}")

        # No reload happened on the wallboard; the TV mode shows the board alone.
        assert manager.evaluate("performance.getEntriesByType('navigation').length") == loads
        manager.get_by_test_id("wallboard-tv").click()
        expect(manager.get_by_test_id("wallboard-full-screen")).to_be_visible()
        screenshot(manager, "wallboard-tv")
        # Each tab stayed on the worker it started on (where the app tells): no reconnect elsewhere.
        for tab in tabs:
            if tab.worker:
                assert tab.page.get_by_test_id("worker-pid").inner_text() == tab.worker
    finally:
        print("wallboard latency (s):", {k: round(v, 3) for k, v in figures.items()})
        for tab in tabs:
            tab.context.close()
    assert figures["away"] < LIVE_BOUND_S, figures
    assert figures["missed"] < LIVE_BOUND_S, figures
    return figures
