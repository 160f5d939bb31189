"""Sessions that really end, in a real browser: every event checks the session on the
server, open tabs notice a revoked session or a disabled user on their own, idle time is
the server's, agents never get the WhatsApp linking code, and no token or secret typed
into the dashboard lands in Reflex's state files (or Redis).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError, expect

from tests.e2e.conftest import LOGINS, ROOT, RunningApp, login, screenshot

pytestmark = pytest.mark.e2e

TOKEN_KEY = "watheeq_session"
# A revoked session or a disabled user is pushed to the open tab (live_tabs): within a second
# or two; the rest is room for a busy machine.
PUSHED_S = 5
NOTICE = {
    "session_expired": "Your session has ended; sign in again",
    "account_disabled": "This account is disabled",
}


def _user(services_db, role: str):
    from services.models import User

    with services_db.session_scope() as session:
        return session.execute(sa.select(User.id, User.tenant_id).where(User.email == LOGINS[role])).one()


def _token_rows(services_db, user_id: int):
    from services.models import ApiToken

    with services_db.session_scope() as session:
        return session.execute(
            sa.select(ApiToken.id, ApiToken.revoked, ApiToken.last_used_at).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
        ).all()


def _messages(services_db, tenant_id: int) -> int:
    from services.models import WhatsappMessage

    with services_db.session_scope() as session:
        return session.execute(sa.select(sa.func.count()).select_from(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id)).scalar_one()


def _admin_principal(services_db):
    from services.models import Principal, Role

    user_id, tenant_id = _user(services_db, "ADMIN")
    return Principal(user_id=user_id, tenant_id=tenant_id, role=Role.ADMIN)


def _line_status(services_db, tenant_id: int) -> str:
    from services.models import WhatsappSession

    with services_db.session_scope() as session:
        status = session.execute(sa.select(WhatsappSession.status).where(WhatsappSession.tenant_id == tenant_id)).scalar_one_or_none()
    return status.value if status is not None else "DISCONNECTED"


def _wait(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _sim_root(app: RunningApp) -> Path:
    return Path(app.database_url.removeprefix("sqlite:///")).parent / "data" / "whatsapp" / "simulator"


def _link_line(app, services_db) -> None:
    """The firm's line connected through the simulator, as an admin would link it."""
    from services import whatsapp
    from services.whatsapp.simulator import enqueue_command

    admin = _admin_principal(services_db)
    if _line_status(services_db, admin.tenant_id) == "CONNECTED":
        return  # linked by an earlier test of the app
    with services_db.session_scope() as session:
        whatsapp.init_session(session=session, tenant_id=admin.tenant_id, actor=admin)
    _wait(lambda: _line_status(services_db, admin.tenant_id) == "QR_PENDING", 20)
    enqueue_command(admin.tenant_id, "scan", root=_sim_root(app), phone="+966500000778", push_name="Sessions test")
    _wait(lambda: _line_status(services_db, admin.tenant_id) == "CONNECTED", 20)


def _unlink_line(services_db) -> None:
    from services import whatsapp

    admin = _admin_principal(services_db)
    with services_db.session_scope() as session:
        whatsapp.disconnect(session=session, tenant_id=admin.tenant_id, actor=admin)
    _wait(lambda: _line_status(services_db, admin.tenant_id) == "DISCONNECTED", 20)


def _act(locator) -> None:
    """Click, unless the tab's periodic check has already signed it out (on a slow machine
    it may come first): either way the action must not happen and the tab must end up on
    the login page."""
    from playwright.sync_api import Error

    try:
        locator.click(timeout=5_000)
    except Error:
        assert "/login" in locator.page.url


def _expect_signed_out(page, notice: str, timeout: float = 10_000) -> None:
    expect(page).to_have_url(re.compile(r"/login"), timeout=timeout)
    expect(page.get_by_test_id("login-notice")).to_have_text(NOTICE[notice])


def test_logging_out_in_one_tab_refuses_the_other_tabs_next_action(page, app, services_db):
    _, tenant_id = _user(services_db, "AGENT")
    login(page, "AGENT")
    other = page.context.new_page()
    # A second tab of the same browser finds the session in the browser's storage.
    other.goto("/calls")
    expect(other.get_by_test_id("call-row").first).to_be_visible()

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login"))
    # Paging the history in the other tab is refused and the tab lands on the login page.
    _act(other.get_by_test_id("sort-started"))
    _expect_signed_out(other, "session_expired")
    expect(other.get_by_test_id("call-row")).to_have_count(0)
    screenshot(other, "session-ended-other-tab")

    # Queueing a WhatsApp message from a tab whose session ended elsewhere writes nothing.
    _link_line(app, services_db)
    try:
        login(page, "AGENT")
        other.goto("/whatsapp")
        expect(other.get_by_test_id("wa-panel-connected")).to_be_visible()
        other.get_by_test_id("wa-send-mode").get_by_role("radio", name="To a number").click()
        other.get_by_test_id("wa-send-to").fill("0501234567")
        other.get_by_test_id("wa-send-body").fill("sent after logging out")
        before = _messages(services_db, tenant_id)
        page.get_by_test_id("logout").click()
        expect(page).to_have_url(re.compile(r"/login"))
        _act(other.get_by_test_id("wa-send"))
        _expect_signed_out(other, "session_expired")
        time.sleep(1)
        assert _messages(services_db, tenant_id) == before
    finally:
        _unlink_line(services_db)
        other.close()


def test_revoking_a_users_tokens_signs_their_open_tab_out_and_stops_the_phone(page, services_db):
    from services import accounts

    user_id, tenant_id = _user(services_db, "AGENT")
    login(page, "AGENT")
    page.goto("/calls")
    expect(page.get_by_test_id("softphone-toggle")).to_be_visible()
    with services_db.session_scope() as session:
        assert accounts.revoke_user_tokens(session=session, tenant_id=tenant_id, user_id=user_id) >= 1
    # No action in the tab: the change is pushed to it.
    _expect_signed_out(page, "session_expired", timeout=PUSHED_S * 1000)
    expect(page.get_by_test_id("softphone-toggle")).to_have_count(0)


def test_disabling_a_user_signs_their_open_tab_out_with_the_reason(page, services_db):
    from services import accounts

    user_id, tenant_id = _user(services_db, "MANAGER")
    login(page, "MANAGER")
    try:
        with services_db.session_scope() as session:
            accounts.set_user_active(session=session, tenant_id=tenant_id, user_id=user_id, active=False)
        _expect_signed_out(page, "account_disabled", timeout=PUSHED_S * 1000)
    finally:
        with services_db.session_scope() as session:
            accounts.set_user_active(session=session, tenant_id=tenant_id, user_id=user_id, active=True)


def test_a_crafted_last_activity_in_the_browser_cannot_keep_an_idle_session(page, services_db):
    from services.models import ApiToken

    user_id, _ = _user(services_db, "MANAGER")
    login(page, "MANAGER")
    session_id = _token_rows(services_db, user_id)[-1].id
    # What the browser says about its activity is not asked: the old key, far in the future.
    far_future = str(int(time.time()) + 10 * 365 * 86400)
    page.evaluate("(v) => { localStorage.setItem('watheeq_last_active', v); }", far_future)
    with services_db.session_scope() as session:
        session.execute(
            sa.update(ApiToken)
            .where(ApiToken.id == session_id)
            .values(last_used_at=datetime.now(timezone.utc) - timedelta(minutes=31))
        )
    # The next thing the tab does ends it: the user's click, or the tab's own periodic check
    # if that comes first (a loaded machine may be slow to the click).
    nav = page.get_by_test_id("nav-nav_calls")
    if "/login" not in page.url:
        try:
            nav.click(timeout=5_000)
        except PlaywrightTimeoutError:
            pass
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_test_id("login-notice")).to_have_text("You were signed out after 30 minutes without activity")
    assert next(r for r in _token_rows(services_db, user_id) if r.id == session_id).revoked


def test_an_agent_never_gets_the_linking_qr_while_the_admin_does(browser, app, services_db):
    if _line_status(services_db, _admin_principal(services_db).tenant_id) != "DISCONNECTED":
        _unlink_line(services_db)  # an earlier test of the app left the line linked
    admin_ctx = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=app.base_url)
    agent_ctx = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=app.base_url)
    admin, agent = admin_ctx.new_page(), agent_ctx.new_page()
    try:
        login(admin, "ADMIN")
        admin.goto("/whatsapp")
        login(agent, "AGENT")
        agent.goto("/whatsapp")
        # Everything the agent's browser receives over the websocket, to look for the code in.
        frames: list[str] = []
        agent.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
        agent.reload()
        expect(agent.get_by_test_id("wa-line")).to_be_visible()

        admin.get_by_test_id("wa-link").click()
        expect(admin.get_by_test_id("wa-qr")).to_be_visible(timeout=15_000)
        assert admin.get_by_test_id("wa-qr").get_attribute("src").startswith("data:image/svg+xml")
        expect(agent.get_by_test_id("wa-panel-linking")).to_be_visible(timeout=10_000)
        expect(agent.get_by_test_id("whatsapp-status")).to_contain_text("Waiting for QR scan")
        # A new code or two while the agent watches.
        time.sleep(4)
        expect(agent.get_by_test_id("wa-qr")).to_have_count(0)
        assert "data:image/svg+xml" not in agent.content()
        assert frames and not [f for f in frames if "svg+xml" in f]
        screenshot(agent, "whatsapp-agent-while-linking")
    finally:
        _unlink_line(services_db)
        admin_ctx.close()
        agent_ctx.close()


def _state_blobs() -> list[tuple[str, bytes]]:
    blobs = [(str(p), p.read_bytes()) for p in (ROOT / ".states").rglob("*") if p.is_file()]
    if os.environ.get("REDIS_URL"):
        import redis

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        for key in client.scan_iter(count=500):
            kind = client.type(key)
            if kind == b"string":
                blobs.append((f"redis:{key!r}", client.get(key) or b""))
            elif kind == b"hash":
                blobs.append((f"redis:{key!r}", b"".join(k + v for k, v in client.hgetall(key).items())))
    return blobs


def test_no_token_or_secret_typed_in_the_dashboard_reaches_reflex_state(page, services_db):
    login(page, "ADMIN")
    token = page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')")
    assert token and token.startswith("wtq_")
    sip_password = f"sip-{secrets.token_hex(8)}"
    turn_credential = f"turn-{secrets.token_hex(8)}"

    page.goto("/extensions")
    # A SIP password with an extension the service refuses: cleared, and never kept.
    page.get_by_test_id("assign-user").click()
    page.get_by_role("option", name=re.compile(re.escape(LOGINS["OWNER"]))).click()
    page.get_by_test_id("assign-extension").fill("not-a-number")
    page.get_by_test_id("assign-password").fill(sip_password)
    page.get_by_test_id("assign-submit").click()
    expect(page.get_by_test_id("field-error").first).to_be_visible()
    expect(page.get_by_test_id("assign-password")).to_have_value("")

    # A TURN credential with settings the service refuses, then with good ones.
    page.get_by_test_id("pbx-turn_url").fill("not a turn url")
    page.get_by_test_id("pbx-turn_credential").fill(turn_credential)
    page.get_by_test_id("pbx-save").click()
    expect(page.get_by_test_id("field-error").first).to_be_visible()
    expect(page.get_by_test_id("pbx-turn_credential")).to_have_value("")

    # Pages that read and write for the user, so that every state has something to persist.
    for path in ("/calls", "/whatsapp", "/clients", "/"):
        page.goto(path)
        expect(page.get_by_test_id("page-title")).to_be_visible()
    # Reflex writes each client's state after a short debounce.
    time.sleep(3)
    blobs = _state_blobs()
    assert blobs, "the app wrote no state to look in"
    if os.environ.get("REDIS_URL"):
        assert [name for name, _ in blobs if name.startswith("redis:")], "no Reflex state in Redis to look in"
    for secret in (token, sip_password, turn_credential):
        assert [name for name, data in blobs if secret.encode() in data] == []
