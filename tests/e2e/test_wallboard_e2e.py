"""The live wallboard and the callback queue through real browsers: a manager's wallboard follows
an agent going Away and a missed call joining the queue within a second, without reload; the
agent claims and closes the item and the wallboard follows."""

from __future__ import annotations

import random
import time

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_PASSWORD, LOGINS, login, screenshot

pytestmark = pytest.mark.e2e

# The bound: a change shows on the wallboard within a second.
LIVE_BOUND_S = 1.0


def _wait_live(page, script: str, arg) -> float:
    """Seconds until ``script(arg)`` holds in the page (checked on every animation frame)."""
    start = time.monotonic()
    page.wait_for_function(script, arg=arg, polling="raf", timeout=10_000)
    return time.monotonic() - start


def _token(app, role: str) -> str:
    r = httpx.post(f"{app.backend_url}/api/v1/auth/token", json={"email": LOGINS[role], "password": DEMO_PASSWORD}, timeout=20)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_the_wallboard_follows_presence_and_the_callback_queue_live(browser, app, services_db) -> None:
    from services.models import User

    with services_db.session_scope() as session:
        agent_id = session.execute(sa.select(User.id).where(User.email == LOGINS["AGENT"])).scalar_one()

    contexts = [browser.new_context(viewport={"width": 1440, "height": 900}, base_url=app.base_url) for _ in range(2)]
    for context in contexts:
        context.set_default_timeout(20_000)
    manager, agent = (c.new_page() for c in contexts)
    figures: dict[str, float] = {}
    try:
        login(manager, "MANAGER")
        manager.goto("/wallboard")
        tile = manager.locator(f"[data-testid=agent-tile][data-user-id='{agent_id}']")
        expect(tile).to_be_visible()
        loads = manager.evaluate("performance.getEntriesByType('navigation').length")

        login(agent, "AGENT")
        agent.goto("/callbacks")
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

        # No reload happened on the wallboard; the TV mode shows the board alone.
        assert manager.evaluate("performance.getEntriesByType('navigation').length") == loads
        manager.get_by_test_id("wallboard-tv").click()
        expect(manager.get_by_test_id("wallboard-full-screen")).to_be_visible()
        screenshot(manager, "wallboard-tv")
    finally:
        print("wallboard latency (s):", {k: round(v, 3) for k, v in figures.items()})
        for context in contexts:
            context.close()
    assert figures["away"] < LIVE_BOUND_S, figures
    assert figures["missed"] < LIVE_BOUND_S, figures
